"""FHIR creates: hand-entered Observations a FHIR client posts (create, batch, transaction).

The rows are built by ``ingest.fhir`` (the device mapping, or :mod:`ingest.fhir.entered`) and
stored with ingest's own identity de-duplication (``observation_identity``), like every reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from api.store import access, queries
from api.store.access import Actor, Capability
from ingest.fhir.observations import StoredObservation
from ingest.store.observations import notify_residents, store_observations

Conn = AsyncConnection[Any]


class WriteConflict(access.InvalidRequest):
    """Another value is stored under the same identity (HTTP 409): never silently discarded."""


@dataclass(frozen=True, slots=True)
class Create:
    """One Observation create: the rows ingest.fhir built, and the conditional-create tokens."""

    resident_id: str
    rows: tuple[StoredObservation, ...]
    if_none_exist: tuple[queries.Token, ...] = ()


@dataclass(frozen=True, slots=True)
class Created:
    created: bool  # False: a conditional create matched, or the same reading was stored before
    id: str
    json: str


async def create_observations(conn: Conn, actor: Actor, creates: Sequence[Create]) -> list[Created]:
    """Store hand-entered Observations (inside the request's transaction).

    The rule for a write that meets a stored reading (PHD identity: patient, code, time):
    the same value is that reading (200, nothing new); another value is a conflict (409,
    :class:`WriteConflict`), never a silent replacement and never a second resource.
    """
    actor.require(Capability.WRITE_READINGS)
    out: list[Created] = []
    touched: set[str] = set()
    for create in creates:
        await access.require_resident(conn, actor, create.resident_id, Capability.WRITE_READINGS)
        if create.if_none_exist:
            page = await queries.search_observations(
                conn,
                actor,
                queries.ObservationQuery(
                    residents=(create.resident_id,), identifiers=create.if_none_exist, count=2
                ),
            )
            if len(page.resources) > 1:
                raise access.InvalidRequest(
                    "조건부 생성 조건에 여러 건이 맞습니다 / If-None-Exist matches more than one"
                    " resource (412)"
                )
            if page.resources:
                found = page.resources[0]
                out.append(Created(False, found.id, found.json))
                continue
        done = await store_observations(conn, list(create.rows))
        if done.conflicts:
            first = done.conflicts[0]
            raise WriteConflict(
                f"같은 주민·항목·측정 시각에 다른 값이 이미 있습니다 / conflict: Observation "
                f"{first.observation.id} is stored with {first.first}; send the stored value, "
                "or another time"
            )
        primary = create.rows[0]
        out.append(Created(bool(done.new), primary.id, primary.resource))
        if done.new:
            touched.add(create.resident_id)
    if touched:
        await notify_residents(conn, sorted(touched))
        await access.record_audit(
            conn,
            actor,
            subtype="create",
            action="C",
            entity="Observation (FHIR create)",
            residents=sorted(touched),
        )
    return out
