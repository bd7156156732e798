"""Property tests: any valid reading maps to resources the R4B models accept.

Readings are generated as ``devices.model.Measurement`` values over the whole vocabulary the
decoders produce (units, special values, status names, meal and sample context, clocks), and
every resource is checked against ``fhir.resources.R4B`` and against the dict build.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.model import Component, Kind, Measurement, Special
from ingest.errors import HeldForReview, RejectedReading
from ingest.fhir import observations as fhir
from ingest.fhir.encoding import dumps, is_canonical, loads, validate
from ingest.fhir.ids import ID_NAMESPACE
from ingest.fhir.stored import DERIVED, derive

RECEIVED = datetime(2025, 3, 4, 10, 2, 11, tzinfo=fhir.KST)
NAMESPACE = uuid.UUID(bytes=ID_NAMESPACE)

specials = st.sampled_from(list(Special))


def decimal_in(low: int, high: int, places: int = 2) -> st.SearchStrategy[Decimal]:
    """Values with the precision a device sends (0..places decimals, trailing zeros kept)."""
    return st.builds(
        lambda mantissa, exponent: Decimal(mantissa).scaleb(-exponent),
        st.integers(low * 10**places, high * 10**places),
        st.just(places),
    ) | st.integers(low, high).map(Decimal)


def component(code: str, unit: str, low: int, high: int) -> st.SearchStrategy[Component]:
    value = decimal_in(low, high).map(lambda v: Component(code, v, unit))
    absent = specials.map(lambda s: Component(code, None, unit, s))
    return st.one_of(value, value, value, absent)


BP_STATUS = [
    "body_movement",
    "cuff_too_loose",
    "irregular_pulse",
    "pulse_rate_exceeds_upper_limit",
    "pulse_rate_below_lower_limit",
    "pulse_rate_range_reserved",
    "improper_measurement_position",
]
GLUCOSE_STATUS = [
    "device_battery_low",
    "sensor_malfunction",
    "sample_size_insufficient",
    "result_higher_than_device_can_process",
    "time_fault",
    "general_device_fault",
]
times = st.datetimes(datetime(2023, 3, 10), datetime(2025, 3, 4, 10, 0))


@st.composite
def blood_pressure(draw: st.DrawFn) -> Measurement:
    unit = draw(st.sampled_from(["mm[Hg]", "kPa"]))
    high = 40 if unit == "kPa" else 300
    comps = [
        draw(component("systolic", unit, 1, high)),
        draw(component("diastolic", unit, 1, high)),
    ]
    if draw(st.booleans()):
        comps.append(draw(component("mean", unit, 0, high)))
    if draw(st.booleans()):
        comps.append(draw(component("pulse", "/min", 1, 250)))
    return Measurement(
        kind=Kind.BLOOD_PRESSURE,
        components=tuple(comps),
        device_time=draw(st.none() | times),
        user_index=draw(st.none() | st.integers(0, 255)),
        status=tuple(draw(st.lists(st.sampled_from(BP_STATUS), unique=True, max_size=3))),
    )


@st.composite
def glucose(draw: st.DrawFn) -> Measurement:
    unit = draw(st.sampled_from(["mg/dL", "mmol/L"]))
    comp = draw(component("glucose", unit, 1, 600 if unit == "mg/dL" else 33))
    context = []
    sample = draw(
        st.none()
        | st.sampled_from(
            [
                "capillary_whole_blood",
                "capillary_plasma",
                "venous_plasma",
                "undetermined_plasma",
                "interstitial_fluid",
            ]
        )
    )
    if sample is not None:
        context.append(("sample_type", sample))
    meal = draw(
        st.none()
        | st.sampled_from(["preprandial", "postprandial", "fasting", "casual", "bedtime", "7"])
    )
    if meal is not None:
        context.append(("meal", meal))
    status = list(draw(st.lists(st.sampled_from(GLUCOSE_STATUS), unique=True, max_size=3)))
    if draw(st.integers(0, 9)) == 0:
        status.append("control_solution")
    return Measurement(
        kind=Kind.GLUCOSE,
        components=(comp,),
        device_time=draw(times),
        sequence_number=draw(st.integers(0, 65535)),
        status=tuple(status),
        context=tuple(context),
    )


@st.composite
def body(draw: st.DrawFn) -> Measurement:
    kind = draw(st.sampled_from([Kind.BODY_WEIGHT, Kind.BODY_COMPOSITION]))
    imperial = draw(st.booleans())
    mass, length = ("[lb_av]", "[in_i]") if imperial else ("kg", "m")
    comps = [draw(component("weight", mass, 1, 300))]
    if draw(st.booleans()):
        height = draw(decimal_in(1, 2, 3)) if not imperial else draw(decimal_in(30, 90))
        comps.append(Component("height", height, length))
    if kind is Kind.BODY_COMPOSITION:
        comps.append(draw(component("body_fat", "%", 1, 70)))
        if draw(st.booleans()):
            comps.append(draw(component("muscle_mass", mass, 1, 100)))
        if draw(st.booleans()):
            comps.append(draw(component("basal_metabolism", "kJ", 1000, 12000)))
    elif draw(st.booleans()):
        comps.append(Component("bmi", draw(decimal_in(10, 60, 1)), "kg/m2"))
    return Measurement(kind=kind, components=tuple(comps), device_time=draw(times))


@st.composite
def temperature(draw: st.DrawFn) -> Measurement:
    unit = draw(st.sampled_from(["Cel", "[degF]"]))
    return Measurement(
        kind=Kind.BODY_TEMPERATURE,
        components=(draw(component("temperature", unit, 30, 45)),),
        device_time=draw(st.none() | times),
    )


@st.composite
def contexts(draw: st.DrawFn) -> fhir.ReadingContext:
    clock = None
    if draw(st.booleans()):
        offset = timedelta(seconds=draw(st.integers(-7200, 7200)))
        gateway = RECEIVED - timedelta(seconds=draw(st.integers(0, 600)))
        clock = fhir.Clock(device=gateway.replace(tzinfo=None) - offset, gateway=gateway)
    manual = draw(st.integers(0, 9)) == 0
    return fhir.ReadingContext(
        device_id=draw(st.sampled_from(["C4:7C:8D:6A:1B:22", "74E8FFFEFF051C00", "SN-5120034871"])),
        gateway_id=draw(st.sampled_from(["yaksu-gw-1", "hwanghak-gw-2"])),
        received_at=RECEIVED,
        patient=draw(st.from_regex(r"R[0-9]{7}", fullmatch=True)),
        binding=draw(st.sampled_from(["check-in", "registry", "staff"])),
        centre_id="yaksu",
        clock=clock,
        performer="Practitioner/nurse-01" if manual else None,
        setting=draw(st.sampled_from(["centre", "home", "visit"])),
    )


readings = st.one_of(blood_pressure(), glucose(), body(), temperature())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(readings, contexts())
def test_any_valid_reading_maps_to_valid_r4_resources(
    m: Measurement, ctx: fhir.ReadingContext
) -> None:
    try:
        rows = fhir.to_observations(m, ctx)
    except (RejectedReading, HeldForReview):
        return  # dead letter or staff queue: never a crash, never a half-written record
    assert rows
    plans = fhir.plan(m, ctx)
    identifiers = [row.identifier for row in rows]
    assert len(set(identifiers)) == len(identifiers)
    for row, plan in zip(rows, plans, strict=True):
        validate(row.resource)
        resource = loads(row.resource)
        assert is_canonical(resource)
        assert row.resource == dumps(plan.resource_dict())
        assert row.id == str(uuid.uuid5(NAMESPACE, row.identifier))
        assert resource["id"] == row.id
        assert resource["identifier"][0]["value"] == row.identifier
        assert resource["effectiveDateTime"].endswith("+09:00")
        assert row.effective_at.utcoffset() == timedelta(hours=9)
        if row.resident_id is not None:
            assert resource["subject"] == {"reference": f"Patient/{row.resident_id}"}
        if row.value is not None:
            assert "valueQuantity" in resource


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(readings, contexts())
def test_the_hot_path_stores_what_the_slot_by_slot_plan_fills(
    m: Measurement, ctx: fhir.ReadingContext
) -> None:
    """``to_observations`` builds no slot values for what the columns give; the columns must
    give exactly what the per-reading plan (:func:`fhir.plan`, every slot filled) puts there,
    and its remainder must be the plan's remainder slots."""
    try:
        rows = fhir.to_observations(m, ctx)
    except (RejectedReading, HeldForReview):
        return
    plans = fhir.plan(m, ctx)
    assert len(rows) == len(plans)
    for row, plan in zip(rows, plans, strict=True):
        assert row.body is None
        assert row.template is plan.recipe.stored
        assert row.remainder == plan.recipe.stored.remainder(plan.slots)
        columns = row.columns()
        for name, value in plan.slots.items():
            if name in DERIVED:
                assert derive(name, columns) == value, name


@settings(max_examples=100, deadline=None)
@given(readings, contexts(), contexts())
def test_the_identifier_ignores_the_clock_correction(
    m: Measurement, a: fhir.ReadingContext, b: fhir.ReadingContext
) -> None:
    """Two gateways reading the same record with different clocks produce the same keys."""
    b = fhir.ReadingContext(**{**{f: getattr(a, f) for f in a.__slots__}, "clock": b.clock})
    try:
        first = fhir.to_observations(m, a)
        second = fhir.to_observations(m, b)
    except (RejectedReading, HeldForReview):
        return
    coincident = "67975"
    assert [r.identifier for r in first if r.code != coincident] == [
        r.identifier for r in second if r.code != coincident
    ]
