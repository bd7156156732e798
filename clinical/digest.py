"""The routine tier's weekly digest (clinical-rules.md §0: routine → worklist and a weekly digest;
§10.2.1, in the TIDE style of a weekly population review).

Pure values. Each nurse gets, once a week, the routine items of her residents for the week that
ended: flags of severity ``routine`` addressed to the nurse that were open at any moment of the
week (opened during it, or still open from before), each with what became of it. A nurse with no
such item gets no digest (a weekly "nothing" is noise). The runner (:mod:`clinical.runner`)
reads the flags, builds the digests with :func:`build` and stores them; the delivering service
sends each through the alert outbox as a FHIR ``Communication`` and the web app shows it.

When: a week runs Monday 00:00 to Monday 00:00 Asia/Seoul. Its digest is made at the first
staffed opening after the week ends (:func:`due`): Monday 09:00 by default, Tuesday 09:00 when
the Monday is a public holiday (the substitute days of the ``holidays`` library included), and so
on. Routine work never goes to an on-call nurse and never notifies at night (§10.2.7); with no
staffed hours configured (staffed around the clock) it is made at Monday 00:00.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from clinical.alerts import KST, StaffedHours

NOTICE = "weekly_digest"  # X-Daon-Notice of its rest-hook notification


def week_start(day: date) -> date:
    """The Monday of ``day``'s week."""
    return day - timedelta(days=day.weekday())


def period(week: date) -> tuple[datetime, datetime]:
    """The week as instants: Monday 00:00 to the next Monday 00:00, Asia/Seoul."""
    start = datetime.combine(week, time(0, 0), KST)
    return start, start + timedelta(days=7)


def due(week: date, hours: StaffedHours | None) -> datetime:
    """When the digest of ``week`` is made and delivered: the first staffed opening at or after
    the week's end (never on-call time)."""
    end = period(week)[1]
    return end if hours is None else hours.next_open(end)


def last_week_due(now: datetime, hours: StaffedHours | None) -> date | None:
    """The week whose digest is due at ``now``: the week before the current one, once its
    :func:`due` time has come (None before that)."""
    previous = week_start(now.astimezone(KST).date()) - timedelta(days=7)
    return previous if now >= due(previous, hours) else None


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One routine flag in a nurse's week."""

    flag_id: int
    resident_id: str
    resident_name: str
    rule: str
    title_ko: str
    summary: str
    opened_at: datetime
    state: str  # the flag's state when the digest is made (open, acknowledged, closed, ...)
    closed_at: datetime | None = None

    def is_new(self, week: date) -> bool:
        start, end = period(week)
        return start <= self.opened_at < end

    def closed_in(self, week: date) -> bool:
        start, end = period(week)
        return self.closed_at is not None and start <= self.closed_at < end

    def as_json(self, week: date) -> dict[str, object]:
        return {
            "flag_id": self.flag_id,
            "resident_id": self.resident_id,
            "resident_name": self.resident_name,
            "rule": self.rule,
            "title_ko": self.title_ko,
            "summary": self.summary,
            "opened_at": self.opened_at.astimezone(KST).isoformat(),
            "state": self.state,
            "closed_at": None
            if self.closed_at is None
            else self.closed_at.astimezone(KST).isoformat(),
            "new": self.is_new(week),
        }


@dataclass(frozen=True, slots=True)
class Digest:
    """One nurse's weekly digest."""

    recipient: str
    week: date
    made_at: datetime
    deliver_after: datetime
    items: tuple[DigestItem, ...]

    @property
    def new(self) -> int:
        return sum(1 for i in self.items if i.is_new(self.week))

    @property
    def still_open(self) -> int:
        return sum(1 for i in self.items if i.closed_at is None)

    @property
    def closed(self) -> int:
        return sum(1 for i in self.items if i.closed_in(self.week))

    def text(self) -> str:
        """The digest as plain text, Korean first (a relay's message, the Communication's
        payload): the counts, then one line per resident with her items."""
        first, last = self.week, self.week + timedelta(days=6)
        lines = [
            f"[다온] 주간 요약 {first:%Y-%m-%d}~{last:%m-%d}: 일상 관리 항목 {len(self.items)}건 "
            f"(새 항목 {self.new}건, 아직 열림 {self.still_open}건, 이번 주 종료 {self.closed}건). "
            f"/ Weekly digest {first:%Y-%m-%d} to {last:%m-%d}: {len(self.items)} routine "
            f"items ({self.new} new, {self.still_open} still open, {self.closed} closed this "
            f"week)."
        ]
        for resident, items in _by_resident(self.items):
            titles = ", ".join(
                f"{i.title_ko}{' (새)' if i.is_new(self.week) else ''}"
                f"{' (종료)' if i.closed_at is not None else ''}"
                for i in items
            )
            lines.append(f"- {items[0].resident_name} ({resident}): {titles}")
        return "\n".join(lines)


def _by_resident(items: Iterable[DigestItem]) -> list[tuple[str, list[DigestItem]]]:
    grouped: dict[str, list[DigestItem]] = {}
    for item in items:
        grouped.setdefault(item.resident_id, []).append(item)
    return list(grouped.items())


def build(
    items: Sequence[tuple[str, DigestItem]],
    week: date,
    now: datetime,
    hours: StaffedHours | None,
) -> list[Digest]:
    """The digests of ``week`` from ``(nurse id, item)`` pairs: one per nurse with at least one
    item open during the week, items ordered by resident name, then opening time."""
    start, end = period(week)
    by_nurse: dict[str, list[DigestItem]] = {}
    for nurse, item in items:
        if item.opened_at >= end or (item.closed_at is not None and item.closed_at < start):
            continue  # not open at any moment of the week
        by_nurse.setdefault(nurse, []).append(item)
    return [
        Digest(
            recipient=nurse,
            week=week,
            made_at=now,
            deliver_after=max(now, due(week, hours)),
            items=tuple(sorted(found, key=lambda i: (i.resident_name, i.resident_id, i.opened_at))),
        )
        for nurse, found in sorted(by_nurse.items())
    ]
