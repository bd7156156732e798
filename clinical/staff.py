"""Staff actions on a flag (acknowledge, snooze, reached, resolve): the pure lifecycle, stored.

The api calls these; each one locks the flag, runs the matching function of
:mod:`clinical.lifecycle` (the only home of the rules), and stores in the same transaction
what it returns: the flag row, its FHIR Flag and RiskAssessment, the status of its Tasks and
the audit event, then tells listeners (``NOTIFY daon_flags``) so open pages update. After any
action the stored FHIR resources say what the screen says.

Like :mod:`clinical.runner`, an I/O module: it imports the clinical core and ``ingest.store``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg

from clinical import lifecycle
from clinical.errors import LifecycleError
from clinical.lifecycle import FlagState
from clinical.resources import business_status, flag_resource, risk_assessment
from clinical.ruleset import DEFAULT_RULESET, RuleSet
from clinical.runner import (
    FLAGS_CHANNEL,
    Excluded,
    RunnerConfig,
    evaluate_residents,
    obs_key,
    quality_exclusions,
    to_row,
    to_state,
)
from ingest.store import clinical as db

Conn = psycopg.AsyncConnection[Any]

__all__ = [
    "Excluded",
    "LifecycleError",
    "acknowledge",
    "evaluate_now",
    "quality_exclusions",
    "reached",
    "resolve",
    "snooze",
]


async def acknowledge(conn: Conn, flag_id: int, by: str, now: datetime) -> db.FlagRow | None:
    """None when there is no such open flag."""
    return await _apply(
        conn, flag_id, "acknowledge", None, by, now, lambda f: lifecycle.acknowledge(f, by, now)
    )


async def snooze(
    conn: Conn, flag_id: int, by: str, until: datetime, reason: str, now: datetime
) -> db.FlagRow | None:
    """Raises LifecycleError without a reason or with a time in the past."""
    return await _apply(
        conn,
        flag_id,
        "snooze",
        f"until {until.isoformat()}: {reason.strip()}",
        by,
        now,
        lambda f: lifecycle.snooze(f, by, until, reason, now),
    )


async def reached(conn: Conn, flag_id: int, by: str, now: datetime) -> db.FlagRow | None:
    """The nurse spoke with the resident: no welfare check is needed."""
    return await _apply(
        conn, flag_id, "reached", None, by, now, lambda f: lifecycle.reached(f, by, now)
    )


async def resolve(conn: Conn, flag_id: int, by: str, note: str, now: datetime) -> db.FlagRow | None:
    """Staff documented the follow-up: the flag and its tasks close (closed by staff)."""
    return await _apply(
        conn,
        flag_id,
        "resolve",
        note.strip() or None,
        by,
        now,
        lambda f: lifecycle.resolve(f, by, note.strip(), now),
    )


async def _apply(
    conn: Conn,
    flag_id: int,
    action: str,
    detail: str | None,
    by: str,
    now: datetime,
    change: Callable[[FlagState], FlagState],
    ruleset: RuleSet = DEFAULT_RULESET,
) -> db.FlagRow | None:
    async with conn.transaction():
        row = await db.flag(conn, flag_id, for_update=True)
        if row is None or not row.is_open:
            return None
        new = change(to_state(row))
        uuid_of = {obs_key(e): e for e in row.evidence}
        await db.save_flags(conn, [to_row(new, uuid_of)])
        await db.save_flag_resources(
            conn,
            [
                (
                    flag_id,
                    flag_resource(new, ruleset),
                    risk_assessment(
                        new,
                        ruleset,
                        evidence_refs=[f"Observation/{e}" for e in row.evidence],
                    ),
                )
            ],
        )
        status, business = business_status(new)
        if new.is_open:
            await db.set_task_status(conn, flag_id, status, business, now)
        else:
            await db.close_tasks(conn, [flag_id], status, business, now, by="staff")
        await db.staff_event(conn, flag_id, now, action, by, detail)
        await conn.execute(
            "SELECT pg_notify(%s, %s)", (FLAGS_CHANNEL, json.dumps([row.resident_id]))
        )
        return await db.flag(conn, flag_id)


async def evaluate_now(conn: Conn, resident_ids: list[str], now: datetime) -> list[str]:
    """Evaluate residents at once after a staff entry (a PHQ-9 with item 9 ≥ 1 raises its
    urgent flag before the nurse leaves the page), with the runner's own evaluation, in the
    caller's transaction. The runner evaluates them again on the NOTIFY; the lifecycle ignores
    readings a flag already cites, so nothing is raised or notified twice. Returns the residents
    whose flags changed ([] when the runner raised the same flag at the same moment)."""
    try:
        report = await evaluate_residents(conn, resident_ids, now, RunnerConfig(database_url=""))
    except psycopg.errors.UniqueViolation:  # the runner opened the same flag meanwhile
        return []
    return list(report.changed_residents)


def rule_title(rule_id: str, ruleset: RuleSet = DEFAULT_RULESET) -> str | None:
    """A rule's Korean name for staff pages (api.glossary), or None for an unknown id."""
    spec = ruleset.rules.get(rule_id)
    return spec.title_ko if spec is not None else None
