"""FHIR reads and searches beyond Observation: Patient, Practitioner, gateway Devices, Flag,
RiskAssessment, Task, and the version history of Task and Flag (migration 0220).

Same rules as :mod:`api.store.queries`: the acting user's scope is enforced in SQL, every read
is audited in the same transaction, stored resources are returned as the JSON text PostgreSQL
holds, with ``id`` and ``meta`` (``versionId``, ``lastUpdated`` in Korea time) added in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from psycopg import AsyncConnection

from api.store import access, rows
from api.store.access import Actor, Capability, NotFound, Role

Conn = AsyncConnection[Any]

#: A timestamptz as a FHIR instant in Korea time (milliseconds).
_KST_INSTANT = "to_char({col} AT TIME ZONE 'Asia/Seoul', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"+09:00\"')"


def with_meta(resource: str, id_sql: str, version: str, updated: str) -> str:
    """SQL: the jsonb ``resource`` with its ``id`` and ``meta.versionId``/``lastUpdated``."""
    instant = _KST_INSTANT.format(col=updated)
    return (
        f"({resource} || jsonb_build_object('id', ({id_sql})::text, 'meta',"
        f" coalesce({resource}->'meta', '{{}}'::jsonb) || jsonb_build_object("
        f"'versionId', ({version})::text, 'lastUpdated', {instant})))"
    )


TASK_JSON = with_meta("t.resource", "t.id", "t.fhir_version", "t.fhir_updated_at") + "::text"
FLAG_JSON = with_meta("f.fhir_flag", "f.id", "f.fhir_version", "f.fhir_updated_at") + "::text"
ASSESSMENT_JSON = (
    with_meta("f.fhir_risk_assessment", "f.id", "f.fhir_version", "f.fhir_updated_at") + "::text"
)


@dataclass(frozen=True, slots=True)
class Found:
    """One resource of a search or history page (JSON text) and the resident it is about."""

    id: str
    json: str
    resident_id: str | None = None


# --- Practitioner (staff accounts) ------------------------------------------------------------

STAFF_ROLES = ("nurse", "therapist", "liaison", "admin")
_STAFF_ACTORS = frozenset({Role.NURSE, Role.THERAPIST, Role.LIAISON, Role.ADMIN})


@dataclass(frozen=True, slots=True)
class StaffRecord:
    id: str
    display_name: str
    role: str
    active: bool
    created_at: datetime


def _require_staff(actor: Actor, what: str) -> None:
    if actor.role not in _STAFF_ACTORS:
        raise access.AccessDenied(actor, what)


async def search_staff(
    conn: Conn,
    actor: Actor,
    *,
    ids: Sequence[str] = (),
    identifiers: Sequence[str] = (),
    names: Sequence[str] = (),
    limit: int = 50,
) -> list[StaffRecord]:
    """Staff accounts as Practitioners (any member of staff may look colleagues up)."""
    _require_staff(actor, "read practitioners")
    where = ["u.role = ANY(%(roles)s)"]
    params: dict[str, Any] = {"roles": list(STAFF_ROLES), "limit": limit}
    if ids or identifiers:
        params["ids"] = [*ids, *identifiers]
        where.append("u.id = ANY(%(ids)s)")
    for i, name in enumerate(names):
        params[f"name{i}"] = f"%{name}%"
        where.append(f"u.display_name ILIKE %(name{i})s")
    found = await rows.fetch_all(
        conn,
        StaffRecord,
        f"SELECT u.id, u.display_name, u.role, u.active, u.created_at FROM app_user u"
        f" WHERE {' AND '.join(where)} ORDER BY u.id LIMIT %(limit)s".encode(),
        params,
    )
    await access.record_audit(
        conn, actor, subtype="search-type", action="E", entity="Practitioner", residents=[]
    )
    return found


async def read_staff(conn: Conn, actor: Actor, user_id: str) -> StaffRecord:
    found = await search_staff(conn, actor, ids=[user_id], limit=1)
    if not found:
        raise NotFound(f"Practitioner/{user_id}")
    return found[0]


# --- gateways (PhgDevice) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    id: str
    description: str | None
    centre_id: str | None


async def read_gateway(conn: Conn, actor: Actor, gateway_id: str) -> GatewayRecord:
    """A centre's gateway; a gateway account sees only itself."""
    actor.require(Capability.READ_DEVICES)
    if actor.role is Role.GATEWAY and actor.gateway_id != gateway_id:
        raise access.AccessDenied(actor, "read other gateways")
    found = await rows.fetch_one(
        conn,
        GatewayRecord,
        "SELECT id, description, centre_id FROM gateway WHERE id = %s",
        (gateway_id,),
    )
    if found is None:
        raise NotFound(f"Device/phg-{gateway_id}")
    await access.record_audit(
        conn, actor, subtype="read", action="R", entity="Device", residents=[]
    )
    return found


async def gateway_ids(conn: Conn) -> list[str]:
    """Every registered gateway id (for a Device search by type or without criteria)."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT id FROM gateway ORDER BY id")
        return [str(r[0]) for r in await cur.fetchall()]


# --- Patient ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PatientRow:
    id: str
    display_name: str
    neighbourhood: str
    birth_date: date | None
    sex: str | None
    active: bool
    created_at: datetime


async def search_patients(
    conn: Conn,
    actor: Actor,
    *,
    ids: Sequence[str] = (),
    names: Sequence[str] = (),
    birth_dates: Sequence[tuple[str, date]] = (),  # (ge|gt|le|lt, date), all must hold
    limit: int = 50,
) -> list[PatientRow]:
    """Residents in the actor's scope (READ_PATIENT), by id/identifier, name and birth date."""
    actor.require(Capability.READ_PATIENT)
    where, params = access.scope_predicate(actor)
    clauses = [where]
    params["limit"] = limit
    if ids:
        params["ids"] = list(ids)
        clauses.append("r.id = ANY(%(ids)s)")
    for i, name in enumerate(names):
        params[f"name{i}"] = f"%{name}%"
        clauses.append(f"r.display_name ILIKE %(name{i})s")
    ops = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    for i, (op, when) in enumerate(birth_dates):
        params[f"birth{i}"] = when
        clauses.append(f"r.birth_date {ops[op]} %(birth{i})s")
    found = await rows.fetch_all(
        conn,
        PatientRow,
        f"SELECT r.id, r.display_name, r.neighbourhood, r.birth_date, r.sex, r.active,"
        f" r.created_at FROM resident r WHERE {' AND '.join(clauses)}"
        f" ORDER BY r.id LIMIT %(limit)s".encode(),
        params,
    )
    await access.record_audit(
        conn,
        actor,
        subtype="search-type",
        action="E",
        entity="Patient",
        residents=[p.id for p in found],
    )
    return found


# --- Flag, RiskAssessment and Task searches ---------------------------------------------------

_OPEN_STATES = ["open", "acknowledged", "snoozed"]


async def search_flags(
    conn: Conn,
    actor: Actor,
    *,
    residents: Sequence[str] = (),
    ids: Sequence[str] = (),
    active: bool | None = None,
    assessment: bool = False,
    limit: int = 50,
) -> list[Found]:
    """Flags (or their RiskAssessments) the runner rendered, of residents in scope."""
    actor.require(Capability.READ_FLAGS)
    for resident_id in dict.fromkeys(residents):
        await access.require_resident(conn, actor, resident_id, Capability.READ_FLAGS)
    where, params = access.scope_predicate(actor)
    clauses = [where, "f.fhir_flag IS NOT NULL"]
    params["limit"] = limit
    if residents:
        params["residents"] = list(residents)
        clauses.append("f.resident_id = ANY(%(residents)s)")
    if ids:
        params["ids"] = [int(i) for i in ids if i.isascii() and i.isdigit() and len(i) < 19]
        clauses.append("f.id = ANY(%(ids)s)")
    if active is not None:
        params["open"] = _OPEN_STATES
        clauses.append(("" if active else "NOT ") + "(f.state = ANY(%(open)s))")
    body = ASSESSMENT_JSON if assessment else FLAG_JSON
    found = await rows.fetch_all(
        conn,
        Found,
        f"SELECT f.id::text AS id, {body} AS json, f.resident_id FROM risk_flag f"
        f" JOIN resident r ON r.id = f.resident_id WHERE {' AND '.join(clauses)}"
        f" ORDER BY f.opened_at DESC, f.id DESC LIMIT %(limit)s".encode(),
        params,
    )
    await access.record_audit(
        conn,
        actor,
        subtype="search-type",
        action="E",
        entity="RiskAssessment" if assessment else "Flag",
        residents=sorted({f.resident_id for f in found if f.resident_id}),
    )
    return found


async def search_tasks(
    conn: Conn,
    actor: Actor,
    *,
    residents: Sequence[str] = (),
    ids: Sequence[str] = (),
    statuses: Sequence[str] = (),
    owners: Sequence[str] = (),
    limit: int = 50,
) -> list[Found]:
    """Tasks of residents in scope; a liaison officer finds only liaison tasks."""
    liaison = actor.role is Role.LIAISON
    capability = Capability.READ_NEEDS if liaison else Capability.READ_FLAGS
    actor.require(capability)
    for resident_id in dict.fromkeys(residents):
        await access.require_resident(conn, actor, resident_id, capability)
    where, params = access.scope_predicate(actor)
    clauses = [where]
    params["limit"] = limit
    if liaison:
        clauses.append("t.role = 'liaison'")
    if residents:
        params["residents"] = list(residents)
        clauses.append("t.resident_id = ANY(%(residents)s)")
    if ids:
        params["ids"] = [int(i) for i in ids if i.isascii() and i.isdigit() and len(i) < 19]
        clauses.append("t.id = ANY(%(ids)s)")
    if statuses:
        params["statuses"] = list(statuses)
        clauses.append("t.status = ANY(%(statuses)s)")
    if owners:
        params["owners"] = list(owners)
        clauses.append("t.owner_id = ANY(%(owners)s)")
    found = await rows.fetch_all(
        conn,
        Found,
        f"SELECT t.id::text AS id, {TASK_JSON} AS json, t.resident_id FROM follow_up_task t"
        f" JOIN resident r ON r.id = t.resident_id WHERE {' AND '.join(clauses)}"
        f" ORDER BY t.id DESC LIMIT %(limit)s".encode(),
        params,
    )
    await access.record_audit(
        conn,
        actor,
        subtype="search-type",
        action="E",
        entity="Task",
        residents=sorted({t.resident_id for t in found if t.resident_id}),
    )
    return found


# --- history ----------------------------------------------------------------------------------


async def history(
    conn: Conn, resource_type: str, resource_id: int, version: int | None = None
) -> list[Found]:
    """Versions of a Task or Flag, newest first (call after the read check of the resource).

    A Flag's history also serves its RiskAssessment (``resource_type`` "RiskAssessment")."""
    stored = "Flag" if resource_type == "RiskAssessment" else resource_type
    column = "h.extra" if resource_type == "RiskAssessment" else "h.resource"
    body = with_meta(column, "h.id", "h.version", "h.recorded_at") + "::text"
    params: dict[str, Any] = {"type": stored, "id": resource_id, "version": version}
    return await rows.fetch_all(
        conn,
        Found,
        f"SELECT h.version::text AS id, {body} AS json FROM fhir_history h"
        f" WHERE h.resource_type = %(type)s AND h.id = %(id)s AND {column} IS NOT NULL"
        f" AND (%(version)s::int IS NULL OR h.version = %(version)s::int)"
        f" ORDER BY h.version DESC".encode(),
        params,
    )


async def device_ids(
    conn: Conn, *, identifiers: Sequence[str] = (), owners: Sequence[str] = ()
) -> list[str]:
    """Registry ids of devices by identifier (Bluetooth address in any case and separator, or
    registry id) or by owner; the caller reads each (scope and audit)."""
    if not identifiers and not owners:
        return []
    keys = [i.upper().replace(":", "-") for i in identifiers]
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT id FROM device WHERE id = ANY(%(ids)s)"
            " OR upper(replace(coalesce(address, ''), ':', '-')) = ANY(%(keys)s)"
            " OR owner_id = ANY(%(owners)s) ORDER BY id",
            {"ids": list(identifiers), "keys": keys, "owners": list(owners)},
        )
        return [str(r[0]) for r in await cur.fetchall()]
