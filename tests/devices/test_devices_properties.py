"""Properties over all inputs: any bytes decode or raise DecodeError; encoders invert decoders.

These complement the spec vectors (house-style.md §3.6): a round trip written by the same hand
cannot catch a wrong decoder, but it does catch encoders and decoders drifting apart, and the
'any bytes' property catches crashes on hostile or corrupted payloads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.decode import DECODERS, decode_value, dumps
from devices.errors import DecodeError
from devices.gatt import battery, cgm, current_time, device_information, racp
from devices.gatt import blood_pressure as bp
from devices.gatt import body_composition as bcs
from devices.gatt import glucose as gls
from devices.gatt import thermometer as htm
from devices.gatt import user_data as uds
from devices.gatt import weight_scale as wss
from devices.ieee11073 import DateTime, float_from_raw, sfloat_from_raw
from devices.records import decode_record

CHARACTERISTICS = sorted(DECODERS)
RECORD_STARTERS = ["2a35", "2a36", "2a18", "2a9d", "2a9c", "2aa7", "2a1c"]


@pytest.mark.parametrize("uuid", CHARACTERISTICS)
@settings(max_examples=150)
@given(data=st.binary(max_size=40))
def test_any_bytes_decode_or_raise_decode_error(uuid: str, data: bytes) -> None:
    error: DecodeError | None = None
    try:
        out = decode_value(uuid, data)
    except DecodeError as exc:
        error = exc
    if error is not None:
        assert error.characteristic == uuid
        assert error.payload_hex == data.hex()
        assert error.reason
        return
    assert isinstance(out, dict)
    json.loads(dumps(out))  # the CLI can always print it


@pytest.mark.parametrize("uuid", RECORD_STARTERS)
@settings(max_examples=100)
@given(data=st.binary(max_size=40))
def test_any_bytes_make_a_record_or_raise_decode_error(uuid: str, data: bytes) -> None:
    try:
        measurements = decode_record([(uuid, data)])
    except DecodeError:
        return
    assert measurements
    for m in measurements:
        assert m.components


# --- strategies for values that exist on the wire ------------------------------------------------

sfloats = st.integers(0, 0xFFFF).map(sfloat_from_raw)
floats32 = st.integers(0, 0xFFFFFFFF).map(float_from_raw)
uint8 = st.integers(0, 0xFF)
uint16 = st.integers(0, 0xFFFF)


@st.composite
def date_times(draw: st.DrawFn, *, complete: bool = False) -> DateTime:
    year = draw(st.integers(1582, 9998) if complete else st.sampled_from([0, 1582, 2024, 9999]))
    month = draw(st.integers(1 if complete else 0, 12))
    day = draw(st.integers(1 if complete else 0, 28))
    return DateTime(
        year,
        month,
        day,
        draw(st.integers(0, 23)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 59)),
    )


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def scaled(resolution: Decimal, *, top: int = 0xFFFE) -> st.SearchStrategy[Decimal]:
    return st.integers(0, top).map(lambda raw: raw * resolution)


bp_measurements = st.builds(
    bp.BloodPressureMeasurement,
    sfloats,
    sfloats,
    sfloats,
    st.sampled_from(bp.PressureUnit),
    maybe(date_times()),
    maybe(sfloats),
    maybe(uint8),
    maybe(uint16),
)
cuff_pressures = st.builds(
    bp.IntermediateCuffPressure,
    sfloats,
    st.sampled_from(bp.PressureUnit),
    maybe(date_times()),
    maybe(sfloats),
    maybe(uint8),
    maybe(uint16),
)


@st.composite
def glucose_measurements(draw: st.DrawFn) -> gls.GlucoseMeasurement:
    has_value = draw(st.booleans())
    return gls.GlucoseMeasurement(
        draw(uint16),
        draw(date_times()),
        draw(maybe(st.integers(-32768, 32767))),
        draw(sfloats) if has_value else None,
        draw(st.sampled_from(gls.ConcentrationUnit)) if has_value else None,
        draw(st.integers(0, 15)) if has_value else None,
        draw(st.integers(0, 15)) if has_value else None,
        draw(maybe(uint16)),
        draw(st.booleans()),
    )


@st.composite
def glucose_contexts(draw: st.DrawFn) -> gls.GlucoseContext:
    carbs = draw(st.booleans())
    tester = draw(st.booleans())
    exercise = draw(st.booleans())
    medication = draw(st.booleans())
    return gls.GlucoseContext(
        draw(uint16),
        draw(maybe(uint8)),
        draw(uint8) if carbs else None,
        draw(sfloats) if carbs else None,
        draw(maybe(uint8)),
        draw(st.integers(0, 15)) if tester else None,
        draw(st.integers(0, 15)) if tester else None,
        draw(uint16) if exercise else None,
        draw(uint8) if exercise else None,
        draw(uint8) if medication else None,
        draw(sfloats) if medication else None,
        draw(st.booleans()) if medication else False,
        draw(maybe(sfloats)),
    )


@st.composite
def racp_values(draw: st.DrawFn) -> racp.RacpValue:
    kind = draw(
        st.sampled_from(
            ["simple", "sequence", "time", "abort", "count", "response", "latest", "other"]
        )
    )
    op = draw(st.sampled_from([1, 2, 4]))
    if kind == "simple":
        return racp.RacpRequest(op, draw(st.sampled_from([1, 5, 6])))
    if kind in ("sequence", "time"):
        operator = draw(st.sampled_from([2, 3, 4]))
        low = operator in (3, 4)
        high = operator in (2, 4)
        if kind == "sequence":
            return racp.RacpRequest(
                op,
                operator,
                racp.FILTER_SEQUENCE_NUMBER,
                draw(uint16) if low else None,
                draw(uint16) if high else None,
            )
        return racp.RacpRequest(
            op,
            operator,
            racp.FILTER_USER_FACING_TIME,
            min_time=draw(date_times()) if low else None,
            max_time=draw(date_times()) if high else None,
        )
    if kind == "abort":
        return racp.RacpRequest(3, 0)
    if kind == "count":
        return racp.RacpNumberOfRecords(draw(uint16))
    if kind == "response":
        return racp.RacpResponse(draw(uint8), draw(uint8))
    if kind == "latest":
        return racp.RacpLatestSequence(draw(uint16))
    return racp.RacpRequest(
        draw(st.integers(0x20, 0xFF)), draw(uint8), operand=draw(st.binary(max_size=8))
    )


@st.composite
def weights(draw: st.DrawFn) -> wss.WeightMeasurement:
    unit = draw(st.sampled_from(wss.MassUnit))
    successful = draw(st.booleans())
    with_bmi = successful and draw(st.booleans())
    return wss.WeightMeasurement(
        draw(scaled(unit.mass_resolution)) if successful else None,
        unit,
        draw(maybe(date_times())),
        draw(maybe(uint8)),
        draw(scaled(wss.BMI_RESOLUTION, top=0xFFFF)) if with_bmi else None,
        draw(scaled(unit.length_resolution, top=0xFFFF)) if with_bmi else None,
    )


@st.composite
def body_compositions(draw: st.DrawFn) -> bcs.BodyCompositionMeasurement:
    unit = draw(st.sampled_from(wss.MassUnit))
    successful = draw(st.booleans())

    def optional(resolution: Decimal) -> Decimal | None:
        return draw(maybe(scaled(resolution, top=0xFFFF))) if successful else None

    mass = unit.mass_resolution
    return bcs.BodyCompositionMeasurement(
        draw(scaled(Decimal("0.1"))) if successful else None,
        unit,
        draw(maybe(date_times())),
        draw(maybe(uint8)),
        optional(Decimal(1)),
        optional(Decimal("0.1")),
        optional(mass),
        optional(mass),
        optional(mass),
        optional(mass),
        optional(Decimal("0.1")),
        optional(mass),
        optional(unit.length_resolution),
        draw(st.booleans()),
    )


@st.composite
def ucp_values(draw: st.DrawFn) -> uds.UcpValue:
    kind = draw(
        st.sampled_from(
            ["register", "consent", "plain", "delete", "other", "response", "registered"]
        )
    )
    consent = st.integers(0, 9999)
    if kind == "register":
        return uds.UcpRequest(1, consent_code=draw(consent))
    if kind == "consent":
        return uds.UcpRequest(2, user_index=draw(uint8), consent_code=draw(consent))
    if kind == "plain":
        return uds.UcpRequest(draw(st.sampled_from([3, 4])))
    if kind == "delete":
        return uds.UcpRequest(5, user_index=draw(uint8))
    if kind == "other":
        op = draw(st.integers(0x06, 0xFF).filter(lambda o: o != 0x20))
        return uds.UcpRequest(op, parameter=draw(st.binary(max_size=6)))
    if kind == "registered":
        return uds.UcpResponse(1, 1, draw(uint8), draw(st.binary(max_size=4)))
    request = draw(uint8)
    value = draw(uint8.filter(lambda v: request != 1 or v != 1))
    return uds.UcpResponse(request, value, parameter=draw(st.binary(max_size=4)))


@st.composite
def cgm_records(draw: st.DrawFn) -> cgm.CgmRecord:
    return cgm.CgmRecord(
        draw(sfloats),
        draw(uint16),
        draw(maybe(uint8)),
        draw(maybe(uint8)),
        draw(maybe(uint8)),
        draw(maybe(sfloats)),
        draw(maybe(sfloats)),
        draw(st.booleans()),
    )


time_zones = st.integers(-48, 56) | st.just(-128)

# (encoder, decoder, strategy) for every encoder a gateway or simulator uses.
ROUND_TRIPS: dict[
    str, tuple[Callable[[Any], bytes], Callable[[bytes], Any], st.SearchStrategy[Any]]
] = {
    "bp measurement": (bp.encode_measurement, bp.decode_measurement, bp_measurements),
    "bp intermediate cuff": (
        bp.encode_intermediate_cuff_pressure,
        bp.decode_intermediate_cuff_pressure,
        cuff_pressures,
    ),
    "bp feature": (
        bp.encode_feature,
        bp.decode_feature,
        st.builds(bp.BloodPressureFeature, uint16),
    ),
    "glucose measurement": (gls.encode_measurement, gls.decode_measurement, glucose_measurements()),
    "glucose context": (gls.encode_context, gls.decode_context, glucose_contexts()),
    "glucose feature": (
        gls.encode_feature,
        gls.decode_feature,
        st.builds(gls.GlucoseFeature, uint16),
    ),
    "racp": (racp.encode_racp, racp.decode_racp, racp_values()),
    "weight": (wss.encode_measurement, wss.decode_measurement, weights()),
    "weight feature": (
        wss.encode_feature,
        wss.decode_feature,
        st.builds(wss.WeightScaleFeature, st.integers(0, 0xFFFFFFFF)),
    ),
    "body composition": (bcs.encode_measurement, bcs.decode_measurement, body_compositions()),
    "body composition feature": (
        bcs.encode_feature,
        bcs.decode_feature,
        st.builds(bcs.BodyCompositionFeature, st.integers(0, 0xFFFFFFFF)),
    ),
    "user index": (uds.encode_user_index, uds.decode_user_index, st.builds(uds.UserIndex, uint8)),
    "database change increment": (
        uds.encode_database_change_increment,
        uds.decode_database_change_increment,
        st.builds(uds.DatabaseChangeIncrement, st.integers(0, 0xFFFFFFFF)),
    ),
    "user control point": (
        uds.encode_user_control_point,
        uds.decode_user_control_point,
        ucp_values(),
    ),
    "current time": (
        current_time.encode_current_time,
        current_time.decode_current_time,
        st.builds(current_time.CurrentTime, date_times(), uint8, uint8, uint8),
    ),
    "local time information": (
        current_time.encode_local_time_information,
        current_time.decode_local_time_information,
        st.builds(current_time.LocalTimeInformation, time_zones, uint8),
    ),
    "date time": (
        current_time.encode_date_time_characteristic,
        current_time.decode_date_time_characteristic,
        date_times(),
    ),
    "battery": (
        battery.encode_battery_level,
        battery.decode_battery_level,
        st.builds(battery.BatteryLevel, st.integers(0, 100)),
    ),
    "dis string": (
        device_information.encode_string,
        lambda data: device_information.decode_string("00002a29-0000-1000-8000-00805f9b34fb", data),
        st.builds(device_information.DeviceString, st.text().filter(lambda t: "\x00" not in t)),
    ),
    "system id": (
        device_information.encode_system_id,
        device_information.decode_system_id,
        st.builds(
            device_information.SystemId, st.integers(0, 2**40 - 1), st.integers(0, 2**24 - 1)
        ),
    ),
    "pnp id": (
        device_information.encode_pnp_id,
        device_information.decode_pnp_id,
        st.builds(device_information.PnpId, uint8, uint16, uint16, uint16),
    ),
    "cgm": (
        cgm.encode_measurement,
        cgm.decode_measurement,
        st.lists(cgm_records(), min_size=1, max_size=4).map(lambda r: cgm.CgmMeasurement(tuple(r))),
    ),
    "thermometer": (
        htm.encode_measurement,
        htm.decode_measurement,
        st.builds(
            htm.TemperatureMeasurement,
            floats32,
            st.sampled_from(htm.TemperatureUnit),
            maybe(date_times()),
            maybe(uint8),
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIPS))
@settings(max_examples=120)
@given(data=st.data())
def test_encode_then_decode_returns_the_original(name: str, data: st.DataObject) -> None:
    encode, decode, strategy = ROUND_TRIPS[name]
    value = data.draw(strategy)
    assert decode(encode(value)) == value


@settings(max_examples=120)
@given(body_compositions(), st.integers(8, 40))
def test_split_body_composition_merges_back(
    value: bcs.BodyCompositionMeasurement, size: int
) -> None:
    value = replace(value, multiple_packet=False)
    packets = bcs.split_measurement(value, max_payload=max(size, 12))
    assert all(len(p) <= max(size, 12) for p in packets)
    decoded = [bcs.decode_measurement(p) for p in packets]
    if len(packets) == 1:
        assert decoded[0] == value
    else:
        assert bcs.merge_packets(decoded) == replace(value, multiple_packet=True)


@given(uint16)
def test_bp_status_names_invert_for_the_defined_bits(raw: int) -> None:
    assert bp.status_bits(bp.status_names(raw)) == raw & 0x3F
