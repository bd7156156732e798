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
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection

from api import entries
from api.store import access, queries
from api.store.access import Actor, Capability, InvalidRequest, Role
from clinical import staff
from devices.model import Measurement
from ingest.errors import HeldForReview, RejectedReading
from ingest.fhir import (
    KST,
    MANUAL_NOTE,
    ReadingContext,
    StoredObservation,
    resource_id,
    to_observations,
)
from ingest.fhir.encoding import dumps
from ingest.store import clinical
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


# --- the therapist's function tests (local codes the clinical runner reads) ---------------------

#: Local code system of measurements that have no device and no confirmed LOINC code
#: (clinical.runner.LOCAL_CODES reads these codes for the AWGS 2019 sarcopenia rules).
LOCAL_SYSTEM = "https://daon.junggu.seoul.kr/fhir/CodeSystem/local"
STAFF_ENTRY_SYSTEM = "https://daon.junggu.seoul.kr/fhir/sid/staff-entry"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
UCUM = "http://unitsofmeasure.org"

#: name → (code, display, UCUM unit, plausible range) of the tests a therapist enters.
FUNCTION_TESTS: dict[str, tuple[str, str, str, tuple[Decimal, Decimal]]] = {
    "grip": (
        "daon-grip",
        "악력 / handgrip strength, best of trials",
        "kg",
        (Decimal("1"), Decimal("90")),
    ),
    "gait": (
        "daon-gait-speed",
        "보행 속도 / 6 m gait speed",
        "m/s",
        (Decimal("0.05"), Decimal("3")),
    ),
    "chair": (
        "daon-chair-stand",
        "의자 일어서기 5회 / 5-times chair stand",
        "s",
        (Decimal("2"), Decimal("120")),
    ),
}


async def enter_function_tests(
    conn: Conn,
    actor: Actor,
    resident_id: str,
    measured_at: datetime,
    values: dict[str, Decimal],
) -> int:
    """Store the grip / gait / chair-stand results a therapist measured (deduplicated like any
    reading: entering the same result twice stores it once). Returns how many were new."""
    await access.require_resident(conn, actor, resident_id, Capability.WRITE_FUNCTION_TESTS)
    if measured_at.tzinfo is None:
        raise InvalidRequest("measured_at needs a time zone")
    if measured_at > datetime.now(UTC) + timedelta(minutes=5):
        raise InvalidRequest("측정 시각이 미래입니다 / the measurement time is in the future")
    rows: list[StoredObservation] = []
    local = measured_at.astimezone(KST).replace(microsecond=0)
    for name, value in values.items():
        if name not in FUNCTION_TESTS:
            raise InvalidRequest(f"unknown test {name!r}")
        code, display, unit, (low, high) = FUNCTION_TESTS[name]
        if not low <= value <= high:
            raise InvalidRequest(f"{display}: {value} {unit} is outside {low}-{high}")
        identifier = f"staff-{resident_id}-{code}-{local:%Y%m%dT%H%M%S}"
        obs_id = resource_id(identifier)
        resource = {
            "resourceType": "Observation",
            "id": obs_id,
            "identifier": [{"system": STAFF_ENTRY_SYSTEM, "value": identifier}],
            "status": "final",
            "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "exam"}]}],
            "code": {"coding": [{"system": LOCAL_SYSTEM, "code": code, "display": display}]},
            "subject": {"reference": f"Patient/{resident_id}"},
            "effectiveDateTime": local.isoformat(),
            "performer": [{"reference": f"Practitioner/{actor.user_id}"}],
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
            "note": [{"text": MANUAL_NOTE}],
        }
        rows.append(
            StoredObservation(
                id=obs_id,
                effective_at=local,
                resident_id=resident_id,
                code=code,
                code_system=LOCAL_SYSTEM,
                value=float(value),
                unit=unit,
                component_values=None,
                device_id=None,
                gateway_id=None,
                centre_id=None,
                status="final",
                identifier=identifier,
                body=dumps(resource),
                received_at=datetime.now(UTC),
                context=dumps({"setting": "centre"}),
            )
        )
    if not rows:
        raise InvalidRequest("값을 하나 이상 입력하세요 / enter at least one result")
    new, _already = await insert_observations(conn, rows)
    if new:
        await notify_residents(conn, [resident_id])
        await access.record_audit(
            conn,
            actor,
            subtype="create",
            action="C",
            entity="Observation (function tests)",
            residents=[resident_id],
        )
    return len(new)


# --- what devices do not measure (issue 14.2): screenings, events, labs, tape measures --------


@dataclass(frozen=True, slots=True)
class ClinicalEntryOutcome:
    observation_ids: tuple[str, ...]
    created: int  # how many were new (entering the same thing twice stores it once)
    flags: tuple[clinical.FlagRow, ...]  # the resident's open flags after evaluation


async def enter_clinical(
    conn: Conn,
    actor: Actor,
    entry: entries.ClinicalEntry,
    *,
    setting: str = "visit",
    evaluate: bool = True,
) -> ClinicalEntryOutcome:
    """Store one entry of what devices do not measure as FHIR Observations with their codes
    (:mod:`api.entries`), audit it, and evaluate the resident at once, in the caller's
    transaction. The one path for the web forms and the FHIR API.

    Nurses (and admins) enter everything; the therapist enters falls and frailty; liaison
    officers and stations nothing. Raises InvalidRequest for values outside §2 or the scale.
    """
    kind = entries.KINDS.get(entry.kind)
    if kind is None:
        raise InvalidRequest(f"알 수 없는 항목 / unknown entry kind {entry.kind!r}")
    capability = (
        Capability.WRITE_FUNCTION_TESTS
        if actor.role is Role.THERAPIST and "therapist" in kind.roles
        else Capability.WRITE_READINGS
    )
    await access.require_resident(conn, actor, entry.resident_id, capability)
    now = datetime.now(UTC)
    if entry.measured_at > now + timedelta(minutes=5):
        raise InvalidRequest("측정 시각이 미래입니다 / the measurement time is in the future")
    try:
        rows = entries.observations(
            entry, performer=f"Practitioner/{actor.user_id}", received_at=now, setting=setting
        )
    except entries.EntryError as exc:
        raise InvalidRequest(str(exc)) from exc
    new, _already = await insert_observations(conn, rows)
    if kind.name == "height" and new:
        # the registry's height feeds BMI and ASMI (clinical-rules.md §1): keep it current
        await conn.execute(
            "UPDATE resident SET height_cm = %s WHERE id = %s",
            (entry.values["height"], entry.resident_id),
        )
    await access.record_audit(
        conn,
        actor,
        subtype="create",
        action="C",
        entity=f"Observation (staff entry: {kind.name})",
        residents=[entry.resident_id],
    )
    if new:
        await notify_residents(conn, [entry.resident_id])
        if evaluate:
            await staff.evaluate_now(conn, [entry.resident_id], now)
    flags = tuple(await clinical.open_flags(conn, entry.resident_id))
    return ClinicalEntryOutcome(tuple(r.id for r in rows), len(new), flags)
