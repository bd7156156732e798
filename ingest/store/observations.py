"""Observations: idempotent batched writes, the ingest transaction, NOTIFY, and series reads.

Write path (:func:`insert_observations`, one transaction with everything else of a batch):

1. ``INSERT INTO observation_identity … SELECT FROM unnest(…) ON CONFLICT DO NOTHING
   RETURNING observation_id``: the PHD conditional-create identifiers not seen before, each
   kept as its Observation id (the UUIDv5 of the identifier, :func:`ingest.fhir.resource_id`:
   122 bits of SHA-1, 16 bytes instead of the ~45-byte text) and the identifier's own time
   (:func:`ingest.fhir.ids.identity_time`). It is not unique on ``observation``'s time: a
   partitioned or hyper table can only be unique on keys that include its time column, and
   corrected times differ between gateways. On stock PostgreSQL it is an ordinary table; on
   TimescaleDB a hypertable on the identifier's time, compressed like ``observation``
   (migration 0107). Ids are sorted so concurrent workers lock them in the same order and
   cannot deadlock.
2. Binary ``COPY observation FROM STDIN`` of only those rows: typed columns, template id and
   compact remainder (``ingest.fhir.stored``; new templates are stored first in the same
   transaction, :func:`ingest.store.templates.ensure_templates`).

Replays, redeliveries and whole-memory resends therefore store nothing twice, and the same
reading arriving through two gateways at once is serialised by the identity key.

The identity row also keeps a digest of the value (:func:`value_key`). A second reading with
the identifier of a stored one (same device, resident, code and device-time second) but another
value is a *conflicting duplicate*, not a replay: the first stays, the second becomes a dead
letter naming both values (``Reason.CONFLICTING_DUPLICATE``) and is counted (``conflict``).
Only a batch that met known identifiers pays one more statement (their digests); a batch of new
readings costs what it did.

:func:`write_outcomes` adds the rest of a consumer batch in the same transaction: unbound-queue
rows, dead letters (idempotent on their digest), staff-binding provenance, per-gateway counters,
``last_seen_at`` of gateways and devices, and ``NOTIFY daon_observations`` with the residents
touched (a JSON array of ids, split below PostgreSQL's 8000-byte payload limit), which wakes
the clinical runner.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final

from psycopg import AsyncConnection

from clinical.prescreen import CONTEXT_CODES, SCREENED_CODES, Screen, screen_stored
from devices.wire import encode_reading
from ingest.errors import Reason
from ingest.fhir import StoredObservation, resource_id
from ingest.fhir.encoding import dumps, loads
from ingest.fhir.ids import identity_seconds
from ingest.fhir.stored import ObservationTemplate
from ingest.pipeline import Bound, DeadLetter, MessageOutcome, ReadingOutcome
from ingest.store.deadletter import insert_dead_letters
from ingest.store.templates import ensure_templates, stored_columns

Conn = AsyncConnection[Any]

NOTIFY_CHANNEL: Final = "daon_observations"
#: Residents whose new readings may raise a critical flag (clinical.prescreen): the runner
#: evaluates them before its backlog. Same payload as NOTIFY_CHANNEL.
PRIORITY_CHANNEL: Final = "daon_priority"
#: Residents with a glucose ≥ 200 mg/dL: critical only with a DKA-type symptom near it, which
#: the runner looks up before putting them first.
IF_SYMPTOMS_CHANNEL: Final = "daon_priority_if_symptoms"
NOTIFY_LIMIT: Final = 7900  # bytes; PostgreSQL refuses payloads of 8000 bytes or more

_COLUMNS: Final = (
    "id, effective_at, resident_id, code, code_system, value, unit, component_values, "
    "device_id, gateway_id, centre_id, status, identifier, template_id, remainder, received_at, "
    "quality, context, setting, binding, session_id, station_id, reading_id"
)
#: ``context`` as the readers see it (migration 0109 keeps five of its keys in columns)
CONTEXT_SQL: Final = (
    "daon_observation_context({o}context, {o}setting, {o}binding, {o}session_id, "
    "{o}station_id, {o}reading_id)"
)
#: The keys of ``context`` stored in their own columns, in column order.
CONTEXT_COLUMNS: Final = ("setting", "binding", "session", "station", "reading")
_COPY: Final = f"COPY observation ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_IDENTITY: Final = (
    "INSERT INTO observation_identity (observation_id, key_time, effective_at, value_key) "
    "SELECT k.id, to_timestamp(k.filed), k.effective_at, k.value_key "
    "FROM unnest(%s::uuid[], %s::bigint[], %s::timestamptz[], %s::bigint[]) "
    "AS k(id, filed, effective_at, value_key) "
    "ON CONFLICT DO NOTHING RETURNING observation_id::text"
)
# key_time too: on TimescaleDB it names the chunks (and compressed batches) to look in
_KNOWN: Final = (
    "SELECT observation_id::text, value_key, effective_at FROM observation_identity "
    "WHERE observation_id = ANY(%s::uuid[]) AND key_time = ANY(%s::timestamptz[])"
)
_FIRST_VALUES: Final = (
    "SELECT o.id::text, o.value, o.unit, o.component_values::text FROM observation o "
    "JOIN unnest(%s::uuid[], %s::timestamptz[]) AS k(id, effective_at) "
    "ON o.id = k.id AND o.effective_at = k.effective_at"
)


_PLAIN_WORD: Final = re.compile(r"^[A-Za-z0-9.:+\-T]+$")


def _array_literal(words: Sequence[str]) -> str | None:
    """``{a,b,c}`` for words that need no quoting in an array literal (identifiers, uuids and
    ISO times are such words); None when one does. Building it with one join is far cheaper
    than psycopg's per-element list dumping."""
    text = ",".join(words)
    if not _PLAIN_WORD.match(text.replace(",", "")) or (
        "null" in text.lower() and any(w.upper() == "NULL" for w in words)
    ):
        return None
    return "{" + text + "}"


def _jsonb(text: str | None) -> bytes | None:
    # Binary jsonb is a version byte (1) followed by the JSON text.
    return None if text is None else b"\x01" + text.encode()


_NO_FACTS: Final = (None, None, None, None, None)
_last_context: list[Any] = [None, (None, _NO_FACTS)]  # the rows of a reading share one text


def split_context(text: str | None) -> tuple[bytes | None, tuple[str | None, ...]]:
    """``context`` as stored (binary jsonb of what is left, or None) and the values of
    :data:`CONTEXT_COLUMNS` (strings only; anything else stays in the object). About 2 µs a
    row; the rows of one reading share their text, so the last one is remembered."""
    if text is None:
        return None, _NO_FACTS
    if _last_context[0] == text:
        cached: tuple[bytes | None, tuple[str | None, ...]] = _last_context[1]
        return cached
    value = json.loads(text)
    facts: list[str | None] = []
    for key in CONTEXT_COLUMNS:
        item = value.get(key) if isinstance(value, dict) else None
        if isinstance(item, str) and "\x00" not in item:
            facts.append(item)
            del value[key]
        # (a NUL stays in the object: the database refuses it there, as it always did)
        else:
            facts.append(None)
    left = json.dumps(value, ensure_ascii=False, separators=(",", ":")) if value else None
    found = (_jsonb(left), tuple(facts))
    _last_context[:] = [text, found]
    return found


def copy_row(
    o: StoredObservation, stored: tuple[ObservationTemplate | None, str | None] | None = None
) -> tuple[Any, ...]:
    """The binary COPY row of an Observation (uuid and jsonb as their wire bytes): typed
    columns, template id and remainder (``stored``: from :func:`stored_columns`, computed
    here when not given). The caller stores the template (:func:`ensure_templates`)."""
    template, remainder = stored if stored is not None else stored_columns(o)
    context, facts = split_context(o.context)
    return (
        bytes.fromhex(o.id.replace("-", "")),
        o.effective_at,
        o.resident_id,
        o.code,
        o.code_system,
        o.value,
        o.unit,
        _jsonb(o.component_values),
        o.device_id,
        o.gateway_id,
        o.centre_id,
        o.status,
        o.identifier,
        None if template is None else template.id,
        remainder,
        o.received_at,
        list(o.quality) if o.quality else None,
        context,
        *facts,
    )


async def copy_observations(conn: Conn, observations: Sequence[StoredObservation]) -> None:
    """Binary-COPY ``observations`` (new ones: the caller de-duplicated them) with their
    templates stored first. Call inside a transaction."""
    stored = [stored_columns(o) for o in observations]
    await ensure_templates(conn, {t.id: t for t, _ in stored if t is not None}.values())
    async with conn.cursor().copy(_COPY) as copy:
        for o, form in zip(observations, stored, strict=True):
            await copy.write_row(copy_row(o, form))


def value_key(o: StoredObservation) -> int:
    """A 64-bit digest of what a replay repeats exactly: value, unit and panel components (the
    BLAKE2b digest of migration 0102's hex text, as a signed bigint since migration 0107)."""
    text = f"{o.value!r}|{o.unit}|{o.component_values}"
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def value_text(value: float | None, unit: str | None, components: str | None) -> str:
    """The value as staff read it in a dead letter (``100 mg/dL``, ``{"8480-6":120,...}``)."""
    if components:
        return f"{components} {unit or ''}".strip()
    if value is None:
        return "(값 없음 / no value)"
    return f"{value:.15g} {unit or ''}".strip()


@dataclass(frozen=True, slots=True)
class Conflict:
    """An Observation whose identifier is stored with another value; ``first`` is that value."""

    observation: StoredObservation
    first: str


@dataclass(frozen=True, slots=True)
class Inserted:
    """What :func:`store_observations` did with each Observation."""

    new: list[StoredObservation]
    same: list[StoredObservation]  # replays: stored before with the same value
    conflicts: list[Conflict]


async def store_observations(conn: Conn, observations: Sequence[StoredObservation]) -> Inserted:
    """Store what is new; sort the rest into replays and conflicts. Call inside a transaction.

    Duplicates within ``observations`` are replays (same value) or conflicts of the first.
    An Observation's id is the UUIDv5 of its identifier, so the same identifier is the same id.
    """
    unique: dict[str, StoredObservation] = {}
    keys: dict[str, int] = {}
    repeats: list[StoredObservation] = []
    for o in observations:
        if o.id in unique:
            repeats.append(o)
        else:
            unique[o.id] = o
            keys[o.id] = value_key(o)
    if not unique:
        return Inserted([], [], [])
    ordered = sorted(unique)
    rows = [unique[i] for i in ordered]
    key_times = {i: identity_seconds(unique[i].identifier) for i in ordered}
    ids = _array_literal(ordered)
    filed = _array_literal([str(key_times[i]) for i in ordered])
    times = _array_literal([o.effective_at.isoformat() for o in rows])
    digests = _array_literal([str(keys[i]) for i in ordered])
    if ids is not None and filed is not None and times is not None and digests is not None:
        params: tuple[Any, ...] = (ids, filed, times, digests)
    else:  # not plain words: let psycopg quote them (slower, never expected)
        params = (
            ordered,
            [key_times[i] for i in ordered],
            [o.effective_at for o in rows],
            [keys[i] for i in ordered],
        )
    cur = await conn.execute(_IDENTITY, params)
    fresh = {r[0] for r in await cur.fetchall()}
    new = [o for o in rows if o.id in fresh]
    old = [o for o in rows if o.id not in fresh]
    if new:
        await copy_observations(conn, new)
    same: list[StoredObservation] = []
    conflicts: list[Conflict] = []
    # what each id is compared with: the stored value, or the batch's first occurrence
    reference: dict[str, tuple[int | None, str]] = {i: (keys[i], "") for i in fresh}
    if old:
        cur = await conn.execute(
            _KNOWN,
            (
                [o.id for o in old],
                [datetime.fromtimestamp(t, UTC) for t in sorted({key_times[o.id] for o in old})],
            ),
        )
        known = {r[0]: (r[1], r[2]) for r in await cur.fetchall()}
        against: list[tuple[StoredObservation, datetime]] = []  # (this one, first's time)
        for o in old:
            stored_key, first_at = known.get(o.id, (None, None))
            # NULL: stored before digests were kept; nothing to compare, so a replay
            if stored_key is None or stored_key == keys[o.id] or first_at is None:
                same.append(o)
                reference[o.id] = (keys[o.id], "")
            else:
                against.append((o, first_at))
        if against:  # rare: read the first values for the dead letter (id, time: one index)
            cur = await conn.execute(
                _FIRST_VALUES, ([o.id for o, _ in against], [t for _, t in against])
            )
            stored = {r[0]: value_text(r[1], r[2], r[3]) for r in await cur.fetchall()}
            for o, _ in against:
                conflicts.append(Conflict(o, stored.get(o.id, "?")))
                reference[o.id] = (known[o.id][0], stored.get(o.id, "?"))
    for o in repeats:  # within the batch: compare with what the id is stored with
        ref_key, ref_text = reference[o.id]
        if value_key(o) == ref_key:
            same.append(o)
        else:
            first = unique[o.id]
            text = ref_text or value_text(first.value, first.unit, first.component_values)
            conflicts.append(Conflict(o, text))
    return Inserted(new, same, conflicts)


async def insert_observations(
    conn: Conn, observations: Sequence[StoredObservation]
) -> tuple[list[StoredObservation], list[StoredObservation]]:
    """Store what is new; return (new, not stored: replays and conflicts alike).

    For callers that need not tell a conflict from a replay; see :func:`store_observations`.
    """
    done = await store_observations(conn, observations)
    return done.new, done.same + [c.observation for c in done.conflicts]


def conflict_letter(
    reading: ReadingOutcome, conflicts: Sequence[Conflict], topic: str
) -> DeadLetter:
    """The dead letter of a reading with conflicting duplicates: both values and the reason."""
    parts = [
        f"{c.observation.code}: 먼저 저장된 값 {c.first}, 이번 값 "
        f"{value_text(c.observation.value, c.observation.unit, c.observation.component_values)} "
        f"(first {c.first} kept, this one not stored; identifier {c.observation.identifier})"
        for c in conflicts
    ]
    raw = (
        encode_reading(reading.wire)
        if reading.wire is not None
        else "; ".join(c.observation.resource for c in conflicts).encode()
    )
    return DeadLetter(
        Reason.CONFLICTING_DUPLICATE,
        "같은 기기·주민·항목·측정 시각(초)에 다른 값이 이미 저장되어 있습니다 (conflicting "
        "duplicate: same device, resident, code and device time as a stored reading, another "
        "value): " + "; ".join(parts),
        raw,
        topic,
        reading.gateway_id,
        reading.reading_id,
        reading.device_id,
        None,
    )


def notify_payloads(residents: Iterable[str], limit: int = NOTIFY_LIMIT) -> list[str]:
    """JSON arrays of resident ids, each below ``limit`` bytes (PostgreSQL allows < 8000)."""
    payloads: list[str] = []
    chunk: list[str] = []
    size = 2
    for resident in sorted(set(residents)):
        item = len(dumps(resident).encode()) + 1
        if chunk and size + item > limit:
            payloads.append(dumps(chunk))
            chunk, size = [], 2
        chunk.append(resident)
        size += item
    if chunk:
        payloads.append(dumps(chunk))
    return payloads


def parse_notify_payload(payload: str) -> list[str]:
    """The resident ids of one ``daon_observations`` notification."""
    value = loads(payload)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"not a daon_observations payload: {payload[:80]!r}")
    return value


def screen(observations: Iterable[StoredObservation]) -> tuple[set[str], set[str]]:
    """Residents whose new readings may raise a critical flag, and those whose glucose ≥ 200
    does with a DKA-type symptom near it (:mod:`clinical.prescreen`, the rules' thresholds)."""
    critical: set[str] = set()
    if_symptoms: set[str] = set()
    for o in observations:
        if o.resident_id is None or o.code not in SCREENED_CODES or o.resident_id in critical:
            continue
        found = screen_stored(
            o.code,
            o.value,
            o.unit,
            json.loads(o.component_values) if o.component_values else None,
            o.quality,
            json.loads(o.context) if o.context and o.code in CONTEXT_CODES else None,
        )
        if found is Screen.CRITICAL:
            critical.add(o.resident_id)
        elif found is Screen.IF_SYMPTOMS:
            if_symptoms.add(o.resident_id)
    return critical, if_symptoms - critical


async def notify_residents(
    conn: Conn, residents: Iterable[str], observations: Iterable[StoredObservation] = ()
) -> int:
    """Queue the notifications (delivered when the transaction commits); ``observations``, the
    new readings, are pre-screened for the runner's fast path (:func:`screen`)."""
    critical, if_symptoms = screen(observations)
    batches = [
        (NOTIFY_CHANNEL, notify_payloads(residents)),
        (PRIORITY_CHANNEL, notify_payloads(critical)),
        (IF_SYMPTOMS_CHANNEL, notify_payloads(if_symptoms)),
    ]
    channels = [channel for channel, payloads in batches for _ in payloads]
    payloads = [p for _, found in batches for p in found]
    if payloads:
        await conn.execute(
            "SELECT pg_notify(channel, payload) "  # binary arrays: no quoting of the JSON
            "FROM unnest(%b::text[], %b::text[]) AS t(channel, payload)",
            (channels, payloads),
        )
    return len(payloads)


# --- the consumer's transaction ----------------------------------------------------------------


@dataclass(slots=True)
class GatewayCounts:
    messages: int = 0
    received: int = 0
    stored: int = 0
    observations: int = 0
    duplicate: int = 0
    dead_lettered: int = 0
    unbound: int = 0
    conflict: int = 0  # readings with a conflicting duplicate (also dead letters)


@dataclass(slots=True)
class WriteResult:
    """What one transaction stored, per gateway and in total."""

    counts: dict[str, GatewayCounts] = field(default_factory=dict)
    observations: int = 0
    duplicates: int = 0
    conflicts: int = 0
    residents: tuple[str, ...] = ()

    def total(self, name: str) -> int:
        return sum(getattr(c, name) for c in self.counts.values())


@dataclass(frozen=True, slots=True)
class ProvenanceRow:
    id: str
    resident_id: str
    method: str
    session_id: str | None
    gateway_id: str | None
    station_id: str | None
    by_user: str | None
    reading_ids: tuple[str, ...]
    observation_ids: tuple[str, ...]


async def insert_provenance(conn: Conn, rows: Sequence[ProvenanceRow]) -> None:
    if not rows:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO binding_provenance (id, resident_id, method, session_id, gateway_id, "
            "station_id, by_user, reading_ids, observation_ids) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::uuid[])",
            [
                (
                    r.id,
                    r.resident_id,
                    r.method,
                    r.session_id,
                    r.gateway_id,
                    r.station_id,
                    r.by_user,
                    list(r.reading_ids),
                    list(r.observation_ids),
                )
                for r in rows
            ],
        )


def provenance_rows(
    bindings: Iterable[tuple[str, str, Bound, Sequence[str]]],
) -> list[ProvenanceRow]:
    """Group (gateway, reading id, binding, new observation ids) by gateway and binding."""
    groups: dict[tuple[str, Bound], tuple[list[str], list[str]]] = {}
    for gateway_id, reading_id, bound, observation_ids in bindings:
        if not observation_ids:
            continue
        readings, observations = groups.setdefault((gateway_id, bound), ([], []))
        readings.append(reading_id)
        observations.extend(observation_ids)
    return [
        ProvenanceRow(
            str(uuid.uuid4()),
            bound.resident,
            bound.method,
            bound.session,
            gateway_id or None,
            bound.station,
            bound.by_user,
            tuple(readings),
            tuple(observations),
        )
        for (gateway_id, bound), (readings, observations) in groups.items()
    ]


class SeenThrottle:
    """Remembers when ``last_seen_at`` was last written per gateway and device, so a busy
    worker writes it at most every ``interval_s`` (those rows are shared by every worker)."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self._at: dict[str, float] = {}

    def due(self, keys: Iterable[str]) -> list[str]:
        now = time.monotonic()
        due = sorted(k for k in keys if now - self._at.get(k, -1e9) >= self.interval_s)
        for key in due:
            self._at[key] = now
        return due


async def write_outcomes(
    conn: Conn,
    messages: Sequence[MessageOutcome],
    *,
    worker: str = "ingest",
    seen: SeenThrottle | None = None,
) -> WriteResult:
    """Store one consumer batch atomically (the caller commits, then acknowledges).

    ``worker`` names the counter rows this writer owns; ``seen`` throttles the
    ``last_seen_at`` updates of gateways and devices.
    """
    result = WriteResult()
    observations: list[StoredObservation] = []
    unbound = []
    dead = []
    devices: set[str] = set()
    for message in messages:
        counts = result.counts.setdefault(message.gateway_id or "", GatewayCounts())
        counts.messages += 1
        counts.received += message.received
        counts.dead_lettered += message.dead_readings
        dead.extend(message.dead)
        for reading in message.readings:
            devices.add(reading.device_id)
            if reading.dead is not None:
                counts.dead_lettered += 1
                dead.append(reading.dead)
            elif reading.unbound is not None:
                counts.unbound += 1
                unbound.append((message, reading))
            observations.extend(reading.observations)
    inserted = await store_observations(conn, observations)
    new = inserted.new
    new_ids = {o.identifier for o in new}
    conflicting = {id(c.observation): c for c in inserted.conflicts}
    bindings = []
    residents: set[str] = set()
    stored: list[StoredObservation] = []
    for message in messages:
        counts = result.counts[message.gateway_id or ""]
        for reading in message.readings:
            if not reading.observations:
                continue
            # the first reading carrying a new identifier claims it; repeats are duplicates
            fresh = [o for o in reading.observations if o.identifier in new_ids]
            new_ids.difference_update(o.identifier for o in fresh)
            clashes = [conflicting[id(o)] for o in reading.observations if id(o) in conflicting]
            if clashes:  # another value under a stored identifier: kept as a dead letter
                counts.conflict += 1
                result.conflicts += 1
                dead.append(conflict_letter(reading, clashes, message.topic))
                if not fresh:
                    counts.dead_lettered += 1
                    continue
            if fresh:
                counts.stored += 1
                counts.observations += len(fresh)
                residents.update(o.resident_id for o in fresh if o.resident_id)
                stored.extend(fresh)
                if reading.bound is not None and reading.bound.method == "staff":
                    # check-in and registry bindings are recorded on the rows themselves
                    # (context: binding, session, station, reading); see binding_provenance()
                    bindings.append(
                        (
                            reading.gateway_id,
                            reading.reading_id,
                            reading.bound,
                            [o.id for o in fresh if o.resident_id],
                        )
                    )
            else:
                counts.duplicate += 1
    await insert_provenance(conn, provenance_rows(bindings))
    await _insert_unbound(conn, unbound)
    await insert_dead_letters(conn, dead)
    gateways = [g for g in result.counts if g]
    touched_gateways = seen.due(gateways) if seen is not None else sorted(gateways)
    touched_devices = seen.due(d for d in devices if d) if seen is not None else sorted(devices)
    async with conn.pipeline():  # the last statements go in one round trip
        await _count(conn, result.counts, worker)
        await _seen(conn, touched_gateways, touched_devices)
        await notify_residents(conn, residents, stored)
    result.observations = len(new)
    result.duplicates = len(inserted.same)
    result.residents = tuple(sorted(residents))
    return result


async def _insert_unbound(conn: Conn, items: Sequence[tuple[MessageOutcome, Any]]) -> None:
    if not items:
        return
    rows = []
    for _message, reading in items:
        record = reading.unbound
        rows.append(
            (
                reading.gateway_id,
                reading.reading_id,
                None,
                record.station_id,
                record.device_id,
                record.kind,
                record.reason.value,
                record.detail,
                record.measured_at,
                record.received_at,
                record.summary,
                dumps(record.as_json()),
                reading.reading_json,
                record.suggested_resident,
            )
        )
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO unbound_reading (gateway_id, reading_id, centre_id, station_id, "
            "device_id, kind, reason, detail, measured_at, received_at, summary, record, "
            "reading, suggested_resident) "
            "VALUES (%s, %s, coalesce(%s, (SELECT centre_id FROM gateway WHERE id = %s)), %s, "
            "%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s) "
            "ON CONFLICT (gateway_id, reading_id) DO NOTHING",
            [(r[0], r[1], r[2], r[0], *r[3:]) for r in rows],
        )


async def _count(conn: Conn, counts: Mapping[str, GatewayCounts], worker: str) -> None:
    rows = [
        (
            g,
            worker,
            c.messages,
            c.received,
            c.stored,
            c.observations,
            c.duplicate,
            c.dead_lettered,
            c.unbound,
            c.conflict,
            c.stored > 0,
        )
        for g, c in sorted(counts.items())  # one lock order for every worker
        if g
    ]
    if not rows:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            """
            INSERT INTO gateway_counter AS gc (gateway_id, worker, messages, received, stored,
                observations, duplicate, dead_lettered, unbound, conflict, last_message_at,
                last_stored_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now(), CASE WHEN %s THEN now() END)
            ON CONFLICT (gateway_id, worker) DO UPDATE SET
                messages = gc.messages + excluded.messages,
                received = gc.received + excluded.received,
                stored = gc.stored + excluded.stored,
                observations = gc.observations + excluded.observations,
                duplicate = gc.duplicate + excluded.duplicate,
                dead_lettered = gc.dead_lettered + excluded.dead_lettered,
                unbound = gc.unbound + excluded.unbound,
                conflict = gc.conflict + excluded.conflict,
                last_message_at = excluded.last_message_at,
                last_stored_at = coalesce(excluded.last_stored_at, gc.last_stored_at)
            """,
            rows,
        )


async def _seen(conn: Conn, gateways: list[str], devices: list[str]) -> None:
    if gateways:
        await conn.execute(
            "UPDATE gateway SET last_seen_at = now() WHERE id = ANY(%s)", (gateways,)
        )
    if devices:
        await conn.execute("UPDATE device SET last_seen_at = now() WHERE id = ANY(%s)", (devices,))


async def read_counters(conn: Conn) -> dict[str, dict[str, Any]]:
    """Per-gateway counters (for ``daon ingest --status`` and the API's device pages)."""
    cur = await conn.execute(
        "SELECT gateway_id, sum(messages)::bigint AS messages, sum(received)::bigint AS received, "
        "sum(stored)::bigint AS stored, sum(observations)::bigint AS observations, "
        "sum(duplicate)::bigint AS duplicate, sum(dead_lettered)::bigint AS dead_lettered, "
        "sum(unbound)::bigint AS unbound, sum(conflict)::bigint AS conflict, "
        "max(last_message_at) AS last_message_at, "
        "max(last_stored_at) AS last_stored_at FROM gateway_counter "
        "GROUP BY gateway_id ORDER BY gateway_id"
    )
    names = [d.name for d in cur.description or ()]
    return {row[0]: dict(zip(names[1:], row[1:], strict=True)) for row in await cur.fetchall()}


# --- reads for the clinical runner -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Series:
    """Observations as columns (plain tuples; the clinical runner makes numpy arrays of them).

    Rows are sorted by (resident, time, code). ``components`` holds panel values by LOINC
    (``{"8480-6": 128.0, "8462-4": 82.0}``); ``quality`` the device status names and
    ``"questionable"``; ``context`` the reading facts (``setting``, ``meal``, ...).
    """

    resident_id: tuple[str, ...]
    id: tuple[str, ...]
    effective_at: tuple[datetime, ...]
    stored_at: tuple[datetime, ...]
    code: tuple[str, ...]
    value: tuple[float | None, ...]
    unit: tuple[str | None, ...]
    components: tuple[dict[str, Any] | None, ...]
    quality: tuple[tuple[str, ...], ...]
    context: tuple[dict[str, Any] | None, ...]

    def __len__(self) -> int:
        return len(self.id)


async def series_many(
    conn: Conn,
    resident_ids: Sequence[str],
    codes: Sequence[str],
    since: datetime,
    until: datetime | None = None,
) -> Series:
    """Observations of ``codes`` for several residents since ``since``.

    ``entered-in-error`` Observations (retracted bindings) are left out.
    """
    cur = await conn.execute(
        "SELECT resident_id, id::text, effective_at, stored_at, code, value, unit, "
        "component_values, coalesce(quality, '{}'), "
        f"{CONTEXT_SQL.format(o='')} FROM observation "
        "WHERE resident_id = ANY(%s) AND code = ANY(%s) AND effective_at >= %s "
        "AND (%s::timestamptz IS NULL OR effective_at < %s) "
        "AND status <> 'entered-in-error' "
        "ORDER BY resident_id, effective_at, code",
        (list(resident_ids), list(codes), since, until, until),
    )
    rows = await cur.fetchall()
    if not rows:
        return Series((), (), (), (), (), (), (), (), (), ())
    columns = list(zip(*rows, strict=True))
    return Series(
        resident_id=tuple(columns[0]),
        id=tuple(columns[1]),
        effective_at=tuple(columns[2]),
        stored_at=tuple(columns[3]),
        code=tuple(columns[4]),
        value=tuple(columns[5]),
        unit=tuple(columns[6]),
        components=tuple(columns[7]),
        quality=tuple(tuple(q) for q in columns[8]),
        context=tuple(columns[9]),
    )


async def series(
    conn: Conn,
    resident_id: str,
    codes: Sequence[str],
    since: datetime,
    until: datetime | None = None,
) -> Series:
    """One resident's Observations of ``codes`` since ``since``, as columns."""
    return await series_many(conn, [resident_id], codes, since, until)


async def ensure_partitions(conn: Conn, *, months_back: int = 24, months_ahead: int = 13) -> int:
    """Monthly partitions around today (stock PostgreSQL; a no-op on TimescaleDB)."""
    cur = await conn.execute(
        "SELECT daon_ensure_observation_partitions("
        "(date_trunc('month', now()) - make_interval(months => %s))::date, %s)",
        (months_back, months_back + months_ahead),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def refresh_daily(conn: Conn) -> bool:
    """Refresh ``observation_daily`` on stock PostgreSQL (TimescaleDB refreshes its continuous
    aggregate by policy). Returns whether a refresh ran. Use an autocommit connection or
    commit afterwards; ``CONCURRENTLY`` keeps readers unblocked once the view is populated."""
    row = await (
        await conn.execute(
            "SELECT (SELECT value FROM daon_meta WHERE key = 'backend'), "
            "(SELECT ispopulated FROM pg_matviews WHERE matviewname = 'observation_daily')"
        )
    ).fetchone()
    if row is None or row[0] == "timescaledb" or row[1] is None:
        return False
    concurrently = "CONCURRENTLY " if row[1] else ""
    await conn.execute(f"REFRESH MATERIALIZED VIEW {concurrently}observation_daily".encode())
    return True


def provenance_resource(row: ProvenanceRow, recorded: datetime | date) -> dict[str, Any]:
    """The FHIR Provenance of a binding (targets the Observations, agent = who bound them)."""
    agents: list[dict[str, Any]] = []
    if row.gateway_id:
        agents.append(
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/"
                            "provenance-participant-type",
                            "code": "assembler",
                        }
                    ]
                },
                "who": {"reference": f"Device/phg-{row.gateway_id}"},
            }
        )
    if row.by_user:
        agents.append(
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/"
                            "provenance-participant-type",
                            "code": "verifier",
                        }
                    ]
                },
                "who": {"display": row.by_user},
            }
        )
    if not agents:
        agents.append({"who": {"display": "daon ingest"}})
    method_text = {
        "check-in": "체크인 세션으로 배정 (bound by station check-in session)",
        "registry": "기기 등록 정보로 배정 (bound by the device registry)",
        "staff": "직원이 배정 (assigned by staff)",
    }[row.method]
    resource: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": row.id,
        "target": [{"reference": f"Observation/{i}"} for i in row.observation_ids],
        "recorded": recorded.isoformat(),
        "activity": {"text": method_text},
        "agent": agents,
    }
    if row.session_id:
        resource["entity"] = [
            {
                "role": "source",
                "what": {
                    "identifier": {
                        "system": "urn:daon:sid:check-in-session",
                        "value": row.session_id,
                    }
                },
            }
        ]
    return resource


async def provenance_for_observation(conn: Conn, observation_id: str) -> dict[str, Any] | None:
    """The FHIR Provenance of how an Observation was bound to its resident (None if unbound).

    A staff decision has its own ``binding_provenance`` row; a check-in or registry binding is
    read from the Observation's context (method, session, station, reading) and targets every
    Observation of the same reading.
    """
    cur = await conn.execute(
        "SELECT id::text, resident_id, method, session_id, gateway_id, station_id, by_user, "
        "reading_ids, observation_ids::text[], recorded_at FROM binding_provenance "
        "WHERE observation_ids @> ARRAY[%s]::uuid[] ORDER BY recorded_at DESC LIMIT 1",
        (observation_id,),
    )
    row = await cur.fetchone()
    if row is not None:
        return provenance_resource(
            ProvenanceRow(
                row[0], row[1], row[2], row[3], row[4], row[5], row[6], tuple(row[7]), tuple(row[8])
            ),
            row[9],
        )
    cur = await conn.execute(
        f"SELECT o.resident_id, o.gateway_id, {CONTEXT_SQL.format(o='o.')}, o.stored_at, "
        "(SELECT array_agg(s.id::text ORDER BY s.id) FROM observation s "
        " WHERE s.resident_id = o.resident_id AND s.gateway_id = o.gateway_id "
        f" AND {CONTEXT_SQL.format(o='s.')}->>'reading' = "
        f"{CONTEXT_SQL.format(o='o.')}->>'reading' "
        " AND s.effective_at = o.effective_at) "
        "FROM observation o WHERE o.id = %s::uuid",
        (observation_id,),
    )
    found = await cur.fetchone()
    if found is None or found[0] is None:
        return None
    resident, gateway, context, stored_at, targets = found
    context = context or {}
    method = context.get("binding")
    if method not in ("check-in", "registry", "staff"):
        return None
    reading = context.get("reading")
    row_ = ProvenanceRow(
        resource_id(f"provenance-{gateway}-{reading}-{resident}"),
        resident,
        method,
        context.get("session"),
        gateway,
        context.get("station"),
        None,
        (reading,) if reading else (),
        tuple(targets or (observation_id,)),
    )
    return provenance_resource(row_, stored_at)
