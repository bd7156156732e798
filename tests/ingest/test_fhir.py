"""The FHIR mapping, checked against the HL7 PHD IG examples and the mapping tables.

Expected shapes and codes come from the HL7/phd repository's ``input/examples`` (quoted below
with their paths) and from fhir-mapping-and-anchors.md §1-§2, never from our own output. Every
resource is also validated against the ``fhir.resources`` R4B models.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from devices.model import Component, Kind, Measurement, Special
from devices.records import decode_record
from ingest.errors import HeldForReview, Reason, RejectedReading
from ingest.fhir import observations as fhir
from ingest.fhir.devices import device_resource, gateway_resource
from ingest.fhir.encoding import dumps, is_canonical, loads, render, validate
from ingest.fhir.ids import ID_NAMESPACE
from tests.ingest import payloads as p

MDC = "urn:iso:std:iso:11073:10101"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RECEIVED = datetime(2025, 3, 4, 10, 2, 11, tzinfo=p.KST)
MEASURED = datetime(2025, 3, 4, 9, 15, 0)

# HL7/phd input/examples/compound-numeric-blood-pressure.json (commit 2e13b87e), the parts an
# R4 consumer relies on: codes, components, units.
IG_BP_CODE = {(MDC, "150020"), (LOINC, "85354-9")}
IG_BP_COMPONENTS = [
    {(LOINC, "8480-6"), (MDC, "150021")},
    {(LOINC, "8462-4"), (MDC, "150022")},
    {(MDC, "150023")},  # the IG carries MDC only for MAP; the mapping table adds LOINC 8478-0
]
IG_MMHG = {"unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"}
# HL7/phd input/examples/bpm-status.json (PHD IG 2.0.0, commit 5af8412): status bits as
# components coded in terminology.hl7.org's ASN1ToHL7, each set bit valueBoolean true.
IG_ASN1 = "http://terminology.hl7.org/CodeSystem/ASN1ToHL7"
IG_STATUS_CODE = (MDC, "8410608")
IG_STATUS_BODY_MOVEMENT = (IG_ASN1, "8410608.0")
IG_GATEWAY_EXTENSION = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"
# HL7/phd input/examples/coin-example-1.json (commit 141e941c).
IG_COINCIDENT_CODE = (MDC, "67975")
IG_COINCIDENT_PROFILE = (
    "http://hl7.org/fhir/uv/phd/StructureDefinition/PhdCoincidentTimeStampObservation"
)
# HL7/phd input/examples/meal-context-observation.json (commit 141e941c).
IG_MEAL_CODE = (MDC, "8417864")
IG_MEAL_POSTPRANDIAL = (MDC, "8417872")
# HL7/phd input/examples/numeric-observation-not-a-number.json (commit 434934df).
IG_NAN = {
    "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
    "code": "not-a-number",
}


def codings(concept: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in concept["coding"]}


def ctx(**kw: Any) -> fhir.ReadingContext:
    base: dict[str, Any] = {
        "device_id": "C4:7C:8D:6A:1B:22",
        "gateway_id": "yaksu-gw-1",
        "received_at": RECEIVED,
        "patient": "R0001234",
        "binding": "check-in",
        "centre_id": "yaksu",
    }
    base.update(kw)
    return fhir.ReadingContext(**base)


def transform(
    values: list[tuple[str, str]], context: fhir.ReadingContext | None = None, **decode: Any
) -> list[fhir.StoredObservation]:
    measurements = decode_record([(u, bytes.fromhex(h)) for u, h in values], **decode)
    assert len(measurements) == 1
    rows = fhir.to_observations(measurements[0], context or ctx())
    for row in rows:
        validate(row.resource)  # R4B models accept every resource we emit
        assert is_canonical(loads(row.resource))
    return rows


def by_code(rows: list[fhir.StoredObservation]) -> dict[str, dict[str, Any]]:
    return {row.code: loads(row.resource) for row in rows}


# --- blood pressure ------------------------------------------------------------------------


def test_bp_panel_matches_the_phd_compound_numeric_example() -> None:
    panel = by_code(transform([(p.BPM, p.bp(MEASURED))]))["85354-9"]
    assert codings(panel["code"]) == IG_BP_CODE
    assert "value" not in "".join(panel)
    assert "valueQuantity" not in panel
    components = panel["component"]
    for component, expected in zip(components, IG_BP_COMPONENTS, strict=True):
        assert expected <= codings(component["code"])
        quantity = component["valueQuantity"]
        assert {k: quantity[k] for k in ("unit", "system", "code")} == IG_MMHG
    assert [c["valueQuantity"]["value"] for c in components] == [120, 80, 93]
    assert (LOINC, "8478-0") in codings(components[2]["code"])  # mapping table: add 8478-0


def test_bp_panel_claims_the_profiles_and_categories_of_the_mapping_table() -> None:
    panel = by_code(transform([(p.BPM, p.bp(MEASURED))]))["85354-9"]
    assert {
        "http://hl7.org/fhir/StructureDefinition/bp",
        "http://hl7.org/fhir/uv/phd/StructureDefinition/PhdCompoundNumericObservation",
        "http://www.hl7korea.or.kr/fhir/krcore/StructureDefinition/krcore-bloodpressure",
    } <= set(panel["meta"]["profile"])
    categories = {c for cat in panel["category"] for c in codings(cat)}
    assert categories == {
        ("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs"),
        ("http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories", "phd"),
    }


def test_references_gateway_extension_and_performer() -> None:
    panel = by_code(transform([(p.BPM, p.bp(MEASURED))]))["85354-9"]
    assert panel["subject"] == {"reference": "Patient/R0001234"}
    assert panel["device"] == {"reference": "Device/phd-C47C8D6A1B22"}
    assert panel["extension"] == [
        {"url": IG_GATEWAY_EXTENSION, "valueReference": {"reference": "Device/phg-yaksu-gw-1"}}
    ]
    # station self-measurement after check-in: the resident performed it (§2.3)
    assert panel["performer"] == [{"reference": "Patient/R0001234"}]
    staff = by_code(transform([(p.BPM, p.bp(MEASURED))], ctx(binding="staff")))["85354-9"]
    assert "performer" not in staff


def test_pulse_is_its_own_observation() -> None:
    rows = transform([(p.BPM, p.bp(MEASURED))])
    pulse = by_code(rows)["8867-4"]
    assert codings(pulse["code"]) == {(MDC, "149546"), (LOINC, "8867-4")}
    assert pulse["valueQuantity"] == {"value": 72, "unit": "/min", "system": UCUM, "code": "/min"}
    assert "http://hl7.org/fhir/StructureDefinition/heartrate" in pulse["meta"]["profile"]
    panel = by_code(rows)["85354-9"]
    assert all((LOINC, "8867-4") not in codings(c["code"]) for c in panel["component"])


def test_status_bits_follow_the_phd_bits_example_and_derive_from_the_panel() -> None:
    rows = transform([(p.BPM, p.bp(MEASURED, status="0500"))])
    status = by_code(rows)["8410608"]
    assert codings(status["code"]) == {IG_STATUS_CODE}
    components = {next(iter(codings(c["code"]))): c for c in status["component"]}
    # 0x0005: bit 0 body movement, bit 2 irregular pulse; only set bits are reported
    assert set(components) == {IG_STATUS_BODY_MOVEMENT, (IG_ASN1, "8410608.2")}
    assert all(c["valueBoolean"] is True for c in components.values())
    assert all("valueCodeableConcept" not in c for c in components.values())
    panel_id = next(r.id for r in rows if r.code == "85354-9")
    assert status["derivedFrom"] == [{"reference": f"Observation/{panel_id}"}]
    assert "valueQuantity" not in status


def test_no_status_observation_without_status_bits() -> None:
    rows = transform([(p.BPM, p.bp(MEASURED, status="0000"))])
    assert {r.code for r in rows} == {"85354-9", "8867-4"}
    rows = transform([(p.BPM, p.bp(MEASURED, status=None))])
    assert {r.code for r in rows} == {"85354-9", "8867-4"}


def test_kpa_is_converted_to_mmhg_and_says_so() -> None:
    panel = by_code(transform([(p.BPM, p.bp_kpa(MEASURED))]))["85354-9"]
    assert [c["valueQuantity"]["value"] for c in panel["component"]] == [120, 80, 93]
    assert all(c["valueQuantity"]["code"] == "mm[Hg]" for c in panel["component"])
    assert "kPa" in panel["note"][0]["text"]


def test_nan_values_become_data_absent_reason_not_numbers() -> None:
    rows = transform([(p.BPM, p.bp_error(MEASURED))])
    panel = by_code(rows)["85354-9"]
    for component in panel["component"]:
        assert "valueQuantity" not in component
        assert component["dataAbsentReason"]["coding"][0]["code"] == IG_NAN["code"]
        assert component["dataAbsentReason"]["coding"][0]["system"] == IG_NAN["system"]
    assert rows[0].component_values is None  # no numeric component to index


def test_panel_typed_columns_hold_the_components_by_loinc() -> None:
    rows = transform([(p.BPM, p.bp(MEASURED))])
    panel = next(r for r in rows if r.code == "85354-9")
    assert loads(panel.component_values or "") == {"8480-6": 120, "8462-4": 80, "8478-0": 93}
    assert (panel.code_system, panel.unit, panel.value) == (LOINC, "mm[Hg]", None)
    pulse = next(r for r in rows if r.code == "8867-4")
    assert (pulse.value, pulse.unit, pulse.resident_id) == (72.0, "/min", "R0001234")
    assert panel.quality == ("body_movement", "irregular_pulse")


# --- time, identity and the coincident timestamp ---------------------------------------------


def test_identifier_is_device_patient_type_and_raw_seconds_since_2000() -> None:
    # GeneratingtheTimeStampPartIdentifier.md: seconds since 2000-01-01 at the device's
    # resolution. 2000-01-02T00:00:01 is 86,401 s after 2000-01-01T00:00:00.
    t = datetime(2000, 1, 2, 0, 0, 1)
    assert fhir.time_token(t) == "86401"
    assert fhir.observation_identifier("C4:7C:8D:6A:1B:22", "R0001234", "150020", "86401") == (
        "C47C8D6A1B22-R0001234-150020-86401"
    )
    panel = by_code(transform([(p.BPM, p.bp(MEASURED))]))["85354-9"]
    assert panel["identifier"][0] == {
        "system": "http://hl7.org/fhir/uv/phd/StructureDefinition/PhdBaseObservation",
        "value": f"C47C8D6A1B22-R0001234-150020-{fhir.time_token(MEASURED)}",
    }


def test_resource_id_is_the_uuid5_of_the_identifier() -> None:
    rows = transform([(p.BPM, p.bp(MEASURED))])
    namespace = uuid.UUID(bytes=ID_NAMESPACE)
    for row in rows:
        assert row.id == str(uuid.uuid5(namespace, row.identifier))


def test_times_are_korea_time_with_offset() -> None:
    panel = by_code(transform([(p.BPM, p.bp(MEASURED))]))["85354-9"]
    assert panel["effectiveDateTime"] == "2025-03-04T09:15:00+09:00"


def test_clock_correction_moves_effective_time_but_not_the_identifier() -> None:
    plain = transform([(p.BPM, p.bp(MEASURED))])
    clock = fhir.Clock(device=datetime(2025, 3, 4, 9, 50), gateway=RECEIVED - timedelta(minutes=2))
    corrected = transform([(p.BPM, p.bp(MEASURED))], ctx(clock=clock))
    assert [r.identifier for r in plain] == [r.identifier for r in corrected[:-1]]
    # device clock 09:50:00 read while the gateway said 10:00:11 → +10 min 11 s
    panel = by_code(corrected)["85354-9"]
    assert panel["effectiveDateTime"] == "2025-03-04T09:25:11+09:00"


def test_coincident_timestamp_observation_follows_the_phd_example() -> None:
    clock = fhir.Clock(device=datetime(2025, 3, 4, 9, 50), gateway=RECEIVED - timedelta(minutes=2))
    rows = transform([(p.BPM, p.bp(MEASURED))], ctx(clock=clock))
    coin = by_code(rows)["67975"]
    assert codings(coin["code"]) == {IG_COINCIDENT_CODE}
    assert coin["meta"]["profile"] == [IG_COINCIDENT_PROFILE]
    assert coin["subject"] == {"reference": "Device/phd-C47C8D6A1B22"}  # subject: the PHD
    assert coin["device"] == {"reference": "Device/phg-yaksu-gw-1"}  # device: the PHG
    assert coin["effectiveDateTime"] == "2025-03-04T10:00:11+09:00"  # PHG time
    assert coin["valueDateTime"] == "2025-03-04T09:50:00+09:00"  # PHD time
    coin_id = next(r.id for r in rows if r.code == "67975")
    for row in rows:
        if row.code == "67975":
            continue
        resource = loads(row.resource)
        extension = {e["url"]: e for e in resource["extension"]}
        reference = extension[
            "http://hl7.org/fhir/uv/phd/StructureDefinition/CoincidentTimeStampReference"
        ]
        assert reference["valueReference"] == {"reference": f"Observation/{coin_id}"}
    assert next(r for r in rows if r.code == "67975").resident_id is None


def test_every_observation_is_version_1_last_updated_at_its_reception() -> None:
    rows = transform([(p.BPM, p.bp(MEASURED))])
    for row in rows:
        meta = loads(row.resource)["meta"]
        assert meta["versionId"] == "1"
        assert meta["lastUpdated"] == "2025-03-04T10:02:11.000+09:00"  # RECEIVED, Korea time
        assert meta["profile"]  # never an empty array


def test_the_coincident_pair_keeps_the_gateway_milliseconds() -> None:
    """A 1.4 s correction must be recoverable from the pair (device seconds, gateway ms)."""
    gateway = datetime(2025, 3, 4, 9, 50, 1, 400_000, tzinfo=p.KST)
    clock = fhir.Clock(device=datetime(2025, 3, 4, 9, 50), gateway=gateway)
    coin = by_code(transform([(p.BPM, p.bp(MEASURED))], ctx(clock=clock)))["67975"]
    pair = (coin["effectiveDateTime"], coin["valueDateTime"])
    assert pair == ("2025-03-04T09:50:01.400+09:00", "2025-03-04T09:50:00+09:00")
    effective = datetime.fromisoformat(pair[0]) - datetime.fromisoformat(pair[1])
    assert effective == timedelta(seconds=1.4)


def test_a_reading_stamped_ahead_of_its_reception_is_placed_at_the_reception() -> None:
    """A kiosk clock 3 minutes fast (within the future tolerance): PHD time rules map the
    reading onto the gateway's timeline, record the device time in a coincident-timestamp
    Observation, and ``issued`` (the reception) is never before ``effective``."""
    ahead = (RECEIVED + timedelta(minutes=3)).replace(tzinfo=None)
    rows = transform([(p.GLUCOSE, p.glucose(ahead))])
    glucose = next(loads(r.resource) for r in rows if r.code == "41653-7")
    assert glucose["effectiveDateTime"] == "2025-03-04T10:02:11+09:00"  # the reception
    assert datetime.fromisoformat(glucose["issued"]) >= datetime.fromisoformat(
        glucose["effectiveDateTime"]
    )
    coin = by_code(rows)["67975"]
    assert coin["valueDateTime"] == "2025-03-04T10:05:11+09:00"  # what the device said
    assert coin["effectiveDateTime"] == "2025-03-04T10:02:11+09:00"  # the gateway, then
    extension = {e["url"] for e in glucose["extension"]}
    assert "http://hl7.org/fhir/uv/phd/StructureDefinition/CoincidentTimeStampReference" in (
        extension
    )
    # the identity is still the device's own time: a resend dedups onto the same resource
    again = transform([(p.GLUCOSE, p.glucose(ahead))])
    assert {r.id for r in again} == {r.id for r in rows}


def test_no_coincident_observation_when_the_clocks_agree() -> None:
    clock = fhir.Clock(device=datetime(2025, 3, 4, 10, 2, 11), gateway=RECEIVED)
    rows = transform([(p.BPM, p.bp(MEASURED))], ctx(clock=clock))
    assert "67975" not in {r.code for r in rows}


def test_a_reading_without_device_time_uses_the_reception_time() -> None:
    data = "047800" + "5000" + "5d00" + "4800"  # flags 0x04: pulse, no time stamp
    panel = by_code(transform([(p.BPM, data)]))["85354-9"]
    assert panel["effectiveDateTime"] == "2025-03-04T10:02:11+09:00"
    # 2025-03-04T10:02:11 is 9,194 days + 36,131 s after 2000-01-01 (7 leap days to 2025)
    assert panel["identifier"][0]["value"].endswith("-r794397731.000")


@pytest.mark.parametrize(
    "measured",
    [
        RECEIVED.replace(tzinfo=None) + timedelta(hours=2),  # from the future
        datetime(2000, 1, 1, 0, 3),  # a reset clock (ble-profiles.md §6)
    ],
)
def test_implausible_times_are_held_for_review(measured: datetime) -> None:
    with pytest.raises(HeldForReview) as caught:
        transform([(p.BPM, p.bp(measured))])
    assert caught.value.reason is Reason.IMPLAUSIBLE_TIME


def test_a_reset_clock_is_placed_by_the_clock_sample() -> None:
    # the device's clock reset to 2000-01-01 00:00 at the battery change; read at connection
    clock = fhir.Clock(device=datetime(2000, 1, 1, 0, 10), gateway=RECEIVED)
    rows = transform([(p.BPM, p.bp(datetime(2000, 1, 1, 0, 3)))], ctx(clock=clock))
    panel = by_code(rows)["85354-9"]
    assert panel["effectiveDateTime"] == "2025-03-04T09:55:11+09:00"
    assert panel["identifier"][0]["value"].endswith("-180")  # raw: 3 minutes after 2000-01-01


# --- glucose ---------------------------------------------------------------------------------


def test_glucose_matches_the_phd_example_and_the_mapping_table() -> None:
    rows = transform([(p.GLUCOSE, p.glucose(MEASURED))])
    assert len(rows) == 1
    resource = loads(rows[0].resource)
    # type 2 capillary plasma → MDC 160188; LOINC 41653-7 (mg/dL, glucometer)
    assert codings(resource["code"]) == {(MDC, "160188"), (LOINC, "41653-7")}
    assert resource["valueQuantity"] == {
        "value": 105,
        "unit": "mg/dL",
        "system": UCUM,
        "code": "mg/dL",
    }
    categories = {c for cat in resource["category"] for c in codings(cat)}
    assert ("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory") in (
        categories
    )
    assert resource["issued"] == "2025-03-04T10:02:11+09:00"  # KR Core laboratory: issued 1..1
    assert {"system": "urn:daon:sid:glucose-record", "value": "C47C8D6A1B22-1"} in (
        resource["identifier"]
    )


def test_two_glucose_records_in_one_second_stay_two_observations() -> None:
    # ble-profiles.md §7.6: a glucose record is (device identity, sequence number, base time);
    # a meter can store a recheck in the same second, so the time alone must not merge them.
    first = transform([(p.GLUCOSE, p.glucose(MEASURED, sequence=7))])[0]
    second = transform([(p.GLUCOSE, p.glucose(MEASURED, sequence=8))])[0]
    resent = transform([(p.GLUCOSE, p.glucose(MEASURED, sequence=7))])[0]
    assert first.identifier != second.identifier
    assert first.identifier == resent.identifier  # a resent memory still de-duplicates


def test_undetermined_plasma_is_the_code_of_the_phd_glucose_example() -> None:
    # HL7/phd input/examples/glucose-observation.json: 160368 MDC_CONC_GLU_UNDETERMINED_PLASMA
    rows = transform([(p.GLUCOSE, p.glucose(MEASURED, type_location=0x18))])
    assert (MDC, "160368") in codings(loads(rows[0].resource)["code"])


def test_meal_context_follows_the_phd_coded_enumeration_example() -> None:
    values = [
        (p.GLUCOSE, p.glucose(MEASURED, context=True)),
        (p.GLUCOSE_CONTEXT, p.glucose_context(meal=2)),
    ]
    rows = transform(values)
    meal = by_code(rows)["8417864"]
    assert codings(meal["code"]) == {IG_MEAL_CODE}
    assert codings(meal["valueCodeableConcept"]) == {IG_MEAL_POSTPRANDIAL}
    glucose_id = next(r.id for r in rows if r.code == "41653-7")
    assert meal["derivedFrom"] == [{"reference": f"Observation/{glucose_id}"}]


def test_fasting_adds_the_precoordinated_loinc() -> None:
    values = [
        (p.GLUCOSE, p.glucose(MEASURED, context=True)),
        (p.GLUCOSE_CONTEXT, p.glucose_context(meal=3)),
    ]
    glucose = by_code(transform(values))["41653-7"]
    assert (LOINC, "41604-0") in codings(glucose["code"])


def test_control_solution_is_device_qc_never_the_residents_glucose() -> None:
    # type 10 control solution, location 4 control solution (§4.1)
    rows = transform([(p.GLUCOSE, p.glucose(MEASURED, type_location=0x4A))])
    assert len(rows) == 1
    row = rows[0]
    resource = loads(row.resource)
    assert row.resident_id is None
    assert codings(resource["code"]) == {(MDC, "160208")}
    assert resource["subject"] == {"reference": "Device/phd-C47C8D6A1B22"}
    assert "41653-7" not in row.resource


# --- body weight and composition ------------------------------------------------------------


def test_weight_with_kr_core_profile_in_kg() -> None:
    rows = transform([(p.WEIGHT, p.weight(MEASURED))])
    resource = loads(rows[0].resource)
    assert codings(resource["code"]) == {(MDC, "188736"), (LOINC, "29463-7")}
    assert resource["valueQuantity"]["code"] == "kg"
    assert Decimal(str(resource["valueQuantity"]["value"])) == Decimal("70")
    assert (
        "http://www.hl7korea.or.kr/fhir/krcore/StructureDefinition/krcore-bodyweight"
        in (resource["meta"]["profile"])
    )


def test_bmi_is_computed_from_weight_and_height_and_derives_from_both() -> None:
    rows = transform([(p.BODY_COMPOSITION, p.body_composition(MEASURED))])
    found = by_code(rows)
    bmi = found["39156-5"]
    assert bmi["valueQuantity"] == {
        "value": Decimal("22.9"),
        "unit": "kg/m2",
        "system": UCUM,
        "code": "kg/m2",
    }
    assert "device" not in bmi  # computed by us, not measured by a device (mapping table)
    ids = {r.code: r.id for r in rows}
    assert bmi["derivedFrom"] == [
        {"reference": f"Observation/{ids['29463-7']}"},
        {"reference": f"Observation/{ids['8302-2']}"},
    ]
    height = found["8302-2"]
    assert height["valueQuantity"]["code"] == "cm"
    assert Decimal(str(height["valueQuantity"]["value"])) == Decimal(175)
    body_fat = found["41982-0"]
    assert Decimal(str(body_fat["valueQuantity"]["value"])) == Decimal(25)


# --- precision -------------------------------------------------------------------------------


def test_device_precision_is_kept_in_the_stored_text() -> None:
    rows = transform([(p.TEMPERATURE, p.temperature())])
    assert '"valueQuantity":{"value":37.60,"unit":"Cel"' in rows[0].resource
    assert rows[0].value == pytest.approx(37.6)


# --- what is not stored ----------------------------------------------------------------------


def test_intermediate_cuff_pressure_is_never_a_result() -> None:
    data = "00" + "7800" + "ff07" + "ff07"  # 0x2A36: cuff 120 mmHg, diastolic/MAP unused
    measurement = decode_record([(p.CUFF, bytes.fromhex(data))])[0]
    with pytest.raises(RejectedReading) as caught:
        fhir.to_observations(measurement, ctx())
    assert caught.value.reason is Reason.NOT_A_RESULT


def test_impossible_values_are_rejected_with_the_component_named() -> None:
    measurement = decode_record([(p.BPM, bytes.fromhex(p.bp(MEASURED, systolic="0000")))])[0]
    with pytest.raises(RejectedReading) as caught:
        fhir.to_observations(measurement, ctx())
    assert caught.value.reason is Reason.IMPOSSIBLE_VALUE
    assert "systolic" in caught.value.detail


def test_values_outside_the_physiological_bounds_are_rejected_naming_the_rule() -> None:
    # 310 mmHg can come out of a cuff but is outside clinical-rules.md §2 Q-01 (SBP > 300)
    measurement = decode_record([(p.BPM, bytes.fromhex(p.bp(MEASURED, systolic="3601")))])[0]
    with pytest.raises(RejectedReading) as caught:
        fhir.to_observations(measurement, ctx())
    assert caught.value.reason is Reason.IMPLAUSIBLE_VALUE
    assert caught.value.detail.startswith("Q-01: systolic 310")


def test_a_diastolic_not_below_the_systolic_is_flagged_questionable() -> None:
    # 120/130 is inside every §2 bound; the panel is marked questionable (Q-02 is the engine's)
    rows = transform([(p.BPM, p.bp(MEASURED, diastolic="8200"))])  # 0x0082 = 130
    panel = by_code(rows)["85354-9"]
    assert panel["interpretation"] == [
        {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/uv/pocd/CodeSystem/measurement-status",
                    "code": "questionable",
                }
            ]
        }
    ]
    assert "questionable" in (next(r for r in rows if r.code == "85354-9").quality or ())


def test_unbound_reading_gives_the_staff_queue_record() -> None:
    measurement = decode_record([(p.BPM, bytes.fromhex(p.bp(MEASURED)))])[0]
    with pytest.raises(HeldForReview) as caught:
        fhir.to_observations(measurement, ctx(patient=None, binding=None))
    assert caught.value.reason is Reason.NO_BINDING
    record = fhir.unbound_record(measurement, ctx(patient=None), Reason.NO_BINDING, "x")
    shown = record.as_json()
    assert shown["kind"] == "blood-pressure"
    assert shown["measured_at"] == "2025-03-04T09:15:00+09:00"
    assert {"code": "systolic", "value": "120", "unit": "mm[Hg]", "special": None} in (
        shown["values"]
    )
    assert shown["summary"].startswith("혈압")


# --- manual entry (the API's hand-entered readings) -----------------------------------------


def test_manual_entry_has_no_device_and_a_practitioner_performer() -> None:
    measurement = Measurement(
        kind=Kind.BLOOD_PRESSURE,
        components=(
            Component("systolic", Decimal(132), "mm[Hg]"),
            Component("diastolic", Decimal(84), "mm[Hg]"),
        ),
        device_time=MEASURED,
    )
    rows = fhir.to_observations(
        measurement, ctx(performer="Practitioner/nurse-07", binding="staff")
    )
    panel = loads(rows[0].resource)
    validate(panel)
    assert "device" not in panel
    assert "extension" not in panel
    assert panel["performer"] == [{"reference": "Practitioner/nurse-07"}]
    assert "수기 입력" in panel["note"][0]["text"]
    assert not any("uv/phd" in profile for profile in panel["meta"]["profile"])
    assert rows[0].identifier.startswith("manual-R0001234-150020-")


# --- the template path equals the dict path --------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        [(p.BPM, p.bp(MEASURED))],
        [(p.BPM, p.bp_kpa(MEASURED))],
        [(p.BPM, p.bp_error(MEASURED))],
        [
            (p.GLUCOSE, p.glucose(MEASURED, context=True)),
            (p.GLUCOSE_CONTEXT, p.glucose_context(meal=3)),
        ],
        [(p.BODY_COMPOSITION, p.body_composition(MEASURED))],
        [(p.TEMPERATURE, p.temperature())],
    ],
)
def test_template_text_equals_the_dict_build(values: list[tuple[str, str]]) -> None:
    measurement = decode_record([(u, bytes.fromhex(h)) for u, h in values])[0]
    clock = fhir.Clock(device=datetime(2025, 3, 4, 9, 58), gateway=RECEIVED)
    context = ctx(clock=clock)
    plans = fhir.plan(measurement, context)
    rows = fhir.to_observations(measurement, context)
    assert [dumps(plan.resource_dict()) for plan in plans] == [row.resource for row in rows]


def test_render_reproduces_the_stored_text_from_jsonb_order() -> None:
    rows = transform([(p.BPM, p.bp(MEASURED))])
    resource = loads(rows[0].resource)
    reordered = dict(reversed(list(resource.items())))
    assert render(reordered) == rows[0].resource


def test_device_resources_validate() -> None:
    device = device_resource(
        "C4:7C:8D:6A:1B:22",
        manufacturer="A&D Medical",
        model="UA-651BLE",
        serial="5120034871",
        firmware="1.2",
        kind="blood-pressure",
    )
    validate(device)
    assert device["id"] == "phd-C47C8D6A1B22"
    assert device["identifier"][0]["value"] == "C4-7C-8D-6A-1B-22"  # §1.2: dashes, upper case
    # PHD IG 2.0.0 PhdDevice: specialization.version 1..1 (here the Blood Pressure Profile's)
    [spec] = device["specialization"]
    assert spec["systemType"]["coding"][0]["code"] == "528391"
    assert spec["version"] == "1.1"
    gateway = gateway_resource("yaksu-gw-1", description="약수동 1번")
    validate(gateway)
    assert gateway["id"] == "phg-yaksu-gw-1"
    # PhgDevice: the time synchronisation method is reported (MDC_TIME_SYNC_PROTOCOL)
    [sync] = gateway["property"]
    assert sync["type"]["coding"][0]["code"] == "68220"
    assert gateway["meta"]["profile"] == [
        "http://hl7.org/fhir/uv/phd/StructureDefinition/PhgDevice"
    ]


def test_special_values_map_as_floats_md_says() -> None:
    assert fhir.ABSENT[Special.NAN][0] == "not-a-number"
    assert fhir.ABSENT[Special.POSITIVE_INFINITY][0] == "positive-infinity"
    assert fhir.ABSENT[Special.NEGATIVE_INFINITY][0] == "negative-infinity"
    assert fhir.ABSENT[Special.NRES][0] == "error"
    assert fhir.ABSENT[Special.RESERVED][0] == "error"
