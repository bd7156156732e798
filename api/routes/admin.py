"""Administration without a terminal (issue 14.7): the account page for everyone; users, API
tokens, residents and devices, dead letters for administrators."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response, UploadFile
from fastapi.responses import RedirectResponse

from api.deps import Config, Conn, CsrfChecked, Session, WebSession
from api.routes.web import render
from api.security import HashSlots, hash_password_async, verify_password_async
from api.store import access, web_admin, web_station
from api.store.access import Capability

router = APIRouter(include_in_schema=False)

ROLE_CHOICES = {
    "nurse": "방문간호사 / nurse",
    "therapist": "재활운동사 / therapist",
    "liaison": "현장소통담당관 / liaison officer",
    "admin": "관리자 / admin",
    "station": "측정대 / station kiosk",
}


def _slots(request: Request) -> HashSlots:
    """The app's bound on concurrent password hashes (api.security)."""
    slots: HashSlots = request.app.state.hash_slots
    return slots


def _back(path: str, message: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?m={message}", status_code=303)


# --- everyone: the account page ---------------------------------------------------------------


@router.get("/account")
async def account(request: Request, session: WebSession) -> Response:
    return render(
        request,
        "account.html",
        {
            "actor": session.actor,
            "csrf_token": session.csrf_token,
            "message": request.query_params.get("m"),
            "min_password": web_admin.MIN_PASSWORD,
        },
    )


@router.post("/account/password")
async def change_password(
    request: Request,
    conn: Conn,
    config: Config,
    session: CsrfChecked,
    current: Annotated[str, Form(max_length=200)] = "",
    new: Annotated[str, Form(max_length=200)] = "",
    again: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    actor = session.actor
    found = await access.credentials(conn, await _username(conn, actor.user_id))
    ok = await verify_password_async(
        current, found.password_hash if found else None, config.password_params, _slots(request)
    )
    if not ok:
        raise access.InvalidRequest("현재 비밀번호가 맞지 않습니다 / the current password is wrong")
    web_admin.check_new_password(new, again)
    await web_admin.change_own_password(
        conn, actor, await hash_password_async(new, config.password_params, _slots(request))
    )
    return _back("/account", "password")


async def _username(conn: Conn, user_id: str) -> str:
    from api.store import rows

    name = await rows.scalar(conn, "SELECT username FROM app_user WHERE id = %s", (user_id,))
    return str(name or "")


# --- users ------------------------------------------------------------------------------------


@router.get("/admin/users")
async def users(request: Request, conn: Conn, session: WebSession) -> Response:
    return await _users_page(request, conn, session, request.query_params.get("m"))


async def _users_page(
    request: Request,
    conn: Conn,
    session: Session,
    message: str | None,
    temporary: tuple[str, str] | None = None,
) -> Response:
    """The users page; ``temporary`` (user, password) is shown once, in this response only
    (never in a URL or a log)."""
    actor = session.actor
    found = await web_admin.users(conn, actor)
    return render(
        request,
        "admin_users.html",
        {
            "actor": actor,
            "csrf_token": session.csrf_token,
            "users": found,
            "roles": ROLE_CHOICES,
            "areas": await web_admin.neighbourhood_choices(conn),
            "stations": await web_station.list_stations(conn),
            "message": message,
            "temporary": temporary,
        },
    )


@router.post("/admin/users")
async def create_user(
    request: Request,
    conn: Conn,
    config: Config,
    session: CsrfChecked,
    user_id: Annotated[str, Form(max_length=40)],
    username: Annotated[str, Form(max_length=40)],
    display_name: Annotated[str, Form(max_length=100)],
    role: Annotated[str, Form(max_length=20)],
    station_id: Annotated[str, Form(max_length=60)] = "",
) -> Response:
    form = await request.form()
    temporary = web_admin.temporary_password()
    await web_admin.create_user(
        conn,
        session.actor,
        user_id=user_id.strip(),
        username=username.strip(),
        display_name=display_name,
        role=role,
        password_hash=await hash_password_async(temporary, config.password_params, _slots(request)),
        neighbourhoods=[str(n) for n in form.getlist("neighbourhood")],
        station_id=station_id or None,
    )
    return await _users_page(request, conn, session, "created", (user_id.strip(), temporary))


@router.post("/admin/users/{user_id}")
async def update_user(
    request: Request,
    user_id: str,
    conn: Conn,
    session: CsrfChecked,
    display_name: Annotated[str, Form(max_length=100)],
    role: Annotated[str, Form(max_length=20)],
) -> Response:
    form = await request.form()
    await web_admin.update_user(
        conn,
        session.actor,
        user_id,
        display_name=display_name,
        role=role,
        neighbourhoods=[str(n) for n in form.getlist("neighbourhood")],
    )
    return _back("/admin/users", "updated")


@router.post("/admin/users/{user_id}/active")
async def set_active(
    user_id: str,
    conn: Conn,
    session: CsrfChecked,
    active: Annotated[bool, Form()],
) -> Response:
    await web_admin.set_active(conn, session.actor, user_id, active)
    return _back("/admin/users", "activated" if active else "deactivated")


@router.post("/admin/users/{user_id}/password")
async def reset_password(
    request: Request, user_id: str, conn: Conn, config: Config, session: CsrfChecked
) -> Response:
    temporary = web_admin.temporary_password()
    await web_admin.reset_password(
        conn,
        session.actor,
        user_id,
        await hash_password_async(temporary, config.password_params, _slots(request)),
    )
    return await _users_page(request, conn, session, "reset", (user_id, temporary))


@router.post("/admin/users/{user_id}/caseload")
async def caseload(
    user_id: str,
    conn: Conn,
    session: CsrfChecked,
    residents: Annotated[str, Form(max_length=20000)] = "",
) -> Response:
    ids = residents.replace(",", " ").split()
    count = await web_admin.assign_caseload(conn, session.actor, user_id, ids)
    return _back("/admin/users", f"caseload-{count}")


# --- API tokens -------------------------------------------------------------------------------


@router.get("/admin/tokens")
async def tokens(request: Request, conn: Conn, session: WebSession) -> Response:
    actor = session.actor
    found = await web_admin.tokens(conn, actor)
    return render(
        request,
        "admin_tokens.html",
        {
            "actor": actor,
            "csrf_token": session.csrf_token,
            "tokens": found,
            "accounts": await web_admin.token_accounts(conn),
            "message": request.query_params.get("m"),
            "now": datetime.now(UTC),
        },
    )


@router.post("/admin/tokens")
async def issue_token(
    request: Request,
    conn: Conn,
    session: CsrfChecked,
    user_id: Annotated[str, Form(max_length=40)],
    name: Annotated[str, Form(max_length=100)],
    days: Annotated[int, Form(ge=1, le=730)] = 90,
) -> Response:
    actor = session.actor
    new = await web_admin.issue_token(conn, actor, user_id, name, days)
    # shown once: rendered in this response, never stored in the clear nor put in a URL
    return render(
        request,
        "admin_tokens.html",
        {
            "actor": actor,
            "csrf_token": session.csrf_token,
            "tokens": await web_admin.tokens(conn, actor),
            "accounts": await web_admin.token_accounts(conn),
            "new_token": new,
            "message": None,
            "now": datetime.now(UTC),
        },
    )


@router.post("/admin/tokens/{token_id}/revoke")
async def revoke_token(token_id: str, conn: Conn, session: CsrfChecked) -> Response:
    await web_admin.revoke_token(conn, session.actor, token_id)
    return _back("/admin/tokens", "revoked")


# --- residents and devices --------------------------------------------------------------------


@router.get("/admin/registry")
async def registry_page(request: Request, conn: Conn, session: WebSession) -> Response:
    actor = session.actor
    actor.require(Capability.MANAGE_USERS)
    return render(
        request,
        "admin_registry.html",
        {
            "actor": actor,
            "csrf_token": session.csrf_token,
            "columns": web_admin.CSV_COLUMNS,
            "areas": await web_admin.neighbourhood_choices(conn),
            "stations": await web_station.list_stations(conn),
            "kinds": web_admin.DEVICE_KINDS,
            "message": request.query_params.get("m"),
        },
    )


@router.post("/admin/residents")
async def register_resident(request: Request, conn: Conn, session: CsrfChecked) -> Response:
    form = await request.form()
    values = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    resident = web_admin.parse_resident(values)
    created, _updated = await web_admin.register_residents(conn, session.actor, [resident])
    return _back("/admin/registry", "resident-created" if created else "resident-updated")


@router.post("/admin/residents/import")
async def import_residents(conn: Conn, session: CsrfChecked, file: UploadFile) -> Response:
    data = await file.read(5_000_001)
    if len(data) > 5_000_000:
        raise access.InvalidRequest("CSV는 5 MB까지 / the CSV may be 5 MB at most")
    residents = web_admin.parse_residents_csv(data)
    created, updated = await web_admin.register_residents(conn, session.actor, residents)
    return _back("/admin/registry", f"imported-{created}-{updated}")


@router.post("/admin/devices")
async def register_device(
    conn: Conn,
    session: CsrfChecked,
    device_id: Annotated[str, Form(max_length=60)],
    kind: Annotated[str, Form(max_length=30)],
    model: Annotated[str, Form(max_length=60)] = "",
    station_id: Annotated[str, Form(max_length=60)] = "",
    owner_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    await web_admin.register_device(
        conn,
        session.actor,
        web_admin.DeviceForm(
            device_id.strip(),
            kind,
            model.strip() or None,
            station_id or None,
            owner_id.strip() or None,
        ),
    )
    return _back("/admin/registry", "device")


# --- dead letters -----------------------------------------------------------------------------


@router.get("/admin/dead-letters")
async def dead_letters(
    request: Request,
    conn: Conn,
    session: WebSession,
    state: Annotated[str, Query(pattern="^(new|replayed|dismissed)$")] = "new",
) -> Response:
    actor = session.actor
    letters = await web_admin.dead_letters(conn, actor, state)
    return render(
        request,
        "admin_dead_letters.html",
        {
            "actor": actor,
            "csrf_token": session.csrf_token,
            "letters": letters,
            "state": state,
            "message": request.query_params.get("m"),
        },
    )


@router.post("/admin/dead-letters/{letter_id}/replay")
async def replay(letter_id: int, conn: Conn, session: CsrfChecked) -> Response:
    result = await web_admin.replay_dead_letter(conn, session.actor, letter_id)
    if result.still:
        return _back("/admin/dead-letters", f"still-{result.still}")
    return _back("/admin/dead-letters", f"replayed-{result.observations}-{result.unbound}")


@router.post("/admin/dead-letters/{letter_id}/discard")
async def discard(
    letter_id: int,
    conn: Conn,
    session: CsrfChecked,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    await web_admin.dismiss_dead_letter(conn, session.actor, letter_id, reason)
    return _back("/admin/dead-letters", "discarded")
