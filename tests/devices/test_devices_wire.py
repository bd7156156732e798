"""The gateway → ingest wire format: round trips, the documented example, and rejections."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import wire
from devices.errors import WireError
from devices.wire import (
    Binding,
    CharacteristicValue,
    ClockSample,
    DeviceInfo,
    WireBatch,
    WireReading,
    decode_ack,
    decode_batch,
    decode_batch_partial,
    encode_ack,
    encode_batch,
    reading_from_json,
    reading_to_json,
)

KST = timezone(timedelta(hours=9))
BPM = "00002a35-0000-1000-8000-00805f9b34fb"

# The reading drawn in devices/wire.py's docstring, filled in.
DOC_READING: dict[str, Any] = {
    "id": "01J8Z5X1",
    "source": "ble",
    "station": "yaksu-station-1",
    "device": {
        "id": "C4:7C:8D:6A:1B:22",
        "address": "C4:7C:8D:6A:1B:22",
        "manufacturer": "A&D Medical",
        "model": "UA-651BLE",
        "serial": "5120034871",
        "firmware": "1.2",
        "calibration": None,
    },
    "values": [{"uuid": BPM, "hex": "0e800052006100e807050e071e00480001"}],
    "payload": None,
    "decoded": None,
    "quirks": [],
    "received_at": "2026-03-04T10:02:11+09:00",
    "clock": {
        "device": "2026-03-04T09:15:00",
        "gateway": "2026-03-04T09:21:00+09:00",
        "offset_s": -360.0,
        "trusted": True,
    },
    "binding": {"resident": "R0001234", "method": "check-in", "session": "s-77"},
}


def batch_of(*readings: dict[str, Any], schema: int = 1) -> bytes:
    return json.dumps(
        {
            "schema": schema,
            "gateway": "yaksu-gw-1",
            "centre": "yaksu",
            "sent_at": "2026-03-04T10:02:12.120+09:00",
            "readings": list(readings),
        }
    ).encode()


def test_documented_example_decodes() -> None:
    batch = decode_batch(batch_of(DOC_READING))
    assert (batch.schema, batch.gateway, batch.centre) == (1, "yaksu-gw-1", "yaksu")
    assert batch.sent_at == datetime(2026, 3, 4, 10, 2, 12, 120000, tzinfo=KST)
    (r,) = batch.readings
    assert r.values == (
        CharacteristicValue(BPM, bytes.fromhex("0e800052006100e807050e071e00480001")),
    )
    assert r.clock == ClockSample(
        datetime(2026, 3, 4, 9, 15), datetime(2026, 3, 4, 9, 21, tzinfo=KST), -360.0, True
    )
    assert r.binding == Binding("R0001234", "check-in", "s-77")
    assert r.device.model == "UA-651BLE"
    assert reading_to_json(r) == DOC_READING


def test_short_uuid_is_normalised_and_optional_keys_may_be_left_out() -> None:
    minimal = {
        "id": "x1",
        "source": "ble",
        "device": {"id": "dev"},
        "values": [{"uuid": "2A35", "hex": "00780052006100"}],
        "received_at": "2026-03-04T10:02:11+09:00",
    }
    r = reading_from_json(minimal)
    assert r.values[0].uuid == BPM
    assert (r.station, r.payload, r.decoded, r.quirks, r.clock, r.binding) == (
        None,
        None,
        None,
        (),
        None,
        None,
    )


def test_patient_is_a_staff_binding() -> None:
    r = reading_from_json({**DOC_READING, "binding": None, "patient": "R0009"})
    assert r.binding == Binding("R0009", "staff", None)


def test_unknown_keys_are_ignored() -> None:
    r = reading_from_json({**DOC_READING, "future_key": {"x": 1}})
    assert r.id == DOC_READING["id"]
    batch = json.loads(batch_of(DOC_READING))
    batch["future_batch_key"] = [1, 2]
    assert decode_batch(json.dumps(batch)).readings == (r,)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"source": "usb"}, "readings[0].source"),
        ({"id": ""}, "readings[0].id"),
        ({"device": {"address": "x"}}, "readings[0].device.id"),
        ({"device": {"id": "d", "calibration": "venous"}}, "readings[0].device.calibration"),
        ({"values": []}, "readings[0].values"),
        ({"values": [{"uuid": BPM, "hex": "zz"}]}, "readings[0].values[0].hex"),
        ({"values": [{"uuid": "nope", "hex": "00"}]}, "readings[0].values[0].uuid"),
        ({"received_at": "2026-03-04T10:02:11"}, "readings[0].received_at"),
        ({"received_at": "yesterday"}, "readings[0].received_at"),
        (
            {"clock": {"device": None, "gateway": "2026-03-04T09:21:00+09:00"}},
            "readings[0].clock.trusted",
        ),
        (
            {
                "clock": {
                    "device": "2026-03-04T09:15:00+09:00",
                    "gateway": "2026-03-04T09:21:00+09:00",
                    "trusted": True,
                }
            },
            "readings[0].clock.device",
        ),
        ({"binding": {"resident": "R1", "method": "guess"}}, "readings[0].binding.method"),
        ({"patient": "R1"}, "readings[0].patient"),  # both binding and patient
        ({"quirks": "beurer"}, "readings[0].quirks"),
        ({"source": "mqtt", "payload": None}, "readings[0].payload"),
    ],
)
def test_bad_readings_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(WireError) as info:
        decode_batch(batch_of({**DOC_READING, **change}))
    assert info.value.field == field


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (batch_of(DOC_READING, schema=2), "schema"),
        (json.dumps({"schema": True, "readings": []}).encode(), "schema"),
        (b"not json", ""),
        (b"[]", ""),
        (
            json.dumps(
                {"schema": 1, "gateway": "g", "centre": "c", "sent_at": "2026-03-04T10:00:00+09:00"}
            ).encode(),
            "readings",
        ),
        (
            json.dumps(
                {
                    "schema": 1,
                    "gateway": "g",
                    "centre": "c",
                    "sent_at": "2026-03-04T10:00:00",
                    "readings": [],
                }
            ).encode(),
            "sent_at",
        ),
    ],
)
def test_bad_batches_name_the_field(data: bytes, field: str) -> None:
    with pytest.raises(WireError) as info:
        decode_batch(data)
    assert info.value.field == field


def test_partial_decoding_sets_bad_readings_aside() -> None:
    bad = {**DOC_READING, "source": "usb"}
    batch, rejected = decode_batch_partial(batch_of(DOC_READING, bad, DOC_READING))
    assert len(batch.readings) == 2
    (r,) = rejected
    assert r.index == 1
    assert r.raw == bad
    assert r.error.field == "readings[1].source"


def test_ack_round_trip_and_rejections() -> None:
    assert decode_ack(encode_ack("yaksu-gw-1", ["a", "b"])) == ("a", "b")
    for bad in (
        b'{"schema": 2, "gateway": "g", "ids": []}',
        b'{"schema": 1, "gateway": "g", "ids": [1]}',
    ):
        with pytest.raises(WireError):
            decode_ack(bad)


def test_topics() -> None:
    assert wire.readings_topic("daon", "yaksu-gw-1") == "daon/gw/yaksu-gw-1/readings"
    assert wire.ack_topic("daon/", "yaksu-gw-1") == "daon/gw/yaksu-gw-1/ack"
    assert wire.heartbeat_topic("daon", "g") == "daon/gw/g/heartbeat"
    topic = wire.station_topic("daon", "yaksu", "station-1", "kiosk-bp")
    assert topic == "daon/st/yaksu/station-1/dev/kiosk-bp"
    assert wire.parse_station_topic("daon", topic) == ("yaksu", "station-1", "kiosk-bp")
    checkin = wire.station_checkin_topic("daon", "yaksu", "station-1")
    assert wire.parse_station_topic("daon", checkin) == ("yaksu", "station-1", None)
    assert wire.station_subscription("daon", "yaksu") == (
        "daon/st/yaksu/+/dev/+",
        "daon/st/yaksu/+/checkin",
    )
    for bad in ("a/b", "+", "#", ""):
        with pytest.raises(WireError):
            wire.readings_topic("daon", bad)
    with pytest.raises(WireError):
        wire.parse_station_topic("daon", "daon/gw/x/readings")


def test_decoded_decimals_are_written_as_numbers() -> None:
    r = replace(reading_from_json(DOC_READING), decoded={"systolic": Decimal("128")})
    batch = WireBatch(1, "g", "c", datetime(2026, 3, 4, tzinfo=KST), (r,))
    assert json.loads(encode_batch(batch))["readings"][0]["decoded"] == {"systolic": 128}


# --- round trip over generated readings ----------------------------------------------------------

texts = st.text(min_size=1, max_size=12)
aware_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(KST)
)
naive_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))
uuids = st.sampled_from(
    [BPM, "00002a18-0000-1000-8000-00805f9b34fb", "233bf001-5a34-1b6d-975c-000d5690abe4"]
)


@st.composite
def readings(draw: st.DrawFn) -> WireReading:
    source = draw(st.sampled_from(["ble", "mqtt", "manual"]))
    values = (
        tuple(
            draw(
                st.lists(
                    st.builds(CharacteristicValue, uuids, st.binary(max_size=20)),
                    min_size=1,
                    max_size=3,
                )
            )
        )
        if source == "ble"
        else ()
    )
    payload = None if source == "ble" else {"schema": 1, "device_id": draw(texts)}
    return WireReading(
        draw(texts),
        source,
        draw(st.none() | texts),
        DeviceInfo(
            draw(texts),
            draw(st.none() | texts),
            draw(st.none() | texts),
            draw(st.none() | texts),
            draw(st.none() | texts),
            draw(st.none() | texts),
            draw(st.sampled_from([None, "plasma", "whole_blood"])),
        ),
        values,
        payload,
        draw(st.none() | st.just({"systolic": 120, "status": ["irregular_pulse"]})),
        tuple(
            draw(st.lists(st.sampled_from(["isens_month_13", "map_zero_not_computed"]), max_size=2))
        ),
        draw(aware_times),
        draw(
            st.none()
            | st.builds(
                ClockSample,
                st.none() | naive_times,
                aware_times,
                st.none() | st.floats(-1e6, 1e6),
                st.booleans(),
            )
        ),
        draw(
            st.none()
            | st.builds(
                Binding,
                texts,
                st.sampled_from(["check-in", "registry", "staff"]),
                st.none() | texts,
            )
        ),
    )


@settings(max_examples=40)
@given(st.lists(readings(), max_size=3), aware_times)
def test_encode_then_decode_batch_is_identity(items: list[WireReading], sent_at: datetime) -> None:
    batch = WireBatch(1, "yaksu-gw-1", "yaksu", sent_at, tuple(items))
    assert decode_batch(encode_batch(batch)) == batch
