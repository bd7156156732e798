"""Server push of alerts to open staff pages (issue 11.3a): ``GET /alerts/stream``.

The request's own database connection is released as soon as the stream is set up; the stream
borrows a pooled connection for a moment each time it looks (api.alerts explains the limits).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from psycopg_pool import AsyncConnectionPool

from api import alerts
from api.deps import WebSession
from api.store import access, contacts, web_alerts
from api.store.access import Actor, Role

router = APIRouter(include_in_schema=False)
STAFF = (Role.NURSE, Role.ADMIN, Role.THERAPIST, Role.LIAISON)  # station kiosks get no alerts


def _snapshot(pool: AsyncConnectionPool, actor: Actor, timeout_s: float) -> alerts.Snapshot:
    """The closure a stream calls to look: waiting alerts with phones, and the count. Phone
    reads and alert pushes are audited once per resident and flag, not at every look."""
    phones: dict[str, str | None] = {}
    pushed: set[int] = set()

    async def look() -> tuple[list[dict[str, Any]], int | None]:
        async with pool.connection(timeout=timeout_s) as conn:
            waiting = await web_alerts.waiting(conn, actor)
            new_residents = {a.resident_id for a in waiting} - set(phones)
            if new_residents:
                found = await contacts.contacts(
                    conn, actor, new_residents, entity="Patient.contact/alert"
                )
                for rid in new_residents:
                    phones[rid] = found[rid].phone if rid in found else None
            fresh = [a for a in waiting if a.flag_id not in pushed]
            if fresh:
                await access.record_audit(
                    conn,
                    actor,
                    subtype="read",
                    action="R",
                    entity="Flag/alert",
                    residents=sorted({a.resident_id for a in fresh}),
                )
                pushed.update(a.flag_id for a in fresh)
            count = await web_alerts.open_critical(conn, actor)
        return [web_alerts.describe(a, actor, phones.get(a.resident_id)) for a in waiting], count

    return look


def _relevant(pool: AsyncConnectionPool, actor: Actor, timeout_s: float) -> alerts.Relevant:
    async def relevant(changed: alerts.Changed) -> bool:
        if changed is not None and not changed:
            return False
        async with pool.connection(timeout=timeout_s) as conn:
            return await web_alerts.concerns(conn, actor, changed)

    return relevant


@router.get("/alerts/stream")
async def alert_stream(request: Request, session: WebSession) -> Response:
    hub: alerts.AlertHub = request.app.state.alert_hub
    actor = session.actor
    if actor.role not in STAFF:
        raise access.AccessDenied(actor, "receive staff alerts")
    try:
        alerts.admit(hub, actor.user_id)
    except alerts.TooManyStreams as exc:
        return Response(
            f"알림 연결이 너무 많습니다 / too many alert streams: {exc}",
            status_code=503,
            headers={"Retry-After": "10"},
            media_type="text/plain; charset=utf-8",
        )
    pool: AsyncConnectionPool = request.app.state.pool
    timeout_s = request.app.state.config.pool_timeout_s
    look = _snapshot(pool, actor, timeout_s)
    return StreamingResponse(
        alerts.stream(hub, actor, look, _relevant(pool, actor, timeout_s)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
