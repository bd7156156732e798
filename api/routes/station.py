"""The resident station screen: check in by card, then the reading just taken, in large type.

The card number travels only in the POST body, never in a URL or a log line. The check-in is
recorded first, then published to the station's gateway (which opens its binding session);
if the broker is not configured or does not acknowledge, the screen says so and staff can
bind the readings from the unbound queue.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from api import explain
from api.checkin import CheckinPublisher
from api.config import ApiConfig
from api.deps import Conn, CsrfChecked, WebSession
from api.routes.web import render
from api.store import access, throttle, web_station
from api.store.access import Capability

router = APIRouter(include_in_schema=False)


def masked_name(name: str) -> str:
    """Enough of a name for a resident to recognise it on a shared screen: 김하늘 → 김*늘."""
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


#: The order a resident reads results in: blood pressure first, then pulse, glucose, weight and
#: body composition (issue 15.1); anything else after them.
READING_ORDER = (
    explain.BP_PANEL,
    explain.PULSE,
    *sorted(explain.GLUCOSE_CODES),
    explain.WEIGHT,
    explain.BMI,
    explain.BODY_FAT,
    explain.MUSCLE_MASS,
)


def reading_rank(code: str) -> int:
    return READING_ORDER.index(code) if code in READING_ORDER else len(READING_ORDER)


def checkin_event(checkin: web_station.CheckIn, card: str) -> dict[str, Any]:
    """The check-in command of the system contract (devices/station.py event + resident)."""
    return {
        "schema": 1,
        "type": "checkin",
        "station": checkin.station_id,
        "card": card,
        "at": checkin.at.astimezone(UTC).isoformat(),
        "resident": checkin.resident_id,
        "session": checkin.id,
    }


async def publish_checkin(
    request: Request, conn: Any, checkin: web_station.CheckIn, card: str
) -> None:
    publisher: CheckinPublisher = request.app.state.publisher
    if checkin.gateway_id is None:
        await web_station.record_delivery(
            conn, checkin.id, False, "측정대에 게이트웨이가 없습니다 / station has no gateway"
        )
        return
    delivery = await publisher.publish(checkin.gateway_id, checkin_event(checkin, card))
    await web_station.record_delivery(conn, checkin.id, delivery.delivered, delivery.note)


def require_station(actor: access.Actor) -> None:
    """The station screen and its card check-in are for station accounts only."""
    actor.require(Capability.CHECK_IN)
    if actor.role is not access.Role.STATION or actor.station_id is None:
        raise access.AccessDenied(actor, "use the station screen (not a station account)")


@router.get("/station")
async def station_screen(request: Request, conn: Conn, session: WebSession) -> Response:
    return await _screen(request, conn, session, error=request.query_params.get("e"))


async def _screen(
    request: Request,
    conn: Any,
    session: Any,
    *,
    error: str | None = None,
    typed: str = "",
    status_code: int = 200,
) -> Response:
    """The station screen; ``typed`` keeps the digits of a card that was not found."""
    actor = session.actor
    require_station(actor)
    place = await web_station.station_place(conn, actor)
    checkin = await web_station.active_checkin(conn, actor)
    shown: list[tuple[web_station.Reading, explain.Explanation]] = []
    waiting = False  # a reading the risk engine has not looked at yet
    evaluated: frozenset[str] = frozenset()
    if checkin is not None:
        found = sorted(
            await web_station.station_readings(conn, actor, checkin),
            key=lambda r: (reading_rank(r.code), -r.effective_at.timestamp()),
        )
        evaluated, flags = await web_station.raised_from(
            conn, actor, checkin, [r.id for r in found]
        )
        for reading in found:
            explained = explain.explain(
                reading.code,
                reading.value,
                reading.unit,
                reading.components,
                height_cm=checkin.height_cm,
            )
            if explained is None:
                continue
            raised = [
                explain.RaisedFlag(f.rule, f.severity, f.nurse_told_after)
                for f in flags
                if f.reading_id == reading.id
            ]
            shown.append(
                (reading, explain.with_flags(explained, raised, evaluated=reading.id in evaluated))
            )
            waiting |= reading.id not in evaluated
    # What the screen shows, as one key: the page script swaps the screen when it changes.
    state = (
        "welcome"
        if checkin is None
        else f"{checkin.id}:"
        + ",".join(f"{r.id}{'+' if r.id in evaluated else ''}" for r, _ in shown)
    )
    return render(
        request,
        "station.html",
        {
            "actor": actor,
            "csrf_token": session.csrf_token,
            "place": place,
            "checkin": checkin,
            "name": masked_name(checkin.display_name) if checkin else "",
            "readings": shown,
            "waiting": waiting,
            "state": state,
            "now": datetime.now(UTC),
            "error": error,
            "typed": typed,
        },
        status_code=status_code,
    )


@router.post("/station/checkin")
async def station_checkin(
    request: Request,
    conn: Conn,
    session: CsrfChecked,
    card_number: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    require_station(session.actor)
    config: ApiConfig = request.app.state.config
    try:
        checkin = await web_station.check_in(
            conn, session.actor, card_number, card_policy=config.station_card_policy
        )
    except web_station.CardReaderLocked:
        return RedirectResponse("/station?e=locked", status_code=303)
    except access.NotFound:
        # The typed digits stay in the field (issue 15.1): the page is rendered here, so the
        # card number never travels in a URL.
        typed = "".join(c for c in card_number if c in "0123456789 -")[:40]
        return await _screen(request, conn, session, error="card", typed=typed, status_code=422)
    await publish_checkin(
        request, conn, checkin, "".join(c for c in card_number if c in "0123456789")
    )
    return RedirectResponse("/station", status_code=303)


@router.post("/station/finish")
async def station_finish(conn: Conn, session: CsrfChecked) -> Response:
    require_station(session.actor)
    await web_station.end_checkin(conn, session.actor)
    return RedirectResponse("/station", status_code=303)


@router.get("/stations")
async def stations(request: Request, conn: Conn, session: WebSession) -> Response:
    """Staff see which stations' card readers are locked after card guessing, and clear them."""
    locked = await throttle.blocked_stations(conn, session.actor)
    return render(
        request,
        "stations.html",
        {
            "actor": session.actor,
            "csrf_token": session.csrf_token,
            "locked": locked,
            "message": request.query_params.get("m"),
        },
    )


@router.post("/stations/{station_id}/unlock")
async def unlock_station(station_id: str, conn: Conn, session: CsrfChecked) -> Response:
    await throttle.clear_station(conn, session.actor, station_id)
    return RedirectResponse("/stations?m=unlocked", status_code=303)
