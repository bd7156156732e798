"""The unbound-readings queue: staff assign readings to residents, discard or restore them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from api.deps import Conn, CsrfChecked, WebSession
from api.routes.web import render
from api.store import web_unbound

router = APIRouter(include_in_schema=False)


@router.get("/unbound")
async def queue(
    request: Request,
    conn: Conn,
    session: WebSession,
    state: Annotated[str, Query(pattern="^(pending|assigned|discarded)$")] = "pending",
) -> Response:
    items = await web_unbound.queue(conn, session.actor, state=state)
    return render(
        request,
        "unbound.html",
        {
            "actor": session.actor,
            "csrf_token": session.csrf_token,
            "items": items,
            "state": state,
            "message": request.query_params.get("m"),
        },
    )


def _back(state: str, message: str) -> RedirectResponse:
    return RedirectResponse(f"/unbound?state={state}&m={message}", status_code=303)


@router.post("/unbound/{unbound_id}/assign")
async def assign(
    unbound_id: int,
    conn: Conn,
    session: CsrfChecked,
    resident: Annotated[str, Form(max_length=40)],
    note: Annotated[str, Form(max_length=500)] = "",
    use_received_time: Annotated[bool, Form()] = False,
) -> Response:
    resident_id = await web_unbound.resolve_resident(conn, session.actor, resident)
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
