"""Stored Observations of every kind the mappings produce, with the text the previous storage
served for each (issue 17: byte-identity of the template renderer and of the migration).

The expected text never comes from the renderer under test: it is the resource built as a dict
by the mapping (``Plan.resource_dict``, the build the templates are checked against) or as
written by the hand-entry builders, stored as PostgreSQL ``jsonb`` and read back as
``resource::text``, which is what the API served when resources were stored whole.

Readings: the Hypothesis strategies of ``test_fhir_properties`` (every kind, unit, special
value, status bit, meal and sample context, clock correction, manual entry), drawn
deterministically, plus explicit edge cases; then the hand entries (PHQ-9, HbA1c, ...), the
staff's clinical entries with a note, the therapist's function tests, and a FHIR client's
create with its own identifier and coding kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from hypothesis import HealthCheck, given, settings

from devices.model import Component, Kind, Measurement, Special
from ingest.errors import HeldForReview, RejectedReading
from ingest.fhir import entered
from ingest.fhir import observations as fhir
from ingest.fhir.encoding import dumps
from ingest.fhir.observations import StoredObservation
from tests.ingest.test_fhir_properties import contexts, readings

RECEIVED = datetime(2025, 3, 4, 10, 2, 11, 123456, tzinfo=fhir.KST)
RESIDENT = "R0001234"


def _drawn(count: int) -> list[tuple[Measurement, fhir.ReadingContext]]:
    found: list[tuple[Measurement, fhir.ReadingContext]] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(readings, contexts())
    def collect(m: Measurement, ctx: fhir.ReadingContext) -> None:
        found.append((m, ctx))

    collect()
    return found


def _ctx(**kw: Any) -> fhir.ReadingContext:
    base: dict[str, Any] = {
        "device_id": "C4:7C:8D:6A:1B:22",
        "gateway_id": "yaksu-gw-1",
        "received_at": RECEIVED,
        "patient": RESIDENT,
        "binding": "check-in",
        "centre_id": "yaksu",
        "station_id": "yaksu-station-1",
        "reading_id": "r1",
        "setting": "centre",
        "session": "session-1",
    }
    base.update(kw)
    return fhir.ReadingContext(**base)


def _explicit() -> list[tuple[Measurement, fhir.ReadingContext]]:
    """Edge cases named on purpose (each kind at least once, whatever the draws gave)."""
    at = datetime(2025, 3, 4, 9, 15, 0)
    bp = Measurement(
        kind=Kind.BLOOD_PRESSURE,
        components=(
            Component("systolic", Decimal("120"), "mm[Hg]"),
            Component("diastolic", Decimal("80"), "mm[Hg]"),
            Component("mean", Decimal("93"), "mm[Hg]"),
            Component("pulse", Decimal("72"), "/min"),
        ),
        device_time=at,
        status=("body_movement", "irregular_pulse"),
    )
    kpa = Measurement(
        kind=Kind.BLOOD_PRESSURE,
        components=(
            Component("systolic", Decimal("16.0"), "kPa"),
            Component("diastolic", None, "kPa", Special.NAN),
        ),
        device_time=at,
    )
    glucose = Measurement(
        kind=Kind.GLUCOSE,
        components=(Component("glucose", Decimal("5.60"), "mmol/L"),),
        device_time=at,
        sequence_number=17,
        context=(("meal", "fasting"), ("sample_type", "capillary_plasma")),
        status=("device_battery_low",),
    )
    control = Measurement(
        kind=Kind.GLUCOSE,
        components=(Component("glucose", Decimal("100"), "mg/dL"),),
        device_time=at,
        sequence_number=18,
        status=("control_solution",),
    )
    body = Measurement(
        kind=Kind.BODY_COMPOSITION,
        components=(
            Component("weight", Decimal("60.20"), "kg"),
            Component("height", Decimal("1.625"), "m"),
            Component("body_fat", Decimal("24.5"), "%"),
        ),
        device_time=at,
    )
    temperature = Measurement(
        kind=Kind.BODY_TEMPERATURE,
        components=(Component("temperature", Decimal("36.50"), "Cel"),),
        device_time=None,
    )
    clock = fhir.Clock(device=datetime(2025, 3, 4, 9, 0, 0), gateway=RECEIVED - timedelta(hours=1))
    return [
        (bp, _ctx()),
        (bp, _ctx(clock=clock, reading_id="r2")),  # corrected: coincident timestamp
        (bp, _ctx(binding="staff")),
        (bp, _ctx(performer="Practitioner/N01", binding="staff", setting="visit")),  # manual
        (kpa, _ctx(binding="registry", setting="home", device_id="D0:00:00:00:00:01")),
        (glucose, _ctx(device_id="5A:00:00:00:00:01")),
        (control, _ctx(device_id="5A:00:00:00:00:01", patient=None)),
        (body, _ctx(device_id="SN-5120034871")),
        (temperature, _ctx(device_id="74E8FFFEFF051C00")),
    ]


@cache
def _mapped() -> tuple[tuple[StoredObservation, str, Kind], ...]:
    out: list[tuple[StoredObservation, str, Kind]] = []
    for m, ctx in _explicit() + _drawn(250):
        try:
            rows = fhir.to_observations(m, ctx)
        except (RejectedReading, HeldForReview):
            continue
        plans = fhir.plan(m, ctx)
        for row, plan in zip(rows, plans, strict=True):
            out.append((row, dumps(plan.resource_dict()), m.kind))
    return tuple(out)


def mapped() -> Iterator[tuple[StoredObservation, str, Kind]]:
    """(row as the store writes it now, the compact text the previous code stored, kind)."""
    yield from _mapped()


def hand_entered() -> Iterator[tuple[StoredObservation, str]]:
    """Rows built without a template (hand entries, a client's create), as (row, stored text)."""
    when = datetime(2025, 3, 3, 14, 0, tzinfo=fhir.KST)
    for code, value, unit in (
        ("44261-6", Decimal("6"), "{score}"),
        ("4548-4", Decimal("6.8"), "%"),
        ("2085-9", Decimal("45"), "mg/dL"),
    ):
        spec = entered.ENTERED.get(code)
        if spec is None or unit not in spec.units:
            unit = spec.units[0] if spec is not None else unit
        row = entered.entered_observation(
            resident_id=RESIDENT,
            code=code,
            value=value,
            unit=unit,
            effective=when,
            performer="Practitioner/N01",
            received_at=RECEIVED,
        )
        assert row.body is not None
        yield row, row.body
    client = {
        "resourceType": "Observation",
        "identifier": [{"system": "urn:example:clinic", "value": "lab-77"}],
        "code": {"coding": [{"system": "urn:example:local", "code": "A1C"}], "text": "당화혈색소"},
    }
    row = entered.entered_observation(
        resident_id=RESIDENT,
        code="4548-4",
        value=Decimal("7.10"),
        unit="%",
        effective=when + timedelta(hours=1),
        performer="Practitioner/N01",
        received_at=RECEIVED,
        client=client,
    )
    assert row.body is not None
    yield row, row.body
