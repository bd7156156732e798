"""Hand-entered readings: through ingest's transform and identity de-duplication.

A nurse on a home visit (or a FHIR client posting a transaction Bundle) enters readings; each
becomes Observations with :func:`ingest.fhir.to_observations` (``performer`` = the nurse, so
out of PHD scope: no device, a note says so) and is stored with
:func:`ingest.store.observations.insert_observations`, the same conditional-create identity
table the ingest consumer uses. Entering the same reading twice stores it once.

``if_none_exist`` (FHIR conditional create) is evaluated as an Observation identifier search
within the resident's observations before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection

from devices.model import Measurement
from ingest.errors import HeldForReview, RejectedReading
from ingest.fhir import ReadingContext, to_observations
from ingest.store import access, queries
from ingest.store.access import Actor, Capability, InvalidRequest
from ingest.store.observations import insert_observations, notify_residents

Conn = AsyncConnection[Any]

MANUAL_DEVICE = "manual"


@dataclass(frozen=True, slots=True)
class ManualEntry:
    resident_id: str
    measurement: Measurement
    if_none_exist: tuple[queries.Token, ...] = ()  # identifier tokens, ORed


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    created: bool  # False: it was already stored (conditional create matched, or duplicate)
    observation_ids: tuple[str, ...]  # the primary Observation first


async def enter_readings(
    conn: Conn,
    actor: Actor,
    entries: Sequence[ManualEntry],
    *,
    setting: str = "visit",
    received_at: datetime | None = None,
) -> list[EntryOutcome]:
    """Store hand-entered readings (call inside the request's transaction: all or nothing)."""
    actor.require(Capability.WRITE_READINGS)
    now = received_at or datetime.now(UTC)
    outcomes: list[EntryOutcome] = []
    touched: set[str] = set()
    for index, entry in enumerate(entries):
        await access.require_resident(conn, actor, entry.resident_id, Capability.WRITE_READINGS)
        if entry.if_none_exist:
            page = await queries.search_observations(
                conn,
                actor,
                queries.ObservationQuery(
                    residents=(entry.resident_id,), identifiers=entry.if_none_exist, count=1
                ),
            )
            if page.resources:
                outcomes.append(EntryOutcome(False, (page.resources[0].id,)))
                continue
        ctx = ReadingContext(
            device_id=MANUAL_DEVICE,
            gateway_id=MANUAL_DEVICE,
            received_at=now,
            patient=entry.resident_id,
            binding="staff",
            performer=f"Practitioner/{actor.user_id}",
            setting=setting,
        )
        try:
            rows = to_observations(entry.measurement, ctx)
        except (RejectedReading, HeldForReview) as exc:
            raise InvalidRequest(f"entry {index}: {exc.detail}") from exc
        new, _already = await insert_observations(conn, rows)
        ids = tuple(r.id for r in rows)
        outcomes.append(EntryOutcome(bool(new), ids))
        if new:
            touched.add(entry.resident_id)
    if touched:
        await notify_residents(conn, sorted(touched))
        await access.record_audit(
            conn,
            actor,
            subtype="create",
            action="C",
            entity="Observation (manual entry)",
            residents=sorted(touched),
        )
    return outcomes
