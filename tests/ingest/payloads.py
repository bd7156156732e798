"""Characteristic values for the ingest tests, written byte by byte from the specs.

Each constant says where its layout and values come from (ble-profiles.md sections, HL7 PHD
FLOATS.md); none is produced by our encoders, so a decoder or mapping bug cannot hide behind
a matching encoder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

KST = timezone(timedelta(hours=9))

BPM = "00002a35-0000-1000-8000-00805f9b34fb"
GLUCOSE = "00002a18-0000-1000-8000-00805f9b34fb"
GLUCOSE_CONTEXT = "00002a34-0000-1000-8000-00805f9b34fb"
WEIGHT = "00002a9d-0000-1000-8000-00805f9b34fb"
BODY_COMPOSITION = "00002a9c-0000-1000-8000-00805f9b34fb"
TEMPERATURE = "00002a1c-0000-1000-8000-00805f9b34fb"
CUFF = "00002a36-0000-1000-8000-00805f9b34fb"


def date_time(t: datetime) -> str:
    """Date Time (ble-profiles.md §1.3): year uint16 LE, month, day, hours, minutes, seconds."""
    return (
        t.year.to_bytes(2, "little") + bytes([t.month, t.day, t.hour, t.minute, t.second])
    ).hex()


def bp(
    t: datetime,
    *,
    systolic: str = "7800",
    diastolic: str = "5000",
    mean: str = "5d00",
    pulse: str = "4800",
    status: str | None = "0500",
) -> str:
    """0x2A35 (§3.1): flags 0x06 time stamp + pulse (+ 0x10 status); SFLOATs little-endian.

    Defaults: 120/80/93 mmHg (0x0078, 0x0050, 0x005D: exponent 0), pulse 72 /min (0x0048),
    status 0x0005 = bit 0 body movement + bit 2 irregular pulse.
    """
    flags = 0x06 | (0x10 if status is not None else 0)
    return f"{flags:02x}{systolic}{diastolic}{mean}{date_time(t)}{pulse}{status or ''}"


def bp_kpa(t: datetime) -> str:
    """0x2A35 in kPa (flags bit 0): 16.0 / 10.7 / 12.4 kPa = SFLOAT 0xF0A0, 0xF06B, 0xF07C.

    1 kPa = 7.50062 mmHg (mapping table): 120.0099 → 120, 80.2566 → 80, 93.0077 → 93 mmHg.
    """
    return f"03a0f06bf07cf0{date_time(t)}"


def bp_error(t: datetime) -> str:
    """A cuff that displayed "Err": systolic, diastolic, MAP = NaN 0x07FF (derdilla #80)."""
    return f"02ff07ff07ff07{date_time(t)}"


def glucose(
    t: datetime,
    sequence: int = 1,
    *,
    concentration: str = "69b0",
    type_location: int = 0x12,
    context: bool = False,
) -> str:
    """0x2A18 (§4.1): flags 0x02 concentration kg/L (+0x10 context follows), sequence, base time.

    0xB069 = 105 x 10^-5 kg/L = 105 mg/dL (§4.1 example); 0x12 = location 1 finger (high
    nibble), type 2 capillary plasma (low nibble).
    """
    flags = 0x02 | (0x10 if context else 0)
    return (
        f"{flags:02x}{sequence.to_bytes(2, 'little').hex()}{date_time(t)}{concentration}"
        f"{type_location:02x}"
    )


def glucose_context(sequence: int = 1, meal: int = 2) -> str:
    """0x2A34 (§4.2): flags 0x02 meal present, the measurement's sequence number, meal code."""
    return f"02{sequence.to_bytes(2, 'little').hex()}{meal:02x}"


def weight(t: datetime) -> str:
    """0x2A9D (§5.1): flags 0x02 time stamp; 70.00 kg = 14000 x 0.005 = 0x36B0."""
    return f"02b036{date_time(t)}"


def body_composition(t: datetime) -> str:
    """0x2A9C (§5.2): flags 0x0C02 = time stamp + weight + height; body fat 25.0 % (250).

    Weight 70.00 kg (14000 x 0.005, 0x36B0), height 1.750 m (1750 x 0.001, 0x06D6): the service
    computes BMI 70 / 1.75² = 22.857… → 22.9 kg/m2.
    """
    return f"020cfa00{date_time(t)}b036d606"


def temperature() -> str:
    """0x2A1C: flags 0x00 (Celsius, no time), FLOAT 0xFE000EB0 = 3760 x 10^-2 = 37.60 Cel
    (ble-profiles.md §1.2, the Nordic test vector); precision kept: 37.60, not 37.6."""
    return "00b00e00fe"


def reading(
    reading_id: str,
    values: Sequence[tuple[str, str]],
    *,
    device: str = "C4:7C:8D:6A:1B:22",
    resident: str | None = "R0001234",
    method: str = "check-in",
    received_at: datetime | None = None,
    clock: dict[str, Any] | None = None,
    station: str | None = "yaksu-station-1",
) -> dict[str, Any]:
    """A devices.wire reading object (schema 1)."""
    return {
        "id": reading_id,
        "source": "ble",
        "station": station,
        "device": {"id": device, "address": device if ":" in device else None},
        "values": [{"uuid": u, "hex": h} for u, h in values],
        "received_at": (received_at or datetime.now(KST)).isoformat(),
        "clock": clock,
        "binding": None
        if resident is None
        else {"resident": resident, "method": method, "session": f"session-{reading_id}"},
    }


def batch(
    readings: Sequence[dict[str, Any]], gateway: str = "yaksu-gw-1", centre: str = "yaksu"
) -> bytes:
    return json.dumps(
        {
            "schema": 1,
            "gateway": gateway,
            "centre": centre,
            "sent_at": datetime.now(KST).isoformat(),
            "readings": list(readings),
        }
    ).encode()
