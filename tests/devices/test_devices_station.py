"""The MQTT station payload (docs/station-payload.md): examples, precision, field-naming errors."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from devices.errors import StationPayloadError
from devices.model import Component, Kind, Measurement, Special
from devices.station import (
    encode_station_event,
    encode_station_payload,
    parse_station_event,
    parse_station_payload,
)

# The blood-pressure example of docs/station-payload.md.
BP_EXAMPLE = b"""{
  "schema": 1,
  "type": "measurement",
  "device_id": "yaksu-kiosk-1-bp",
  "station": "yaksu-station-1",
  "message_id": "k1-000123",
  "checkin": "9410123456789012",
  "device_time": "2026-03-04T10:01:55",
  "measurements": [
    {"type": "blood-pressure",
     "values": [{"code": "systolic", "value": 128, "unit": "mm[Hg]"},
                {"code": "diastolic", "value": 82, "unit": "mm[Hg]"},
                {"code": "pulse", "value": 71, "unit": "/min"}],
     "status": ["irregular_pulse"]}
  ]
}"""

# The body-composition example of docs/station-payload.md (an InBody-like kiosk).
BCS_EXAMPLE = b"""{
  "schema": 1, "type": "measurement", "device_id": "pildong-bia-1",
  "checkin": null, "device_time": "2026-03-04T01:10:00Z",
  "measurements": [
    {"type": "body-composition",
     "values": [{"code": "weight", "value": 61.40, "unit": "kg"},
                {"code": "height", "value": 158.0, "unit": "cm"},
                {"code": "body_fat", "value": 31.5, "unit": "%"},
                {"code": "impedance", "value": "NaN", "unit": "Ohm"}],
     "user_index": 3,
     "context": {"setting": "centre"}}
  ]
}"""


def test_blood_pressure_example() -> None:
    msg = parse_station_payload(BP_EXAMPLE)
    assert (msg.device_id, msg.station, msg.checkin, msg.message_id) == (
        "yaksu-kiosk-1-bp",
        "yaksu-station-1",
        "9410123456789012",
        "k1-000123",
    )
    assert msg.device_time == datetime(2026, 3, 4, 10, 1, 55)
    (m,) = msg.measurements
    assert m.kind is Kind.BLOOD_PRESSURE
    assert [(c.code, c.value, c.unit) for c in m.components] == [
        ("systolic", Decimal(128), "mm[Hg]"),
        ("diastolic", Decimal(82), "mm[Hg]"),
        ("pulse", Decimal(71), "/min"),
    ]
    assert m.device_time == datetime(2026, 3, 4, 10, 1, 55)
    assert m.status == ("irregular_pulse",)
    assert m.raw == BP_EXAMPLE


def test_body_composition_example_keeps_precision_and_converts_utc() -> None:
    msg = parse_station_payload(BCS_EXAMPLE)
    # 01:10 UTC is 10:10 in Seoul (UTC+9, no DST).
    assert msg.device_time == datetime(2026, 3, 4, 10, 10)
    (m,) = msg.measurements
    weight = m.component("weight")
    assert weight is not None
    assert str(weight.value) == "61.40"
    impedance = m.component("impedance")
    assert impedance == Component("impedance", None, "Ohm", Special.NAN)
    assert m.user_index == 3
    assert m.context == (("setting", "centre"),)
    assert msg.checkin is None


def test_mapping_input_is_accepted() -> None:
    msg = parse_station_payload(json.loads(BP_EXAMPLE))
    assert msg.measurements[0].component("systolic") is not None


def test_measurement_time_overrides_device_time() -> None:
    obj = json.loads(BP_EXAMPLE)
    obj["measurements"][0]["time"] = "2026-03-04T10:00:00+09:00"
    assert parse_station_payload(obj).measurements[0].device_time == datetime(2026, 3, 4, 10, 0)


def changed(path: list[Any], value: Any, *, delete: bool = False) -> dict[str, Any]:
    obj: Any = json.loads(BP_EXAMPLE)
    target = obj
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return dict(obj)


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (changed(["schema"], 2), "schema"),
        (changed(["type"], "checkin"), "type"),
        (changed(["device_id"], ""), "device_id"),
        (changed(["device_id"], None, delete=True), "device_id"),
        (changed(["device_time"], "yesterday"), "device_time"),
        (changed(["checkin"], 9410), "checkin"),
        (changed(["measurements"], []), "measurements"),
        (changed(["measurements", 0, "type"], "ketone"), "measurements[0].type"),
        (changed(["measurements", 0, "values"], []), "measurements[0].values"),
        (
            changed(["measurements", 0, "values", 1, "unit"], "mmHg"),
            "measurements[0].values[1].unit",
        ),
        (
            changed(["measurements", 0, "values", 1, "code"], "glucose"),
            "measurements[0].values[1].code",
        ),
        (
            changed(["measurements", 0, "values", 1, "value"], "high"),
            "measurements[0].values[1].value",
        ),
        (changed(["measurements", 0, "values", 1, "value"], -3), "measurements[0].values[1].value"),
        (
            changed(["measurements", 0, "values", 1, "value"], True),
            "measurements[0].values[1].value",
        ),
        (changed(["measurements", 0, "values", 0], "systolic"), "measurements[0].values[0]"),
        (
            changed(
                ["measurements", 0, "values", 1], {"code": "systolic", "value": 1, "unit": "mm[Hg]"}
            ),
            "measurements[0].values[1].code",
        ),
        (changed(["measurements", 0, "values", 1, "unit"], "kPa"), "measurements[0].values"),
        (changed(["measurements", 0, "status"], ["fainted"]), "measurements[0].status[0]"),
        (changed(["measurements", 0, "user_index"], 256), "measurements[0].user_index"),
        (changed(["measurements", 0, "context"], {"mood": "good"}), "measurements[0].context.mood"),
        (changed(["measurements", 0, "time"], "2026-13-01T00:00:00"), "measurements[0].time"),
    ],
)
def test_errors_name_the_offending_field(obj: dict[str, Any], field: str) -> None:
    with pytest.raises(StationPayloadError) as info:
        parse_station_payload(obj)
    assert info.value.field == field


def test_missing_required_component() -> None:
    obj = changed(
        ["measurements", 0, "values"], [{"code": "systolic", "value": 120, "unit": "mm[Hg]"}]
    )
    with pytest.raises(StationPayloadError, match="diastolic") as info:
        parse_station_payload(obj)
    assert info.value.field == "measurements[0].values"


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", "\u00ff".encode("latin-1")])
def test_not_json(data: bytes) -> None:
    with pytest.raises(StationPayloadError):
        parse_station_payload(data)


def test_encode_then_parse() -> None:
    glucose = Measurement(
        Kind.GLUCOSE,
        (Component("glucose", Decimal("105"), "mg/dL"),),
        datetime(2026, 3, 4, 9, 30),
        status=("control_solution",),
        context=(("meal", "fasting"),),
    )
    temperature = Measurement(
        Kind.BODY_TEMPERATURE, (Component("temperature", Decimal("36.50"), "Cel"),), None
    )
    raw = encode_station_payload(
        "hwang-kiosk-2", [glucose, temperature], station="hwang-1", checkin="9410000000000001"
    )
    msg = parse_station_payload(raw)
    assert [m.kind for m in msg.measurements] == [Kind.GLUCOSE, Kind.BODY_TEMPERATURE]
    assert msg.measurements[0].components == glucose.components
    assert msg.measurements[0].context == glucose.context
    assert msg.measurements[0].status == glucose.status
    assert str(msg.measurements[1].components[0].value) == "36.50"
    assert msg.checkin == "9410000000000001"


def test_checkin_event() -> None:
    raw = (
        b'{"schema":1,"type":"checkin","station":"yaksu-station-1",'
        b'"card":"9410123456789012","at":"2026-03-04T10:01:02+09:00"}'
    )
    event = parse_station_event(raw)
    assert (event.station, event.card) == ("yaksu-station-1", "9410123456789012")
    assert event.at == datetime(2026, 3, 4, 10, 1, 2, tzinfo=timezone(timedelta(hours=9)))
    assert parse_station_event(encode_station_event(event.station, event.card, event.at)) == event
    naive = raw.replace(b"+09:00", b"")
    with pytest.raises(StationPayloadError) as info:
        parse_station_event(naive)
    assert info.value.field == "at"
    with pytest.raises(StationPayloadError) as info:
        parse_station_event(BP_EXAMPLE)
    assert info.value.field == "type"


def test_every_example_in_the_docs_page_is_valid() -> None:
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parents[2] / "docs" / "station-payload.md"
    blocks = re.findall(r"```json\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 4
    for block in blocks:
        if json.loads(block)["type"] == "checkin":
            parse_station_event(block)
        else:
            parse_station_payload(block)
    assert BP_EXAMPLE.decode() in page.read_text(encoding="utf-8")
