"""Role views: resident search, the rehabilitation therapist's overview, the liaison officer's
view and the admin audit trail."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from api.deps import Conn, WebSession
from api.routes.web import render
from api.store import access, contacts, web_admin, web_alerts, web_pages, web_search
from api.store.access import Capability

router = APIRouter(include_in_schema=False)


@router.get("/search")
async def search(
    request: Request,
    conn: Conn,
    session: WebSession,
    q: Annotated[str, Query(max_length=60)] = "",
) -> Response:
    """Find a resident by name (partial), id, card or phone; a single exact hit opens them."""
    actor = session.actor
    result = await web_search.find_residents(conn, actor, q)
    exact = [r for r in result.residents if r.exact]
    if len(exact) == 1 and result.total == 1:
        return RedirectResponse(web_search.resident_link(actor, exact[0].id), status_code=303)
    return render(
        request,
        "search.html",
        {
            "actor": actor,
            "csrf_token": session.csrf_token,
            "result": result,
            "q": q,
            "link": lambda rid: web_search.resident_link(actor, rid),
        },
    )


@router.get("/digest")
async def digest(request: Request, conn: Conn, session: WebSession) -> Response:
    """The user's weekly digests of routine items (clinical-rules.md §0; clinical.digest)."""
    actor = session.actor
    if actor.role not in (access.Role.NURSE, access.Role.ADMIN):
        raise access.AccessDenied(actor, "read the weekly digest")
    found = await web_alerts.digests(conn, actor)
    return render(
        request,
        "digest.html",
        {"actor": actor, "csrf_token": session.csrf_token, "digests": found},
    )


@router.get("/rehab")
async def rehab(request: Request, conn: Conn, session: WebSession) -> Response:
    actor = session.actor
    if actor.role not in (access.Role.THERAPIST, access.Role.ADMIN):
        raise access.AccessDenied(actor, "use the rehabilitation view")
    rows = await web_pages.rehab_overview(conn, actor)
    return render(
        request,
        "rehab.html",
        {"actor": actor, "csrf_token": session.csrf_token, "rows": rows},
    )


async def _decided(
    conn: Conn, actor: access.Actor, consent_id: str | None
) -> tuple[str, access.Consent] | None:
    """The consent just withdrawn (for the message naming the resident, and its undo)."""
    if not consent_id or len(consent_id) > 40:
        return None
    try:
        consent = await access.consent_for_decision(
            conn, actor, consent_id, Capability.WITHDRAW_CONSENT
        )
    except (access.NotFound, access.AccessDenied):
        return None
    from api.store import rows

    name = await rows.scalar(
        conn, "SELECT display_name FROM resident WHERE id = %s", (consent.resident_id,)
    )
    return str(name), consent


@router.get("/liaison")
async def liaison(request: Request, conn: Conn, session: WebSession) -> Response:
    actor = session.actor
    if actor.role is not access.Role.LIAISON:
        raise access.AccessDenied(actor, "use the liaison officer's view")
    rows = await web_pages.liaison_overview(conn, actor)
    phones = await contacts.contacts(
        conn, actor, [r.resident_id for r in rows], entity="page:liaison contacts"
    )
    return render(
        request,
        "liaison.html",
        {
            "actor": actor,
            "csrf_token": session.csrf_token,
            "rows": rows,
            "contacts": phones,
            "now": datetime.now().astimezone(),
            "message": request.query_params.get("m"),
            "decided": await _decided(conn, actor, request.query_params.get("c")),
        },
    )


@router.get("/admin/audit")
async def audit(
    request: Request,
    conn: Conn,
    session: WebSession,
    resident: Annotated[str | None, Query(max_length=20, pattern=r"^[A-Za-z0-9-]*$")] = None,
    agent: Annotated[str | None, Query(max_length=40, pattern=r"^[A-Za-z0-9-]*$")] = None,
    entity: Annotated[str | None, Query(max_length=60)] = None,
    outcome: Annotated[str | None, Query(pattern="^(|0|4|8|12)$")] = None,
    days: Annotated[int, Query(ge=1, le=3650)] = 365,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """The audit trail, one line per request, 50 lines a page, filtered by resident, user,
    what was touched and outcome."""
    actor = session.actor
    actor.require(Capability.READ_AUDIT)
    lines = await web_admin.audit_lines(
        conn,
        actor,
        resident_id=resident or None,
        agent_user_id=agent or None,
        entity=entity or None,
        outcome=outcome or None,
        before_id=before,
        since=datetime.now().astimezone() - timedelta(days=days),
        limit=50,
    )
    filters = {
        "resident": resident or "",
        "agent": agent or "",
        "entity": entity or "",
        "outcome": outcome or "",
        "days": days,
    }
    return render(
        request,
        "audit.html",
        {
            "actor": actor,
            "csrf_token": session.csrf_token,
            "lines": lines,
            **filters,
            "older": urlencode({**filters, "before": lines[-1].first_id})
            if len(lines) == 50
            else None,
            "first_page": before is None,
        },
    )
