"""Decoding speed on this machine: payloads per second per characteristic, one core.

A station decodes little, but a national server re-decoding raw payloads for audit decodes a
lot; the aim is at least 100,000 blood-pressure measurements per second on one core. Wire
batch decoding (ingest's hot path, aim 50,000 readings per second) is measured too.

    .venv/bin/python bench/decode.py [--seconds 1.0]

The last line is JSON with ``bp_per_s`` (strict 0x2A35 decoder) and the other figures.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from devices.decode import decode_value
from devices.gatt import (
    blood_pressure,
    body_composition,
    cgm,
    glucose,
    racp,
    thermometer,
    weight_scale,
)
from devices.records import decode_record
from devices.wire import (
    Binding,
    CharacteristicValue,
    ClockSample,
    DeviceInfo,
    WireBatch,
    WireReading,
    decode_batch,
    encode_batch,
)

BP_AIM = 100_000
WIRE_AIM = 50_000

# Payloads from the test vectors (tests/devices): virtual cuff reading 1, a GLS record,
# 70 kg, a body-composition packet, Nordic's CGM record, Nordic's thermometer record.
BP = bytes.fromhex("0e800052006100e807050e071e00480001")
GLUCOSE = bytes.fromhex("1B0100E307021B0B0A1EFBFF69B0120501")
WEIGHT = bytes.fromhex("0EB036E8070A0108000002F500D606")
BCS = bytes.fromhex("C01FFA00102728235 81B8813C832A406".replace(" ", ""))
CGM = bytes.fromhex("0FE3D2E405000214FF02F0E5F38E3F")
TEMPERATURE = bytes.fromhex("06B00E00FEDC070C050B321B04")
RACP = bytes.fromhex("0103010A00")

KST = timezone(timedelta(hours=9))


def rate(work: Callable[[], object], seconds: float, batch: int = 1) -> float:
    """Calls per second of ``work`` (× ``batch`` items per call), best of three runs."""
    best = 0.0
    for _ in range(3):
        count = 0
        start = time.perf_counter()
        deadline = start + seconds / 3
        while True:
            for _ in range(100):
                work()
            count += 100
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, count * batch / (now - start))
    return best


def wire_batch(size: int) -> bytes:
    reading = WireReading(
        "01J8Z5X1000000000000000000",
        "ble",
        "yaksu-station-1",
        DeviceInfo(
            "C4:7C:8D:6A:1B:22",
            "C4:7C:8D:6A:1B:22",
            "A&D Medical",
            "UA-651BLE",
            "5120034871",
            "1.2",
            None,
        ),
        (CharacteristicValue("00002a35-0000-1000-8000-00805f9b34fb", BP),),
        None,
        None,
        (),
        datetime(2026, 3, 4, 10, 2, 11, tzinfo=KST),
        ClockSample(
            datetime(2026, 3, 4, 9, 15), datetime(2026, 3, 4, 9, 21, tzinfo=KST), -360.0, True
        ),
        Binding("R0001234", "check-in", "s-77"),
    )
    batch = WireBatch(
        1, "yaksu-gw-1", "yaksu", datetime(2026, 3, 4, 10, 2, 12, tzinfo=KST), (reading,) * size
    )
    return encode_batch(batch)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=1.0, help="time per figure (default 1)")
    seconds = parser.parse_args().seconds

    figures: dict[str, float] = {
        "bp_per_s": rate(lambda: blood_pressure.decode_measurement(BP), seconds),
        "glucose_per_s": rate(lambda: glucose.decode_measurement(GLUCOSE), seconds),
        "weight_per_s": rate(lambda: weight_scale.decode_measurement(WEIGHT), seconds),
        "body_composition_per_s": rate(lambda: body_composition.decode_measurement(BCS), seconds),
        "cgm_per_s": rate(lambda: cgm.decode_measurement(CGM), seconds),
        "thermometer_per_s": rate(lambda: thermometer.decode_measurement(TEMPERATURE), seconds),
        "racp_per_s": rate(lambda: racp.decode_racp(RACP), seconds),
        "bp_decode_value_per_s": rate(lambda: decode_value("2a35", BP), seconds),
        "bp_decode_record_per_s": rate(lambda: decode_record([("2a35", BP)]), seconds),
    }
    batch = wire_batch(50)
    figures["wire_readings_per_s"] = rate(lambda: decode_batch(batch), seconds, batch=50)

    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:>12,.0f}")
    bp_ratio = figures["bp_per_s"] / BP_AIM
    wire_ratio = figures["wire_readings_per_s"] / WIRE_AIM
    print(f"blood pressure: {bp_ratio:.2f} × the {BP_AIM:,}/s aim")
    print(f"wire batches:   {wire_ratio:.2f} × the {WIRE_AIM:,}/s aim")
    summary: dict[str, float] = {k: round(v) for k, v in figures.items()}
    summary["bp_ratio_to_aim"] = round(bp_ratio, 3)
    summary["wire_ratio_to_aim"] = round(wire_ratio, 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
