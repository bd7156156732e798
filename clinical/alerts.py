"""The §0 alert chain's calendar and roster: staffed hours, public holidays, who is told.

Pure values. Public holidays come in as a set of dates: the runner builds it from the maintained
``holidays`` library (Korean public holidays, substitute days included), never from a table of
our own. The lifecycle asks :class:`Cover` when the chain's clock starts; the runner asks
:func:`route` which people a notify event's roles mean for one resident.

Outside staffed hours the resident-facing instruction applies at once and the nurse's item opens
the next staffed morning's queue (§0), unless an on-call nurse is configured: then the on-call
nurse is told at once and the chain runs in real time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

KST = timezone(timedelta(hours=9))

# roles a notify event names (clinical.flags.Recipient values plus the escalation target)
NURSE, NURSE_LEAD, LIAISON, ON_CALL = "nurse", "nurse_lead", "liaison", "on_call"


@dataclass(frozen=True, slots=True)
class StaffedHours:
    """When the nursing team works: weekdays (Monday = 0) between ``start`` and ``end`` local
    time, except public holidays. Default: weekdays 09:00-18:00 Asia/Seoul (§0)."""

    start: time = time(9, 0)
    end: time = time(18, 0)
    weekdays: frozenset[int] = frozenset(range(5))
    holidays: frozenset[date] = frozenset()
    tz: timezone = KST

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self.weekdays and day not in self.holidays

    def is_staffed(self, when: datetime) -> bool:
        local = when.astimezone(self.tz)
        return self.is_working_day(local.date()) and self.start <= local.time() < self.end

    def next_open(self, when: datetime) -> datetime:
        """``when`` itself when staffed, else the start of the next staffed period."""
        if self.is_staffed(when):
            return when
        local = when.astimezone(self.tz)
        day = local.date()
        if self.is_working_day(day) and local.time() < self.start:
            return datetime.combine(day, self.start, self.tz)
        for _ in range(400):  # a year of holidays cannot exhaust this
            day += timedelta(days=1)
            if self.is_working_day(day):
                return datetime.combine(day, self.start, self.tz)
        raise ValueError("no working day within 400 days: check staffed weekdays")

    def day_end(self, when: datetime) -> datetime:
        """The end of the staffed day on which an item raised at ``when`` is worked."""
        opened = self.next_open(when).astimezone(self.tz)
        return datetime.combine(opened.date(), self.end, self.tz)


@dataclass(frozen=True, slots=True)
class Duty:
    """Who covers a neighbourhood (or the whole district): the nurse team lead, a backup nurse
    and, optionally, an on-call nurse for hours nobody is staffed. User ids of ``app_user``."""

    lead: str | None = None
    backup: str | None = None
    on_call: str | None = None


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """The roster and staffed hours of the chain (the ``[clinical.alerts]`` settings table).
    ``hours`` None means staffed around the clock."""

    hours: StaffedHours | None = field(default_factory=StaffedHours)
    district: Duty = field(default_factory=Duty)
    neighbourhoods: tuple[tuple[str, Duty], ...] = ()

    def duty(self, neighbourhood: str | None) -> Duty:
        """The neighbourhood's roster, each empty place filled from the district's."""
        local = dict(self.neighbourhoods).get(neighbourhood or "", Duty())
        d = self.district
        return Duty(
            lead=local.lead or d.lead,
            backup=local.backup or d.backup,
            on_call=local.on_call or d.on_call,
        )

    def cover(self, neighbourhood: str | None) -> Cover:
        return Cover(self.hours, on_call=self.duty(neighbourhood).on_call is not None)

    def staffed(self, when: datetime) -> bool:
        return self.hours is None or self.hours.is_staffed(when)


@dataclass(frozen=True, slots=True)
class Cover:
    """What the lifecycle needs to time a resident's chain: staffed hours (None: always staffed)
    and whether an on-call nurse answers outside them."""

    hours: StaffedHours | None = None
    on_call: bool = False

    def staffed(self, when: datetime) -> bool:
        return self.hours is None or self.hours.is_staffed(when)

    def chain_start(self, raised: datetime) -> datetime:
        """When the §0 clock starts for an alert raised at ``raised``: at once when someone is
        on duty (staffed hours or on-call), else at the next staffed opening."""
        if self.hours is None or self.on_call:
            return raised
        return self.hours.next_open(raised)

    def deliver_after(self, at: datetime) -> datetime | None:
        """For a critical staff notification at ``at``: None to deliver now, or the morning it
        waits for (nobody on duty)."""
        start = self.chain_start(at)
        return None if start <= at else start

    def next_working_open(self, at: datetime) -> datetime | None:
        """For non-critical work (never paged to on-call): None when staffed now, else the next
        staffed opening."""
        if self.hours is None or self.hours.is_staffed(at):
            return None
        return self.hours.next_open(at)


ALWAYS = Cover()


def route(
    roles: Sequence[str],
    *,
    nurse: str | None,
    liaison: str | None,
    duty: Duty,
    staffed: bool,
) -> tuple[str, ...]:
    """The people a notify event for ``roles`` reaches (user ids, in order, no repeats).

    ``nurse`` is the resident's nurse; outside staffed hours the on-call nurse takes her place
    when there is one (she still sees it in the morning). The team lead escalation goes to the
    lead, or the backup nurse when the lead is the resident's own nurse or not set; with no
    roster at all it stays with the nurse, so nothing is silently dropped.
    """
    out: list[str] = []

    def add(*users: str | None) -> None:
        for u in users:
            if u and u not in out:
                out.append(u)

    for role in roles:
        if role == NURSE:
            if not staffed and duty.on_call:
                add(duty.on_call)
            add(nurse or duty.lead or duty.backup)
        elif role == NURSE_LEAD:
            lead = duty.lead if duty.lead and duty.lead != nurse else duty.backup
            add(lead or duty.lead or nurse)
            if not staffed and duty.on_call:
                add(duty.on_call)
        elif role == LIAISON:
            add(liaison)
        elif role == ON_CALL:
            add(duty.on_call)
    return tuple(out)


def policy_from(table: Mapping[str, object] | None, holidays: Iterable[date] = ()) -> AlertPolicy:
    """The policy from the ``[clinical.alerts]`` settings table; unknown keys raise ValueError.

    Keys: ``staffed_start`` / ``staffed_end`` ("HH:MM"), ``staffed_weekdays`` (0 = Monday),
    ``team_lead``, ``backup_nurse``, ``on_call_nurse`` and ``neighbourhood`` (a table of 동 →
    the same three keys).
    """
    values = dict(table or {})
    known = {
        "staffed_start",
        "staffed_end",
        "staffed_weekdays",
        "team_lead",
        "backup_nurse",
        "on_call_nurse",
        "neighbourhood",
        "holiday_country",
    }
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown [clinical.alerts] settings: {sorted(unknown)}")
    base = StaffedHours()
    hours = StaffedHours(
        start=_hhmm(values.get("staffed_start"), base.start),
        end=_hhmm(values.get("staffed_end"), base.end),
        weekdays=frozenset(
            int(str(d)) for d in _seq(values.get("staffed_weekdays", sorted(base.weekdays)))
        ),
        holidays=frozenset(holidays),
    )
    if not hours.start < hours.end:
        raise ValueError("[clinical.alerts] staffed_start must be before staffed_end")
    if not hours.weekdays or not hours.weekdays <= set(range(7)):
        raise ValueError("[clinical.alerts] staffed_weekdays must be days 0 (Monday) to 6")
    areas = values.get("neighbourhood") or {}
    if not isinstance(areas, Mapping):
        raise ValueError("[clinical.alerts.neighbourhood] must be a table of 동 names")
    return AlertPolicy(
        hours=hours,
        district=_duty(values, "[clinical.alerts]"),
        neighbourhoods=tuple(
            (str(name), _duty(dict(t), f"[clinical.alerts.neighbourhood.{name}]"))
            for name, t in sorted(areas.items())
            if isinstance(t, Mapping)
        ),
    )


def _duty(values: Mapping[str, object], where: str) -> Duty:
    extra = set(values) - {
        "team_lead",
        "backup_nurse",
        "on_call_nurse",
        "staffed_start",
        "staffed_end",
        "staffed_weekdays",
        "neighbourhood",
        "holiday_country",
    }
    if extra:
        raise ValueError(f"unknown {where} settings: {sorted(extra)}")

    def user(key: str) -> str | None:
        v = values.get(key)
        return str(v) if v else None

    return Duty(lead=user("team_lead"), backup=user("backup_nurse"), on_call=user("on_call_nurse"))


def _hhmm(value: object, default: time) -> time:
    if value is None:
        return default
    try:
        return time.fromisoformat(str(value))
    except ValueError as exc:
        raise ValueError(f"[clinical.alerts] expects HH:MM, not {value!r}") from exc


def _seq(value: object) -> list[object]:
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ValueError(f"[clinical.alerts] staffed_weekdays must be a list, not {value!r}")
