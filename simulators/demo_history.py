"""The demo's past: the demo residents' last 90 days, as the gateways would have sent them.

``daon demo`` starts on an empty database; without a past, every chart is one dot and no rule
that needs a series (home means, trends, adherence) can fire. This module turns the synthetic
population's readings for the demo residents (:mod:`simulators.population`, same seed, so the
same people) into gateway batches in the wire format (:mod:`devices.wire`); the demo writes them
through ingest's own path (decode, map, store), so the past is stored exactly as live readings
are.

What the residents did, mapped onto the demo's devices:

- blood pressure at a centre and body composition: the centre's kiosk (``<centre>-kiosk-1-*``),
  with a check-in session per visit;
- glucose and weight measured during the centres' opening hours (weekdays 09:00-18:00): the
  kiosk's meter and scale at the resident's centre, as a resident dropping in would;
- home blood pressure of residents who own a cuff in the demo (:attr:`DemoResident.home_devices`):
  that cuff's Blood Pressure Measurement bytes, bound by the registry.

Everything else the population measured at home (residents without a device of theirs in the
demo) is left out, as it would never have reached the system.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from devices.gatt.blood_pressure import BloodPressureMeasurement, encode_measurement
from devices.ieee11073 import DateTime
from devices.model import Component, Kind, Measurement
from simulators.demo_data import DEMO_POPULATION_SIZE, DEMO_SEED, DemoWorld
from simulators.population import generate

SEOUL = ZoneInfo("Asia/Seoul")
HISTORY_DAYS = 90
PER_MESSAGE = 200
BP_UUID = "00002a35-0000-1000-8000-00805f9b34fb"
_KIOSK_SUFFIX = {
    Kind.BLOOD_PRESSURE: "bp",
    Kind.GLUCOSE: "glucose",
    Kind.BODY_WEIGHT: "scale",
    Kind.BODY_COMPOSITION: "bca",
}
_MEAL = {"fasting", "preprandial", "postprandial", "casual", "bedtime"}


@dataclass(frozen=True, slots=True)
class HistoryReading:
    """One past reading, before it is wrapped in a gateway batch."""

    resident: str
    centre: str
    local: dt.datetime  # naive Seoul wall time
    reading: dict[str, Any]  # the wire reading (devices.wire), ready for a batch


def _number(value: Decimal | None) -> int | float:
    """A component's value as a JSON number (kept exact: 62.0 stays 62.0, 120 stays 120)."""
    if value is None:
        raise ValueError("a demo measurement has every value")
    return int(value) if "." not in str(value) else float(value)


def _open(local: dt.datetime) -> bool:
    return local.weekday() < 5 and 9 <= local.hour < 18


def _local(t: np.datetime64) -> dt.datetime:
    utc: dt.datetime = t.astype("datetime64[s]").astype(dt.datetime).replace(tzinfo=dt.UTC)
    return utc.astimezone(SEOUL).replace(tzinfo=None)


def _kiosk(
    resident: str, centre: str, local: dt.datetime, m: Measurement, serial: str
) -> HistoryReading:
    station = f"{centre}-station-1"
    device = f"{centre}-kiosk-1-{_KIOSK_SUFFIX[m.kind]}"
    session = f"hist-{resident}-{local:%Y%m%d}"
    item: dict[str, Any] = {
        "type": m.kind.value,
        "values": [
            {"code": c.code, "value": _number(c.value), "unit": c.unit} for c in m.components
        ],
        "time": local.isoformat(),
    }
    if m.context:
        item["context"] = dict(m.context)
    payload = {  # docs/station-payload.md, as encode_station_payload writes it (tests compare)
        "schema": 1,
        "type": "measurement",
        "device_id": device,
        "station": station,
        "checkin": session,
        "device_time": local.isoformat(),
        "measurements": [item],
    }
    received = local.replace(tzinfo=SEOUL) + dt.timedelta(seconds=20)
    return HistoryReading(
        resident,
        centre,
        local,
        {
            "id": f"hist-{serial}",
            "source": "mqtt",
            "station": station,
            "device": {"id": device, "address": None},
            "payload": payload,
            "received_at": received.isoformat(),
            "binding": {"resident": resident, "method": "check-in", "session": session},
        },
    )


def _home_bp(
    resident: str, centre: str, device: str, local: dt.datetime, sys_: int, dia: int, pulse: int
) -> HistoryReading:
    value = encode_measurement(
        BloodPressureMeasurement(
            systolic=Decimal(sys_),
            diastolic=Decimal(dia),
            mean_arterial_pressure=Decimal(round((sys_ + 2 * dia) / 3)),
            timestamp=DateTime(
                local.year, local.month, local.day, local.hour, local.minute, local.second
            ),
            pulse_rate=Decimal(pulse),
        )
    )
    received = local.replace(tzinfo=SEOUL) + dt.timedelta(hours=1)  # read at the next sync
    return HistoryReading(
        resident,
        centre,
        local,
        {
            "id": f"hist-{device}-{local:%Y%m%d%H%M%S}",
            "source": "ble",
            "station": None,
            "device": {"id": device, "address": device},
            "values": [{"uuid": BP_UUID, "hex": value.hex()}],
            "received_at": received.isoformat(),
            "binding": {"resident": resident, "method": "registry", "session": None},
        },
    )


def history_readings(
    world: DemoWorld, *, end: dt.date, days: int = HISTORY_DAYS
) -> list[HistoryReading]:
    """The demo residents' readings of the ``days`` days up to ``end`` (yesterday, usually)."""
    population = generate(DEMO_SEED, n_residents=DEMO_POPULATION_SIZE, days=days, end=end)
    by_row = {r.population_index: r for r in world.residents}
    cuffs = {d.owner: d.id for d in world.home_devices if d.kind is Kind.BLOOD_PRESSURE and d.owner}
    out: list[HistoryReading] = []

    bp = population.bp
    for i in np.flatnonzero(np.isin(bp.resident, list(by_row))):
        r = by_row[int(bp.resident[i])]
        local = _local(bp.t[i])
        sys_, dia, pulse = int(bp.sys[i]), int(bp.dia[i]), int(bp.pulse[i])
        if str(bp.setting[i]) == "centre":
            m = Measurement(
                Kind.BLOOD_PRESSURE,
                (
                    Component("systolic", Decimal(sys_), "mm[Hg]"),
                    Component("diastolic", Decimal(dia), "mm[Hg]"),
                    Component("pulse", Decimal(pulse), "/min"),
                ),
                local,
            )
            out.append(_kiosk(r.id, r.centre, local, m, f"bp-{i}"))
        elif r.id in cuffs:
            out.append(_home_bp(r.id, r.centre, cuffs[r.id], local, sys_, dia, pulse))

    glucose = population.glucose
    for i in np.flatnonzero(np.isin(glucose.resident, list(by_row))):
        local = _local(glucose.t[i])
        if not _open(local):
            continue
        r = by_row[int(glucose.resident[i])]
        meal = str(glucose.meal[i])
        m = Measurement(
            Kind.GLUCOSE,
            (Component("glucose", Decimal(int(glucose.mg_dl[i])), "mg/dL"),),
            local,
            context=(("meal", meal),) if meal in _MEAL else (),
        )
        out.append(_kiosk(r.id, r.centre, local, m, f"glu-{i}"))

    weight = population.weight
    for i in np.flatnonzero(np.isin(weight.resident, list(by_row))):
        local = _local(weight.t[i])
        if not _open(local):
            continue
        r = by_row[int(weight.resident[i])]
        kg = Decimal(f"{float(weight.kg[i]):.1f}")
        m = Measurement(Kind.BODY_WEIGHT, (Component("weight", kg, "kg"),), local)
        out.append(_kiosk(r.id, r.centre, local, m, f"wt-{i}"))

    comp = population.body_comp
    for i in np.flatnonzero(np.isin(comp.resident, list(by_row))):
        local = _local(comp.t[i])
        r = by_row[int(comp.resident[i])]
        m = Measurement(
            Kind.BODY_COMPOSITION,
            (
                Component("body_fat", Decimal(f"{float(comp.fat_pct[i]):.1f}"), "%"),
                Component("muscle_mass", Decimal(f"{float(comp.asm_kg[i]):.1f}"), "kg"),
            ),
            local,
        )
        out.append(_kiosk(r.id, r.centre, local, m, f"bc-{i}"))
    out.sort(key=lambda h: h.local)
    return out


def history_batches(
    readings: list[HistoryReading], topic_root: str, per_message: int = PER_MESSAGE
) -> Iterator[tuple[str, bytes]]:
    """(topic, body) of gateway batches, one centre's gateway per batch, oldest first."""
    by_centre: dict[str, list[HistoryReading]] = {}
    for h in readings:
        by_centre.setdefault(h.centre, []).append(h)
    for centre, items in sorted(by_centre.items()):
        gateway = f"{centre}-gw-1"
        for start in range(0, len(items), per_message):
            chunk = items[start : start + per_message]
            sent = chunk[-1].local.replace(tzinfo=SEOUL) + dt.timedelta(hours=1)
            body = {
                "schema": 1,
                "gateway": gateway,
                "centre": centre,
                "sent_at": sent.isoformat(),
                "readings": [h.reading for h in chunk],
            }
            yield (
                f"{topic_root}/gw/{gateway}/readings",
                json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
            )
