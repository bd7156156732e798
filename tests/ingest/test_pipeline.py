"""The pipeline never crashes on bad input: every reading is stored, queued or dead-lettered."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from ingest.errors import Reason
from ingest.pipeline import gateway_of_topic, process_message
from ingest.store.registry import DeviceEntry, GatewayEntry, RegistrySnapshot
from tests.ingest import payloads as p

TOPIC = "daon/gw/yaksu-gw-1/readings"
NOW = datetime.now(p.KST)
MEASURED = (NOW - timedelta(hours=1)).replace(tzinfo=None, microsecond=0)
DEVICE = "C4:7C:8D:6A:1B:22"
HOME_SCALE = "D0:00:00:00:00:01"
FAMILY_SCALE = "D0:00:00:00:00:02"


def registry() -> RegistrySnapshot:
    return RegistrySnapshot(
        gateways={"yaksu-gw-1": GatewayEntry("yaksu-gw-1", "yaksu", "station")},
        devices={
            DEVICE: DeviceEntry(DEVICE, "blood-pressure", "yaksu-station-1", None, None, "yaksu"),
            HOME_SCALE: DeviceEntry(HOME_SCALE, "body-weight", None, "R0000007", None, None),
            FAMILY_SCALE: DeviceEntry(FAMILY_SCALE, "body-weight", None, None, None, None),
        },
        residents=frozenset({"R0001234", "R0000007", "R0000008"}),
        slots={FAMILY_SCALE: ((1, NOW - timedelta(days=300), None, "R0000008"),)},
        loaded_at=NOW,
    )


def bp_reading(reading_id: str = "r1", **kw: object) -> dict[str, object]:
    return p.reading(reading_id, [(p.BPM, p.bp(MEASURED))], **kw)  # type: ignore[arg-type]


def test_topic_names_the_gateway() -> None:
    assert gateway_of_topic("daon/gw/yaksu-gw-1/readings") == "yaksu-gw-1"
    assert gateway_of_topic("x/y/daon/gw/g/readings") == "g"
    assert gateway_of_topic("daon/gw/g/ack") is None


def test_a_good_batch_becomes_observations_and_acks_every_reading() -> None:
    out = process_message(TOPIC, p.batch([bp_reading("r1"), bp_reading("r2")]), registry())
    assert out.ack_ids == ["r1", "r2"]
    assert out.received == 2
    assert not out.dead
    assert all(r.observations and r.bound is not None for r in out.readings)
    assert out.readings[0].bound.method == "check-in"  # type: ignore[union-attr]
    assert out.readings[0].residents == ("R0001234",)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", Reason.MALFORMED_JSON),
        (b"\xff\xfe", Reason.MALFORMED_JSON),
        (b'{"schema": 2, "gateway": "yaksu-gw-1", "readings": []}', Reason.UNKNOWN_SCHEMA),
        (b'{"schema": 1, "gateway": "yaksu-gw-1"}', Reason.INVALID_MESSAGE),
        (b"[1, 2, 3]", Reason.INVALID_MESSAGE),
    ],
)
def test_unreadable_messages_are_one_dead_letter_with_their_bytes(
    payload: bytes, reason: Reason
) -> None:
    out = process_message(TOPIC, payload, registry())
    assert [d.reason for d in out.dead] == [reason]
    assert out.dead[0].raw == payload
    assert out.dead[0].gateway_id == "yaksu-gw-1"
    assert out.dead_readings == 1
    assert out.ack_ids == []


def test_an_unknown_gateway_is_dead_lettered_whole_and_still_acknowledged() -> None:
    payload = p.batch([bp_reading()], gateway="nowhere-gw")
    out = process_message("daon/gw/nowhere-gw/readings", payload, registry())
    assert [d.reason for d in out.dead] == [Reason.UNKNOWN_GATEWAY]
    assert out.ack_ids == ["r1"]  # kept in dead_letter: the gateway may delete it
    assert out.dead_readings == 1


def test_a_gateway_publishing_as_another_is_refused() -> None:
    out = process_message("daon/gw/other-gw/readings", p.batch([bp_reading()]), registry())
    assert [d.reason for d in out.dead] == [Reason.INVALID_MESSAGE]


def test_one_bad_reading_does_not_spoil_the_batch() -> None:
    good = bp_reading("good")
    bad = bp_reading("bad")
    bad["received_at"] = "yesterday"
    out = process_message(TOPIC, p.batch([good, bad]), registry())
    assert [r.reading_id for r in out.readings] == ["good"]
    assert [(d.reason, d.reading_id) for d in out.dead] == [(Reason.INVALID_MESSAGE, "bad")]
    assert json.loads(out.dead[0].raw)["received_at"] == "yesterday"
    assert sorted(out.ack_ids) == ["bad", "good"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"device": {"id": "AA:BB:CC:DD:EE:FF"}}, Reason.UNKNOWN_DEVICE),
        ({"values": [{"uuid": p.BPM, "hex": "16"}]}, Reason.DECODE_ERROR),
        ({"values": [{"uuid": "2a2b", "hex": "e90703040a000001000000"}]}, Reason.DECODE_ERROR),
        ({"binding": {"resident": "R9999999", "method": "check-in"}}, Reason.UNKNOWN_RESIDENT),
        (
            {"values": [{"uuid": p.BPM, "hex": p.bp(MEASURED, systolic="0000")}]},
            Reason.IMPOSSIBLE_VALUE,
        ),
        ({"values": [{"uuid": p.CUFF, "hex": "007800ff07ff07"}]}, Reason.NOT_A_RESULT),
    ],
)
def test_readings_that_cannot_be_mapped_are_dead_letters_with_a_reason(
    change: dict[str, object], reason: Reason
) -> None:
    reading = bp_reading()
    reading.update(change)
    out = process_message(TOPIC, p.batch([reading]), registry())
    [result] = out.readings
    assert result.dead is not None
    assert result.dead.reason is reason
    assert result.dead.reading_id == "r1"
    assert result.observations == []
    assert json.loads(result.dead.raw)["id"] == "r1"  # the reading as received
    assert out.ack_ids == ["r1"]


def test_a_reading_without_binding_waits_for_staff() -> None:
    out = process_message(TOPIC, p.batch([bp_reading(resident=None)]), registry())
    [result] = out.readings
    assert result.unbound is not None
    assert result.unbound.reason is Reason.NO_BINDING
    assert result.observations == []
    assert result.dead is None
    assert json.loads(result.reading_json or "")["id"] == "r1"


def test_a_future_reading_waits_for_staff_with_the_suggested_resident() -> None:
    future = (NOW + timedelta(days=2)).replace(tzinfo=None, microsecond=0)
    reading = p.reading("r1", [(p.BPM, p.bp(future))])
    out = process_message(TOPIC, p.batch([reading]), registry())
    [result] = out.readings
    assert result.unbound is not None
    assert result.unbound.reason is Reason.IMPLAUSIBLE_TIME
    assert result.unbound.suggested_resident == "R0001234"


def test_a_personal_device_binds_to_its_owner() -> None:
    reading = p.reading("w1", [(p.WEIGHT, p.weight(MEASURED))], device=HOME_SCALE, resident=None)
    [result] = process_message(TOPIC, p.batch([reading]), registry()).readings
    assert result.bound is not None
    assert (result.bound.resident, result.bound.method) == ("R0000007", "registry")
    assert result.observations[0].resident_id == "R0000007"
    assert json.loads(result.observations[0].context or "{}")["setting"] == "home"


def test_a_multi_user_device_binds_by_user_slot_and_never_guesses() -> None:
    # WSS flags 0x06: time stamp + user ID; user 1 is mapped, user 2 is not
    mapped = p.reading(
        "w1", [(p.WEIGHT, f"06b036{p.date_time(MEASURED)}01")], device=FAMILY_SCALE, resident=None
    )
    unmapped = p.reading(
        "w2", [(p.WEIGHT, f"06b036{p.date_time(MEASURED)}02")], device=FAMILY_SCALE, resident=None
    )
    first, second = process_message(TOPIC, p.batch([mapped, unmapped]), registry()).readings
    assert first.observations[0].resident_id == "R0000008"
    assert second.unbound is not None
    assert second.unbound.reason is Reason.UNKNOWN_USER


def test_the_same_reading_twice_gives_the_same_identifiers() -> None:
    out = process_message(TOPIC, p.batch([bp_reading("a"), bp_reading("b")]), registry())
    first, second = out.readings
    assert [o.identifier for o in first.observations] == [o.identifier for o in second.observations]


def test_a_gateway_dead_letter_is_kept_centrally_with_its_reason() -> None:
    # gateway/pipeline.py forwards what it could not use as a reading with decoded.dead_letter
    reading = bp_reading()
    reading["decoded"] = {"dead_letter": "systolic 900 mmHg is not a human value"}
    [result] = process_message(TOPIC, p.batch([reading]), registry()).readings
    assert result.dead is not None
    assert result.dead.reason is Reason.GATEWAY_DEAD_LETTER
    assert "900 mmHg" in result.dead.detail
    assert json.loads(result.dead.raw)["values"] == reading["values"]


def test_a_station_payload_keeps_the_precision_it_was_sent_with() -> None:
    # devices/station.py schema 1: a kiosk thermometer; 36.50 must stay 36.50 (cli-fhir.md)
    reading = {
        "id": "k1",
        "source": "mqtt",
        "station": "yaksu-station-1",
        "device": {"id": DEVICE},
        "payload": {
            "schema": 1,
            "type": "measurement",
            "device_id": DEVICE,
            "device_time": MEASURED.isoformat(),
            "measurements": [
                {
                    "type": "body-temperature",
                    "values": [{"code": "temperature", "value": 36.50, "unit": "Cel"}],
                }
            ],
        },
        "received_at": NOW.isoformat(),
        "binding": {"resident": "R0001234", "method": "check-in"},
    }
    body = p.batch([reading]).replace(b"36.5,", b"36.50,")
    assert b'"value": 36.50,' in body
    [result] = process_message(TOPIC, body, registry()).readings
    assert result.dead is None, result.dead
    assert '"value":36.50,' in result.observations[0].resource


def stations_registry() -> RegistrySnapshot:
    """The registry with the stations of two centres and a 필동 station's blood-pressure meter."""
    base = registry()
    return replace(
        base,
        gateways={**base.gateways, "pil-gw-1": GatewayEntry("pil-gw-1", "pil", "station")},
        devices={
            **base.devices,
            PIL_DEVICE: DeviceEntry(
                PIL_DEVICE, "blood-pressure", "pil-station-1", None, None, "pil"
            ),
        },
        stations={"yaksu-station-1": "yaksu", "pil-station-1": "pil"},
    )


PIL_DEVICE = "C4:7C:8D:6A:1B:99"


def test_a_gateway_naming_another_centres_station_is_dead_lettered() -> None:
    """13.5: a 약수 gateway's message naming pil-station-1 was stored with its binding."""
    out = process_message(
        TOPIC, p.batch([bp_reading("r1", station="pil-station-1")]), stations_registry()
    )
    [result] = out.readings
    assert result.dead is not None
    assert result.dead.reason is Reason.FOREIGN_CENTRE
    assert "pil-station-1" in result.dead.detail
    assert json.loads(result.dead.raw)["station"] == "pil-station-1"  # kept as received
    assert result.observations == []
    assert out.ack_ids == ["r1"]  # kept with its reason; the gateway may delete its copy


def test_a_gateway_forwarding_another_centres_station_device_is_dead_lettered() -> None:
    reading = bp_reading("r1", device=PIL_DEVICE, station=None)
    out = process_message(TOPIC, p.batch([reading]), stations_registry())
    [result] = out.readings
    assert result.dead is not None
    assert result.dead.reason is Reason.FOREIGN_CENTRE
    assert PIL_DEVICE in result.dead.detail
    assert result.observations == []


def test_a_gateway_speaking_for_another_centre_is_dead_lettered_whole() -> None:
    out = process_message(TOPIC, p.batch([bp_reading()], centre="pil"), stations_registry())
    assert [d.reason for d in out.dead] == [Reason.FOREIGN_CENTRE]
    assert out.dead_readings == 1
    assert not out.readings


def test_its_own_station_still_binds() -> None:
    out = process_message(TOPIC, p.batch([bp_reading()]), stations_registry())
    assert not out.dead
    assert out.readings[0].residents == ("R0001234",)
