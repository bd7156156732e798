"""One captured record → wire reading: decode, place in time, bind, or dead-letter with the raw hex.

The payloads are the blood-pressure captures described in virtual-bluez.md (reading 1:
flags 0x0E, 128/82 mmHg, MAP 97, 2024-05-14 07:30:00, pulse 72, user 1).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from devices.uuids import BLOOD_PRESSURE_MEASUREMENT
from devices.wire import decode_batch, reading_from_json
from gateway.binding import Binder, CheckIn, Method
from gateway.clock import check_clock
from gateway.config import ClockPolicy, DeviceConfig
from gateway.outbox import Pending
from gateway.pipeline import Prepared, device_info, prepare_ble_record

KST = timezone(timedelta(hours=9))
STATION = "yaksu-station-1"
CUFF = DeviceConfig(address="C4:7C:8D:6A:1B:22", model="UA-651BLE", id="cuff-1", station=STATION)
# virtual-bluez.md, reading 1: 0e | 8000 | 5200 | 6100 | e807 05 0e 07 1e 00 | 4800 | 01
READING_1 = bytes.fromhex("0e800052006100e807050e071e00480001")
MEASURED = datetime(2024, 5, 14, 7, 30, tzinfo=KST)
POLICY = ClockPolicy()


def prepare(data: bytes, binder: Binder, *, received: datetime | None = None) -> Prepared:
    received = received or MEASURED + timedelta(minutes=2)
    clock = check_clock(datetime(2024, 5, 14, 7, 32), received, POLICY)  # in sync
    return prepare_ble_record(
        [(BLOOD_PRESSURE_MEASUREMENT, data)],
        device=CUFF,
        info=device_info(CUFF, CUFF.id, manufacturer="A&D Medical", serial="5120034871"),
        quirks=(),
        clock=clock,
        received_at=received,
        binder=binder,
        policy=POLICY,
        gateway_id="yaksu-gw-1",
    )


def binder_with_session(opened: datetime) -> Binder:
    b = Binder(stations=(STATION,), window_s=600, cards={"0001234": "R0001234"})
    b.check_in(CheckIn(STATION, opened, Method.CHECK_IN, card="0001234"))
    return b


def test_record_in_a_session_is_bound_and_keeps_its_raw_bytes() -> None:
    p = prepare(READING_1, binder_with_session(MEASURED - timedelta(minutes=1)))
    assert p.dead_letter is None
    reading = reading_from_json(json.loads(p.entry.body))  # ingest's own decoder accepts it
    assert reading.values[0].data == READING_1
    assert reading.binding is not None
    assert reading.binding.resident == "R0001234"
    assert reading.binding.method == "check-in"
    assert reading.clock is not None
    assert reading.clock.trusted
    assert reading.device.serial == "5120034871"
    assert reading.decoded is not None
    assert reading.decoded["effective_time"] == "2024-05-14T07:30:00+09:00"
    assert reading.decoded["user_index"] == 1


def test_record_outside_a_session_goes_out_unbound_with_the_reason() -> None:
    p = prepare(READING_1, binder_with_session(MEASURED + timedelta(minutes=1)))
    reading = reading_from_json(json.loads(p.entry.body))
    assert reading.binding is None
    assert p.decision is not None
    assert "no check-in session" in p.decision.reason


def test_truncated_payload_is_a_dead_letter_with_raw_hex_and_reason() -> None:
    truncated = READING_1[:9]  # the time stamp the flags announce is cut off
    p = prepare(truncated, binder_with_session(MEASURED))
    assert p.dead_letter is not None
    assert truncated.hex() in p.dead_letter.raw_hex
    assert "DecodeError" in p.dead_letter.reason
    reading = reading_from_json(json.loads(p.entry.body))
    assert reading.values[0].data == truncated  # forwarded: ingest dead-letters it centrally
    assert reading.decoded == {"dead_letter": p.dead_letter.reason}
    assert reading.binding is None


def test_implausible_values_are_dead_letters() -> None:
    # systolic SFLOAT 0x03E7 = 999 mmHg (flags 0x00: no optional fields)
    data = bytes.fromhex("00e703520061 00".replace(" ", ""))
    p = prepare(data, binder_with_session(MEASURED))
    assert p.dead_letter is not None
    assert "implausible systolic 999" in p.dead_letter.reason


def test_batch_payload_is_a_valid_wire_batch() -> None:
    from gateway.config import BrokerConfig, OutboxConfig
    from gateway.config import GatewayConfig as Config
    from gateway.service import Gateway

    config = Config(
        centre="yaksu",
        gateway_id="yaksu-gw-1",
        topic_root="daon",
        central=BrokerConfig(host="h"),
        local=None,
        outbox=OutboxConfig(path=None),  # type: ignore[arg-type]
    )
    gateway = Gateway(config, outbox=None)  # type: ignore[arg-type]
    a = prepare(READING_1, binder_with_session(MEASURED))
    b = prepare(READING_1[:5], binder_with_session(MEASURED))
    batch = decode_batch(
        gateway.batch_payload(
            [Pending(a.entry.id, a.entry.body, False), Pending(b.entry.id, b.entry.body, True)]
        )
    )
    assert (batch.gateway, batch.centre) == ("yaksu-gw-1", "yaksu")
    assert [r.id for r in batch.readings] == [a.entry.id, b.entry.id]
