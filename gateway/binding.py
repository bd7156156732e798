"""Whose reading is it: check-in sessions at stations, the registry for personal devices.

Pure: values in, values out; the caller passes the time. (fhir-mapping-and-anchors.md §5.1.)

* A **check-in** (card number or QR at the kiosk, staff on the tablet, or the API's command)
  opens a session on one station for ``window_s``, from the whole second it arrived in
  (device clocks count whole seconds). A new check-in at the same station closes
  the previous session at that moment, so two residents back to back are never mixed up; a
  card the gateway does not know also ends the previous kiosk session (someone else is there
  now) but opens none. It does not end a session the central side opened for a named resident
  (the station screen shows that resident's name and results): a stray unknown card must not
  send the checked-in resident's readings to the unbound queue (issue 15.1).
* Check-ins are placed by their own time, not by arrival: one that arrives after a later one
  (a kiosk's event delayed in flight) is slotted in before it and ends where it starts, so it
  never shadows the later resident's session.
* A station device's reading is bound to the session whose interval contains the reading's
  *measurement* time (the device time placed on the gateway's timeline, see ``clock``), not
  its arrival time: a cuff whose memory arrives after the next check-in still goes to the
  resident who measured. Sessions are remembered for a while for exactly that reason.
* A personal device binds through the registry: its owner, or for a multi-user device the
  resident mapped to the reading's user slot. An unmapped slot is unbound: a user slot is
  never a person by itself.
* Anything else (no session, untrusted or missing time, unknown slot, unknown device) is
  **unbound**, with the reason, for staff to resolve. Nothing is guessed.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from gateway.config import DeviceConfig


class Method(StrEnum):
    """How a binding was made (the wire format's ``binding.method``)."""

    CHECK_IN = "check-in"  # the resident checked in at the kiosk (card or QR)
    STAFF = "staff"  # staff checked the resident in (tablet, API station screen)
    REGISTRY = "registry"  # personal device: owner or (device, user slot) mapping


@dataclass(frozen=True, slots=True)
class CheckIn:
    """A request to bind a station to a resident from ``at`` on."""

    station: str
    at: datetime  # aware
    method: Method
    resident: str | None = None  # given by staff / the API
    card: str | None = None  # read by the kiosk; resolved through the card registry


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    station: str
    resident: str
    method: Method
    opened_at: datetime
    closes_at: datetime

    def contains(self, moment: datetime) -> bool:
        return self.opened_at <= moment < self.closes_at


@dataclass(frozen=True, slots=True)
class Binding:
    """A reading bound to a resident (the wire's ``binding``)."""

    resident: str
    method: Method
    session: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one reading: a binding, or None with the reason it stays unbound."""

    binding: Binding | None
    reason: str


@dataclass(frozen=True, slots=True)
class CheckInResult:
    opened: Session | None
    closed: Session | None  # the previous session this check-in ended early
    reason: str


def session_id(station: str, resident: str, opened_at: datetime) -> str:
    """A stable id for a session (the same check-in replayed gives the same id)."""
    key = f"{station}|{resident}|{opened_at.isoformat()}".encode()
    return "S" + hashlib.sha256(key).hexdigest()[:15]


class Binder:
    """Sessions per station plus the registry. Not thread-safe; one event loop owns it."""

    def __init__(
        self,
        *,
        stations: tuple[str, ...],
        window_s: float,
        cards: Mapping[str, str] | None = None,
        history: int = 64,
    ) -> None:
        self.window = timedelta(seconds=window_s)
        self.cards = dict(cards or {})
        self._sessions: dict[str, deque[Session]] = {s: deque(maxlen=history) for s in stations}

    def check_in(self, request: CheckIn) -> CheckInResult:
        sessions = self._sessions.get(request.station)
        if sessions is None:
            return CheckInResult(None, None, f"unknown station {request.station!r}")
        # Device clocks count whole seconds: a reading stamped in the second of the check-in
        # belongs to the new session, so sessions start on the second.
        request = replace(request, at=request.at.replace(microsecond=0))
        resident = request.resident
        if resident is None and request.card is not None:
            resident = self.cards.get(request.card)
        if resident is not None and sessions:
            repeated = session_id(request.station, resident, request.at)
            if sessions[-1].id == repeated:
                return CheckInResult(sessions[-1], None, "check-in already open (repeated)")
        if resident is None:
            what = "card not registered" if request.card else "no resident or card given"
            current = self.open_session(request.station, request.at)
            if current is not None and current.method is Method.STAFF:
                return CheckInResult(
                    None, None, f"check-in refused: {what}; {current.id} stays open"
                )
            closed = self._close_current(sessions, request.at)
            return CheckInResult(None, closed, f"check-in refused: {what}")
        if sessions and request.at < sessions[-1].opened_at:
            return self._insert_late(sessions, request, resident)
        closed = self._close_current(sessions, request.at)
        opened = Session(
            id=session_id(request.station, resident, request.at),
            station=request.station,
            resident=resident,
            method=request.method,
            opened_at=request.at,
            closes_at=request.at + self.window,
        )
        sessions.append(opened)
        return CheckInResult(opened, closed, "session opened")

    def _insert_late(
        self, sessions: deque[Session], request: CheckIn, resident: str
    ) -> CheckInResult:
        """A check-in older than the newest session: slot it in by time, ending where the
        next session starts (it never shadows a later check-in)."""
        ordered = list(sessions)
        at = request.at
        index = next(i for i, s in enumerate(ordered) if s.opened_at > at)
        opened = Session(
            id=session_id(request.station, resident, at),
            station=request.station,
            resident=resident,
            method=request.method,
            opened_at=at,
            closes_at=min(at + self.window, ordered[index].opened_at),
        )
        if any(s.id == opened.id for s in ordered):
            return CheckInResult(opened, None, "check-in already open (repeated)")
        closed = None
        if index > 0 and ordered[index - 1].contains(at):
            closed = replace(ordered[index - 1], closes_at=at)
            ordered[index - 1] = closed
        ordered.insert(index, opened)
        sessions.clear()
        sessions.extend(ordered)
        return CheckInResult(opened, closed, "session opened (arrived late, placed by its time)")

    def check_out(self, station: str, at: datetime) -> Session | None:
        """End the station's open session at ``at`` (the resident left)."""
        sessions = self._sessions.get(station)
        return None if sessions is None else self._close_current(sessions, at)

    def _close_current(self, sessions: deque[Session], at: datetime) -> Session | None:
        if not sessions:
            return None
        last = sessions[-1]
        if last.opened_at <= at < last.closes_at:
            closed = replace(last, closes_at=at)
            sessions[-1] = closed
            return closed
        return None

    def open_session(self, station: str, at: datetime) -> Session | None:
        sessions = self._sessions.get(station)
        if not sessions:
            return None
        last = sessions[-1]
        return last if last.contains(at) else None

    def sessions(self, station: str) -> tuple[Session, ...]:
        return tuple(self._sessions.get(station, ()))

    def bind_card(self, card: str) -> Decision:
        """A reading that carries its own check-in (a kiosk message with the card it read)."""
        resident = self.cards.get(card)
        if resident is None:
            return Decision(None, "the kiosk's check-in card is not registered")
        return Decision(Binding(resident, Method.CHECK_IN, None), "kiosk check-in in the message")

    def bind(
        self,
        device: DeviceConfig | None,
        *,
        measured_at: datetime | None,
        time_trusted: bool,
        user_index: int | None = None,
        card: str | None = None,
    ) -> Decision:
        """Bind one reading. ``card`` is a check-in carried inside a kiosk's own message."""
        if device is None:
            return Decision(None, "device is not registered at this gateway")
        if device.station is None:
            return _bind_personal(device, user_index)
        if card is not None:
            resident = self.cards.get(card)
            if resident is None:
                return Decision(None, "the kiosk's check-in card is not registered")
            return Decision(
                Binding(resident, Method.CHECK_IN, None), "kiosk check-in in the message"
            )
        if measured_at is None:
            return Decision(None, "the reading has no usable time: cannot place it in a session")
        if not time_trusted:
            return Decision(None, "the device time is not trusted: cannot place it in a session")
        for session in reversed(self._sessions.get(device.station, ())):
            if session.contains(measured_at):
                return Decision(
                    Binding(session.resident, session.method, session.id),
                    f"measured during session {session.id}",
                )
        return Decision(None, f"no check-in session at {device.station} when it was measured")


def _bind_personal(device: DeviceConfig, user_index: int | None) -> Decision:
    if device.users:
        resident = device.resident_for_slot(user_index)
        if resident is None:
            slot = "unknown (255)" if user_index in (None, 255) else str(user_index)
            return Decision(None, f"user slot {slot} is not mapped to a resident")
        return Decision(
            Binding(resident, Method.REGISTRY), f"user slot {user_index} in the registry"
        )
    if device.owner is not None:
        return Decision(Binding(device.owner, Method.REGISTRY), "personal device of its owner")
    return Decision(None, "personal device without an owner or user slots")
