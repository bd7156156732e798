"""Read queries behind the FHIR API: Patient, Observation (read, search, $lastn), Device.

Every function takes the acting user and enforces their scope in SQL (see
:mod:`api.store.access`), and records the read in the audit trail in the same transaction.
Observations are rendered from their typed columns, compiled template and remainder by ingest's
own renderer (:mod:`ingest.store.templates`), byte for byte the text served when the resource
was stored as jsonb; other stored FHIR resources are returned as the JSON text PostgreSQL holds
(``resource::text``), so the API serves them as stored, without parsing and re-serialising.

Search parameters arrive already parsed (:class:`ObservationQuery`): the HTTP layer turns FHIR
syntax (prefixes, precisions, references) into these plain values.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import class_row

from api.store import access, fhir_resources, rows
from api.store.access import AccessDenied, Actor, Capability, NotFound, Role
from ingest.fhir.ids import identity_time, resource_id
from ingest.store.registry import CONTACTS_SQL, ResidentContacts, contacts_from_row
from ingest.store.templates import RENDER_COLUMNS, ObservationRow, render_rows

Conn = AsyncConnection[Any]

Comparison = Literal["ge", "gt", "le", "lt"]
LOINC = "http://loinc.org"
#: A LOINC code's shape (digits, a dash, a check digit): MDC codes are plain integers.
_LOINC_SHAPE = re.compile(r"[0-9]{1,7}-[0-9]")
_NUMERIC_ID = re.compile(r"[0-9]{1,18}")  # bigint ids as FHIR ids (ASCII digits, no overflow)

#: A device's FHIR id is the id of its stored PhdDevice (``phd-…``, written by the registry with
#: ``ingest.fhir.ids.phd_device_id``, the function ingest writes ``Observation.device`` with).
FHIR_DEVICE_ID_SQL = "(d.resource->>'id')"
_SQL_OP: dict[str, str] = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
#: The static parts of an Observation (its template's skeleton, or its whole stored text):
#: codings, categories and identifier systems are matched here (migration 0104).
_DOC = "daon_observation_doc(o.template_id, o.remainder)"


@dataclass(frozen=True, slots=True)
class Token:
    """A FHIR token: ``system|code``. ``system`` None matches any system, "" means no system."""

    code: str
    system: str | None = None


@dataclass(frozen=True, slots=True)
class ObservationQuery:
    """Observation search, ANDed across fields and ORed within each tuple."""

    residents: tuple[str, ...] = ()
    codes: tuple[Token, ...] = ()
    categories: tuple[Token, ...] = ()
    dates: tuple[tuple[Comparison, datetime], ...] = ()  # all must hold
    devices: tuple[str, ...] = ()
    identifiers: tuple[Token, ...] = ()
    statuses: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()  # _id
    newest_first: bool = True
    count: int = 50
    after: tuple[datetime, str] | None = None  # keyset cursor: (effective_at, id) of the last row

    def parameter_names(self) -> str:
        """Which parameters were used, for the audit trail (never their values)."""
        names = [
            name
            for name, used in (
                ("patient", self.residents),
                ("code", self.codes),
                ("category", self.categories),
                ("date", self.dates),
                ("device", self.devices),
                ("identifier", self.identifiers),
                ("status", self.statuses),
                ("_id", self.ids),
            )
            if used
        ]
        return "&".join(names)


@dataclass(frozen=True, slots=True)
class StoredResource:
    """One stored resource as JSON text, with the keys a search page needs."""

    id: str
    json: str
    effective_at: datetime | None = None
    resident_id: str | None = None


@dataclass(frozen=True, slots=True)
class ResourcePage:
    resources: tuple[StoredResource, ...]
    next_after: tuple[datetime, str] | None  # cursor for the next page, None on the last


def _coding_json(token: Token) -> str:
    coding: dict[str, str] = {"code": token.code}
    if token.system:
        coding["system"] = token.system
    return json.dumps([coding])


def _observation_filters(query: ObservationQuery, params: dict[str, Any]) -> list[str]:
    """SQL conditions over alias ``o`` for the query's parameters (values go into ``params``)."""
    where: list[str] = []
    if query.codes:
        # The code column holds the primary code: LOINC wherever the resource has a LOINC
        # coding (migration 0001), so LOINC tokens are matched on the indexed column alone;
        # other systems (MDC, local) also look into the resource's codings.
        column: list[str] = []
        alternatives = []
        for i, token in enumerate(query.codes):
            if token.system == LOINC or (
                token.system is None and _LOINC_SHAPE.fullmatch(token.code)
            ):
                column.append(token.code)
                continue
            params[f"code{i}"] = token.code
            params[f"code_sys{i}"] = token.system
            params[f"coding{i}"] = _coding_json(token)
            primary = f"(o.code = %(code{i})s AND (%(code_sys{i})s::text IS NULL"
            primary += f" OR o.code_system = %(code_sys{i})s))"
            alternatives.append(primary)
            alternatives.append(f"{_DOC}->'code'->'coding' @> %(coding{i})s::jsonb")
        if len(column) == 1:  # a scalar lets the planner walk the (resident, code, time) index
            params["code"] = column[0]
            alternatives.insert(0, "o.code = %(code)s")
        elif column:
            params["codes"] = column
            alternatives.insert(0, "o.code = ANY(%(codes)s)")
        where.append("(" + " OR ".join(alternatives) + ")")
    if query.categories:
        alternatives = []
        for i, token in enumerate(query.categories):
            params[f"cat{i}"] = json.dumps([{"coding": json.loads(_coding_json(token))}])
            alternatives.append(f"{_DOC}->'category' @> %(cat{i})s::jsonb")
        where.append("(" + " OR ".join(alternatives) + ")")
    for i, (op, when) in enumerate(query.dates):
        params[f"date{i}"] = when
        where.append(f"o.effective_at {_SQL_OP[op]} %(date{i})s")
    if query.devices:
        # a FHIR id (phd-…, as Observation.device says) or a registry id
        params["devices"] = list(query.devices)
        where.append(
            "o.device_id = ANY(%(devices)s || ARRAY(SELECT d.id FROM device d"
            f" WHERE {FHIR_DEVICE_ID_SQL} = ANY(%(devices)s)))"
        )
    if query.identifiers:
        # The conditional-create identifier (the dedup key) is indexed in observation_identity
        # as its Observation id (the UUIDv5 of the identifier); a system, when given, must also
        # match the resource's identifier.
        alternatives = []
        for i, token in enumerate(query.identifiers):
            params[f"ident{i}"] = token.code
            params[f"ident_id{i}"] = resource_id(token.code)
            params[f"ident_time{i}"] = identity_time(token.code)
            params[f"ident_sys{i}"] = token.system or None
            params[f"ident_json{i}"] = json.dumps([{"system": token.system, "value": token.code}])
            # (a template's first identifier is this one, its system is in the skeleton)
            alternatives.append(
                f"((o.id, o.effective_at) IN (SELECT observation_id, effective_at"
                f" FROM observation_identity WHERE observation_id = %(ident_id{i})s::uuid"
                f" AND key_time = %(ident_time{i})s)"
                f" AND o.identifier = %(ident{i})s"
                f" AND (%(ident_sys{i})s::text IS NULL"
                f" OR CASE WHEN o.template_id IS NULL"
                f" THEN o.remainder::jsonb->'identifier' @> %(ident_json{i})s::jsonb"
                f" ELSE {_DOC}->'identifier'->0->>'system' = %(ident_sys{i})s END))"
            )
            # a client's own identifier (kept beside ours on create: such a resource is stored
            # whole), or the second identifier of a template (the glucose record number)
            client = {"value": token.code} | ({"system": token.system} if token.system else {})
            params[f"ident_client{i}"] = json.dumps([client])
            alternatives.append(
                f"CASE WHEN o.template_id IS NULL"
                f" THEN o.remainder::jsonb->'identifier' @> %(ident_client{i})s::jsonb"
                f" ELSE EXISTS (SELECT 1 FROM observation_template t WHERE t.id = o.template_id"
                f" AND array_position(string_to_array(t.rest, ','), 'identifier2') IS NOT NULL"
                f" AND (%(ident_sys{i})s::text IS NULL"
                f" OR t.skeleton->'identifier'->1->>'system' = %(ident_sys{i})s)"
                f" AND split_part(o.remainder, chr(31),"
                f" array_position(string_to_array(t.rest, ','), 'identifier2'))"
                f" = %(ident{i})s) END"
            )
        where.append("(" + " OR ".join(alternatives) + ")")
    if query.statuses:
        params["statuses"] = list(query.statuses)
        where.append("o.status = ANY(%(statuses)s)")
    if query.ids:
        params["obs_ids"] = list(query.ids)
        where.append("o.id::text = ANY(%(obs_ids)s)")
    return where


async def _require_residents(
    conn: Conn, actor: Actor, residents: Sequence[str], capability: Capability
) -> None:
    for resident_id in dict.fromkeys(residents):
        await access.require_resident(conn, actor, resident_id, capability)


async def search_observations(conn: Conn, actor: Actor, query: ObservationQuery) -> ResourcePage:
    """One page of Observations matching ``query`` within the actor's scope.

    Named residents must all be in scope (else :class:`AccessDenied`); without residents the
    search is restricted to the residents the actor may see (admins also see device-subject
    observations).
    """
    actor.require(Capability.READ_HEALTH)
    await _require_residents(conn, actor, query.residents, Capability.READ_HEALTH)
    params: dict[str, Any] = {"limit": query.count + 1}
    where = _observation_filters(query, params)
    join = ""
    if len(set(query.residents)) == 1:
        params["resident"] = query.residents[0]
        where.append("o.resident_id = %(resident)s")
    elif query.residents:
        params["residents"] = list(query.residents)
        where.append("o.resident_id = ANY(%(residents)s)")
    elif actor.role is not Role.ADMIN:
        scope, scope_params = access.scope_predicate(actor)
        params.update(scope_params)
        join = "JOIN resident r ON r.id = o.resident_id"
        where.append(scope)
    direction = "DESC" if query.newest_first else "ASC"
    if query.after is not None:
        params["after_at"], params["after_id"] = query.after
        cmp = "<" if query.newest_first else ">"
        where.append(f"(o.effective_at, o.id::text) {cmp} (%(after_at)s, %(after_id)s)")
    sql = (
        f"SELECT {RENDER_COLUMNS}"
        f" FROM observation o {join}"
        f" WHERE {' AND '.join(where) or 'TRUE'}"
        f" ORDER BY o.effective_at {direction}, o.id::text {direction}"
        f" LIMIT %(limit)s"
    )
    entity = f"Observation?{query.parameter_names()}"
    if query.residents:
        # the residents are known (and checked): the audit row travels with the query
        async with conn.pipeline():
            cur = conn.cursor(row_factory=class_row(ObservationRow))
            await cur.execute(sql.encode(), params)
            await access.record_audit(
                conn,
                actor,
                subtype="search-type",
                action="E",
                entity=entity,
                residents=query.residents,
            )
            found = await cur.fetchall()
            await cur.close()
    else:
        found = await rows.fetch_all(conn, ObservationRow, sql.encode(), params)
    more = len(found) > query.count
    resources = await _rendered(conn, found[: query.count])
    if not query.residents:
        await access.record_audit(
            conn,
            actor,
            subtype="search-type",
            action="E",
            entity=entity,
            residents=[r.resident_id for r in resources if r.resident_id],
        )
    last = resources[-1] if more and resources else None
    next_after = (last.effective_at, last.id) if last and last.effective_at else None
    return ResourcePage(resources, next_after)


async def _rendered(conn: Conn, found: Sequence[ObservationRow]) -> tuple[StoredResource, ...]:
    texts = await render_rows(conn, found)
    return tuple(
        StoredResource(r.id, text, r.effective_at, r.resident_id)
        for r, text in zip(found, texts, strict=True)
    )


async def count_observations(conn: Conn, actor: Actor, query: ObservationQuery) -> int:
    """How many Observations match ``query`` in the actor's scope (``Bundle.total``)."""
    actor.require(Capability.READ_HEALTH)
    await _require_residents(conn, actor, query.residents, Capability.READ_HEALTH)
    params: dict[str, Any] = {}
    where = _observation_filters(query, params)
    join = ""
    if query.residents:
        params["residents"] = list(query.residents)
        where.append("o.resident_id = ANY(%(residents)s)")
    elif actor.role is not Role.ADMIN:
        scope, scope_params = access.scope_predicate(actor)
        params.update(scope_params)
        join = "JOIN resident r ON r.id = o.resident_id"
        where.append(scope)
    sql = f"SELECT count(*) FROM observation o {join} WHERE {' AND '.join(where) or 'TRUE'}"
    async with conn.cursor() as cur:
        await cur.execute(sql.encode(), params)
        row = await cur.fetchone()
    await access.record_audit(
        conn,
        actor,
        subtype="search-type",
        action="E",
        entity=f"Observation?{query.parameter_names()}&_summary=count",
        residents=list(query.residents),
    )
    return int(row[0]) if row else 0


async def read_observation(conn: Conn, actor: Actor, observation_id: str) -> StoredResource:
    """One Observation by id, if its resident is in scope."""
    actor.require(Capability.READ_HEALTH)
    try:  # compared typed, so the primary key's index serves it (id::text = … cannot)
        key = uuid.UUID(observation_id)
    except ValueError:
        raise NotFound(f"Observation/{observation_id}") from None
    found = await rows.fetch_one(
        conn,
        ObservationRow,
        f"SELECT {RENDER_COLUMNS} FROM observation o WHERE o.id = %s".encode(),
        (key,),
    )
    if found is None:
        raise NotFound(f"Observation/{observation_id}")
    (row,) = await _rendered(conn, [found])
    resident_id = row.resident_id
    if resident_id is not None:
        await access.require_resident(conn, actor, resident_id, Capability.READ_HEALTH)
    # else a device-subject Observation (coincident timestamp, control-solution QC): about a
    # device, not a person; whoever reads health data may resolve the references to it
    await access.record_audit(
        conn,
        actor,
        subtype="read",
        action="R",
        entity="Observation",
        residents=[resident_id] if resident_id else [],
    )
    return row


@dataclass(frozen=True, slots=True)
class _GatedRow:
    """A row of a read whose statement also checks the scope: ``allowed`` (false also when the
    predicate meets a NULL column, e.g. no nurse assigned: a denial), then the Observation's
    :data:`RENDER_COLUMNS` (NULL when the resident has none)."""

    allowed: bool | None
    id: str | None
    effective_at: datetime | None
    resident_id: str | None
    identifier: str | None
    status: str | None
    received_at: datetime | None
    device_id: str | None
    gateway_id: str | None
    template_id: int | None
    remainder: str | None

    def observation(self) -> ObservationRow | None:
        if self.id is None or self.effective_at is None:
            return None
        return ObservationRow(
            self.id,
            self.effective_at,
            self.resident_id,
            str(self.identifier),
            str(self.status),
            self.received_at,
            self.device_id,
            self.gateway_id,
            self.template_id,
            self.remainder,
        )


async def last_n(
    conn: Conn,
    actor: Actor,
    resident_id: str,
    *,
    max_per_code: int = 1,
    codes: Sequence[Token] = (),
    categories: Sequence[Token] = (),
    commit: bool = False,
) -> tuple[StoredResource, ...]:
    """``Observation/$lastn``: the newest ``max_per_code`` observations of each code.

    One statement checks the resident against the actor's scope (as
    :func:`access.require_resident`), reads, and writes the audit row only when the scope
    allows the read; ``commit`` commits in the same round trip (:func:`rows.fetch_committed`).
    The resident's distinct codes come from one pass over the index
    ``observation_resident_code_time`` (index-only, each partition's part of it appended, no
    merge), then each code's newest rows from the same index. A recursive loose index scan
    (one ordered probe per code) found the same codes, but every probe of a table partitioned
    by time merges the heads of all the months: 2-3× the database time here (issue 17).
    Entered-in-error observations are left out. The bound "before tomorrow" (readings from the
    future are refused at ingest) lets the partitions created ahead of today be pruned.
    """
    actor.require(Capability.READ_HEALTH, resident_id)
    where, params = access.scope_predicate(actor)
    params |= {"rid": resident_id, "max": max_per_code}
    params |= access.audit_params(
        actor, subtype="operation", action="E", entity="Observation/$lastn"
    )
    query = ObservationQuery(codes=tuple(codes), categories=tuple(categories))
    filters = _observation_filters(query, params)
    extra = "".join(f" AND {f}" for f in filters)
    sql = f"""
        WITH target AS (
            SELECT COALESCE(({where}), false) AS allowed FROM resident r WHERE r.id = %(rid)s
        ), audit AS ({access.audit_insert(access.audit_select("target WHERE allowed", "%(rid)s"))}
        ), codes AS (
            SELECT DISTINCT code FROM observation
            WHERE resident_id = %(rid)s AND effective_at < now() + interval '1 day'
        )
        SELECT t.allowed, last.id, last.effective_at, last.resident_id, last.identifier,
               last.status, last.received_at, last.device_id, last.gateway_id,
               last.template_id, last.remainder
        FROM target t LEFT JOIN (codes c CROSS JOIN LATERAL (
            SELECT {RENDER_COLUMNS}, o.code
            FROM observation o
            WHERE o.resident_id = %(rid)s AND o.code = c.code
              AND o.effective_at < now() + interval '1 day'
              AND o.status <> 'entered-in-error'{extra}
            ORDER BY o.effective_at DESC LIMIT %(max)s
        ) last) ON t.allowed
        ORDER BY last.code, last.effective_at DESC"""
    found = await rows.fetch_committed(conn, _GatedRow, sql.encode(), params, commit=commit)
    if not found or found[0].allowed is None:
        raise NotFound(f"resident {resident_id}")
    if not found[0].allowed:
        raise AccessDenied(actor, str(Capability.READ_HEALTH), resident_id)
    return await _rendered(conn, [o for row in found if (o := row.observation()) is not None])


# --- Patient and Device -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResidentRecord:
    """The registry row behind a Patient resource (no card number: it is a credential)."""

    id: str
    display_name: str
    neighbourhood: str
    birth_date: date | None
    sex: str | None
    active: bool


@dataclass(frozen=True, slots=True)
class PatientRead:
    """A Patient read: the registry row, and the contact details when the reader may see them."""

    record: ResidentRecord
    contacts: ResidentContacts | None


@dataclass(frozen=True, slots=True)
class _PatientRow:
    allowed: bool | None  # never NULL: a predicate that cannot tell (a NULL column) denies
    id: str
    display_name: str
    neighbourhood: str
    birth_date: date | None
    sex: str | None
    active: bool
    contact_id: str | None
    contact_neighbourhood: str | None
    mobile_phone: str | None
    home_phone: str | None
    address_road: str | None
    address_detail: str | None
    postal_code: str | None
    lives_alone: bool | None
    contacts: list[list[str]] | None


async def read_patient(
    conn: Conn, actor: Actor, resident_id: str, *, commit: bool = False
) -> PatientRead:
    """``GET /Patient/{id}``: the resident and (with READ_CONTACTS) the contact details, if in
    the actor's scope, with both audit rows ("Patient", "Patient.contact"), in one statement.

    The scope is checked, the rows read and the audit rows written by the same statement: the
    audit rows are written only when the scope allows the read. ``commit`` commits the
    transaction in the same round trip (:func:`rows.fetch_committed`), so the audit rows are
    durable before anything is returned. Raises :class:`NotFound` or :class:`AccessDenied` as
    :func:`access.require_resident` does.
    """
    actor.require(Capability.READ_PATIENT, resident_id)
    where, params = access.scope_predicate(actor)
    params["rid"] = resident_id
    params["with_contacts"] = actor.can(Capability.READ_CONTACTS)
    params |= access.audit_params(actor, subtype="read", action="R", entity="Patient", key="p")
    params |= access.audit_params(
        actor, subtype="read", action="R", entity="Patient.contact", key="c"
    )
    audit = access.audit_insert(
        access.audit_select("target WHERE allowed", "id", key="p"),
        access.audit_select("contact", "contact_id", key="c"),
    )
    sql = f"""
        WITH target AS (
            SELECT r.id, r.display_name, r.neighbourhood, r.birth_date, r.sex, r.active,
                   COALESCE(({where}), false) AS allowed
            FROM resident r WHERE r.id = %(rid)s
        ), contact(contact_id, contact_neighbourhood, mobile_phone, home_phone, address_road,
                   address_detail, postal_code, lives_alone, contacts) AS (
            {CONTACTS_SQL} WHERE r.id = %(rid)s AND %(with_contacts)s AND {where}
        ), audit AS ({audit})
        SELECT t.allowed, t.id, t.display_name, t.neighbourhood, t.birth_date, t.sex, t.active,
               c.contact_id, c.contact_neighbourhood, c.mobile_phone, c.home_phone,
               c.address_road, c.address_detail, c.postal_code, c.lives_alone, c.contacts
        FROM target t LEFT JOIN contact c ON t.allowed"""
    found = await rows.fetch_committed(conn, _PatientRow, sql.encode(), params, commit=commit)
    if not found or found[0].allowed is None:
        raise NotFound(f"resident {resident_id}")
    row = found[0]
    if not row.allowed:
        raise AccessDenied(actor, str(Capability.READ_PATIENT), resident_id)
    record = ResidentRecord(
        row.id, row.display_name, row.neighbourhood, row.birth_date, row.sex, row.active
    )
    contacts = None
    if row.contact_id is not None:
        contacts = contacts_from_row(
            (
                row.contact_id,
                row.contact_neighbourhood,
                row.mobile_phone,
                row.home_phone,
                row.address_road,
                row.address_detail,
                row.postal_code,
                row.lives_alone,
                row.contacts or [],
            )
        )
    return PatientRead(record, contacts)


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    id: str
    resource_json: str | None  # the stored FHIR Device, when the registry has one
    manufacturer: str | None
    model: str | None
    serial: str | None
    firmware: str | None
    address: str | None
    kind: str | None
    owner_id: str | None
    station_id: str | None


@dataclass(frozen=True, slots=True)
class _DeviceRow(DeviceRecord):
    gateway_id: str | None  # of the device's station, for gateway accounts

    @property
    def record(self) -> DeviceRecord:
        return DeviceRecord(
            self.id,
            self.resource_json,
            self.manufacturer,
            self.model,
            self.serial,
            self.firmware,
            self.address,
            self.kind,
            self.owner_id,
            self.station_id,
        )


async def read_device(conn: Conn, actor: Actor, device_id: str) -> DeviceRecord:
    """A registered device. Personal devices follow their owner's scope; a gateway account
    sees the devices of its own stations."""
    actor.require(Capability.READ_DEVICES)
    row = await rows.fetch_one(
        conn,
        _DeviceRow,
        f"""SELECT d.id, d.resource::text AS resource_json, d.manufacturer, d.model, d.serial,
                  d.firmware, d.address, d.kind, d.owner_id, d.station_id, s.gateway_id
           FROM device d LEFT JOIN station s ON s.id = d.station_id
           WHERE d.id = %(id)s OR {FHIR_DEVICE_ID_SQL} = %(id)s
           ORDER BY d.id = %(id)s DESC LIMIT 1""".encode(),
        {"id": device_id},
    )
    if row is None:
        raise NotFound(f"Device/{device_id}")
    owner, gateway = row.owner_id, row.gateway_id
    if actor.role is Role.GATEWAY:
        if gateway is None or gateway != actor.gateway_id:
            raise access.AccessDenied(actor, "read devices of other gateways")
    elif owner is not None:
        await access.require_resident(conn, actor, owner, Capability.READ_DEVICES)
    await access.record_audit(
        conn,
        actor,
        subtype="read",
        action="R",
        entity="Device",
        residents=[owner] if owner else [],
    )
    return row.record


# --- Flag, RiskAssessment and Task (clinical runner's tables, migration 0200) ------------------


@dataclass(frozen=True, slots=True)
class FlagRecord:
    """A stored risk flag, for the Flag and RiskAssessment views."""

    id: int
    resident_id: str
    rule: str
    rule_set: str
    severity: str
    state: str
    summary: str
    opened_at: datetime
    closed_at: datetime | None
    evidence: tuple[str, ...]
    flag_json: str | None = None  # the runner's stored FHIR Flag (migration 0201), with its id
    assessment_json: str | None = None  # the stored FHIR RiskAssessment


async def read_flag(conn: Conn, actor: Actor, flag_id: str, *, entity: str = "Flag") -> FlagRecord:
    """A flag by its FHIR id (clinical staff of the resident; never liaison officers)."""
    actor.require(Capability.READ_FLAGS)
    if not _NUMERIC_ID.fullmatch(flag_id):
        raise NotFound(f"{entity}/{flag_id}")
    row = await rows.build_one(
        conn,
        _flag_record,
        f"""SELECT id, resident_id, rule, rule_set, severity, state, summary, opened_at, closed_at,
                  evidence::text[] AS evidence,
                  {fhir_resources.FLAG_JSON} AS flag_json,
                  {fhir_resources.ASSESSMENT_JSON} AS assessment_json
           FROM risk_flag f WHERE id = %s""".encode(),
        (int(flag_id),),
    )
    if row is None:
        raise NotFound(f"{entity}/{flag_id}")
    await access.require_resident(conn, actor, row.resident_id, Capability.READ_FLAGS)
    await access.record_audit(
        conn, actor, subtype="read", action="R", entity=entity, residents=[row.resident_id]
    )
    return row


def _flag_record(*, evidence: list[str] | None, **fields: Any) -> FlagRecord:
    return FlagRecord(evidence=tuple(evidence or ()), **fields)


_TASK_JSON = fhir_resources.TASK_JSON  # the stored Task with its id and meta (version)


@dataclass(frozen=True, slots=True)
class _TaskRow:
    id: int
    resident_id: str
    role: str
    closed_at: datetime | None
    json: str


async def _task_row(conn: Conn, actor: Actor, task_id: str, capability: Capability) -> _TaskRow:
    if not _NUMERIC_ID.fullmatch(task_id):
        raise NotFound(f"Task/{task_id}")
    row = await rows.fetch_one(
        conn,
        _TaskRow,
        f"SELECT t.id, t.resident_id, t.role, t.closed_at, {_TASK_JSON} AS json"
        " FROM follow_up_task t WHERE t.id = %s".encode(),
        (int(task_id),),
    )
    if row is None:
        raise NotFound(f"Task/{task_id}")
    if actor.role is Role.LIAISON:
        # a liaison officer sees (and updates) only liaison tasks of her consented residents
        if row.role != "liaison":
            raise access.AccessDenied(actor, "read clinical tasks", row.resident_id)
        await access.require_resident(conn, actor, row.resident_id, Capability.READ_NEEDS)
        if capability is not Capability.READ_FLAGS:
            actor.require(capability, row.resident_id)
    else:
        await access.require_resident(conn, actor, row.resident_id, capability)
    return row


async def read_task(conn: Conn, actor: Actor, task_id: str) -> StoredResource:
    row = await _task_row(conn, actor, task_id, Capability.READ_FLAGS)
    await access.record_audit(
        conn, actor, subtype="read", action="R", entity="Task", residents=[row.resident_id]
    )
    return StoredResource(str(row.id), row.json, None, row.resident_id)


#: Task.status values staff may set (FHIR task-status); the runner owns the others.
STAFF_TASK_STATUSES = ("accepted", "in-progress", "on-hold", "completed")

#: Whose tasks each role works on (follow_up_task.role); admins may update any.
TASK_ROLES: dict[Role, tuple[str, ...]] = {
    Role.NURSE: ("nurse", "nurse_lead"),
    Role.THERAPIST: ("rehab",),
    Role.LIAISON: ("liaison",),
}


class VersionConflict(access.InvalidRequest):
    """``If-Match`` named a version that is no longer current (HTTP 412)."""


async def update_task_status(
    conn: Conn,
    actor: Actor,
    task_id: str,
    status: str,
    note: str | None = None,
    *,
    if_match: int | None = None,
) -> StoredResource:
    """Set a task's FHIR status (completed closes it); returns the Task as now served.

    ``if_match``: the version the client last read; another current version raises
    :class:`VersionConflict` and changes nothing (the row is locked while checked)."""
    if status not in STAFF_TASK_STATUSES:
        raise access.InvalidRequest(
            f"Task.status can be set to {', '.join(STAFF_TASK_STATUSES)}, not {status!r}"
        )
    row = await _task_row(conn, actor, task_id, Capability.UPDATE_TASKS)
    if actor.role is not Role.ADMIN and row.role not in TASK_ROLES.get(actor.role, ()):
        raise access.AccessDenied(actor, f"update {row.role} tasks", row.resident_id)
    if if_match is not None:
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT fhir_version FROM follow_up_task WHERE id = %s FOR UPDATE",
                (int(task_id),),
            )
            current = await cur.fetchone()
        if current is None or current[0] != if_match:
            raise VersionConflict(
                f"Task/{task_id}의 버전이 바뀌었습니다 / version conflict: If-Match "
                f'W/"{if_match}" but the current version is {current[0] if current else "gone"}'
            )
    if row.closed_at is not None:
        raise access.InvalidRequest(f"Task/{task_id} is already closed")
    note_json = json.dumps(
        [{"text": note.strip(), "authorReference": {"reference": f"Practitioner/{actor.user_id}"}}]
        if note and note.strip()
        else []
    )  # no note: the '{note}' path keeps whatever was there (never an empty array)
    updated = await rows.fetch_one(
        conn,
        StoredResource,
        f"""UPDATE follow_up_task t SET status = %(s)s, updated_at = now(),
               closed_at = CASE WHEN %(s)s = 'completed' THEN now() END,
               closed_by = CASE WHEN %(s)s = 'completed' THEN 'staff' END,
               resource = CASE WHEN %(note)s::jsonb = '[]'::jsonb
                   THEN jsonb_set(t.resource, '{{status}}', to_jsonb(%(s)s::text))
                   ELSE jsonb_set(jsonb_set(t.resource, '{{status}}', to_jsonb(%(s)s::text)),
                       '{{note}}', coalesce(t.resource->'note', '[]'::jsonb) || %(note)s::jsonb)
                   END
            WHERE t.id = %(id)s RETURNING t.id::text AS id, t.resident_id,
                  {_TASK_JSON} AS json""".encode(),
        {"s": status, "id": int(task_id), "note": note_json},
    )
    assert updated is not None
    await access.record_audit(
        conn, actor, subtype="update", action="U", entity="Task", residents=[row.resident_id]
    )
    return updated
