"""The unbound-readings queue: staff assign readings to residents, discard or restore them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse
from psycopg import AsyncConnection

from api.deps import Conn, CsrfChecked, Session, WebSession
from api.routes.web import render
from api.store import access, web_search, web_unbound

router = APIRouter(include_in_schema=False)


@router.get("/unbound")
async def queue(
    request: Request,
    conn: Conn,
    session: WebSession,
    state: Annotated[str, Query(pattern="^(pending|assigned|discarded)$")] = "pending",
) -> Response:
    return await _page(request, conn, session, state)


async def _page(
    request: Request,
    conn: AsyncConnection[Any],
    session: Session,
    state: str,
    *,
    problem: tuple[int, str, tuple[web_search.FoundResident, ...]] | None = None,
    status_code: int = 200,
) -> Response:
    """The queue, with residents checked in near each reading's time at its station, and
    (``problem``) what was wrong with a resident typed for one item, with the candidates."""
    items = await web_unbound.queue(conn, session.actor, state=state)
    suggestions = (
        await web_search.unbound_suggestions(conn, session.actor, [i.id for i in items])
        if state == "pending"
        else {}
    )
    return render(
        request,
        "unbound.html",
        {
            "actor": session.actor,
            "csrf_token": session.csrf_token,
            "items": items,
            "state": state,
            "message": request.query_params.get("m"),
            "suggestions": suggestions,
            "problem": problem,
        },
        status_code,
    )


def _back(state: str, message: str) -> RedirectResponse:
    return RedirectResponse(f"/unbound?state={state}&m={message}", status_code=303)


@router.post("/unbound/{unbound_id}/assign")
async def assign(
    unbound_id: int,
    request: Request,
    conn: Conn,
    session: CsrfChecked,
    resident: Annotated[str, Form(max_length=40)],
    note: Annotated[str, Form(max_length=500)] = "",
    use_received_time: Annotated[bool, Form()] = False,
) -> Response:
    await web_unbound.require_item(conn, session.actor, unbound_id)
    try:
        resident_id = await web_unbound.resolve_resident(conn, session.actor, resident)
    except web_unbound.AmbiguousResident as exc:
        problem = (unbound_id, str(exc), exc.candidates)
        return await _page(request, conn, session, "pending", problem=problem, status_code=409)
    except access.NotFound as exc:
        problem = (unbound_id, f"찾을 수 없습니다 / not found: {exc.what}", ())
        return await _page(request, conn, session, "pending", problem=problem, status_code=404)
    await web_unbound.assign(
        conn,
        session.actor,
        unbound_id,
        resident_id,
        note=note,
        use_received_time=use_received_time,
    )
    return _back("pending", "assigned")


@router.post("/unbound/{unbound_id}/discard")
async def discard(
    unbound_id: int,
    conn: Conn,
    session: CsrfChecked,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    await web_unbound.discard(conn, session.actor, unbound_id, reason)
    return _back("pending", "discarded")


@router.post("/unbound/{unbound_id}/restore")
async def restore(
    unbound_id: int,
    conn: Conn,
    session: CsrfChecked,
    note: Annotated[str, Form(max_length=500)] = "",
    state: Annotated[str, Form()] = "assigned",
) -> Response:
    await web_unbound.restore(conn, session.actor, unbound_id, note)
    return _back(state if state in web_unbound.STATES else "pending", "restored")
