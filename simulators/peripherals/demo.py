"""The demo's BLE devices: each centre's station and a few residents' home devices.

The devices are those of :mod:`simulators.demo_data` (same addresses, names and Device
Information strings as the gateway configuration): at 약수동 (yaksu), 황학동 (hwanghak) and
필동 (pil) a station with an A&D UA-651BLE cuff, an i-SENS CareSens N Premier meter, an A&D
UC-352BLE scale and a Beurer BF720 body-composition scale; and residents' own Omron cuffs,
CareSens meters and A&D scales for nurse visits.

:class:`DemoFleet` makes them take readings as residents would: every ``interval`` seconds (on
average) one device measures someone of its centre, with values drawn around that resident's
ground truth in the synthetic population (office or home blood pressure, fasting glucose with
meal context, weight from BMI and height). Each BF720 has the first residents of its centre in
its user slots, with consent codes listed in :attr:`DemoFleet.scale_slots`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from simulators.bluez import Timing, VirtualBlueZ
from simulators.demo_data import CENTRES, DEMO_SEED, DemoDevice, DemoResident, demo_world
from simulators.peripherals.base import HealthDevice, Identity
from simulators.peripherals.bp_cuff import BloodPressureCuff
from simulators.peripherals.faults import seoul_now
from simulators.peripherals.glucose_meter import GlucoseMeter
from simulators.peripherals.scales import BodyCompositionScale, WeightScale

logger = logging.getLogger(__name__)

#: User slots per demo BF720 (its maximum is 8).
SCALE_SLOTS = 4


@dataclass(frozen=True, slots=True)
class ScaleSlot:
    """A resident registered on a body-composition scale, and the consent code to use."""

    user_index: int
    consent_code: int
    resident: str


@dataclass(slots=True, eq=False)
class DemoFleet:
    """The demo's virtual devices, their owners, and the residents who use them."""

    devices: list[HealthDevice]
    sources: dict[str, DemoDevice]
    users: dict[str, tuple[DemoResident, ...]]
    scale_slots: dict[str, tuple[ScaleSlot, ...]] = field(default_factory=dict)
    seed: int = DEMO_SEED
    measurements: int = 0

    def add_to(self, bluez: VirtualBlueZ) -> None:
        """Put every device in range of the virtual BlueZ."""
        for device in self.devices:
            bluez.add_peripheral(device)

    def measure_once(self, rng: random.Random) -> str:
        """One device takes one reading; returns what happened, for the log."""
        device = rng.choice(self.devices)
        source = self.sources[device.address]
        residents = self.users.get(device.address, ())
        if not residents:
            return f"{source.local_name}: nobody to measure"
        resident = rng.choice(residents)
        truth = _truth(resident)
        self.measurements += 1
        if isinstance(device, BloodPressureCuff):
            home = source.owner is not None
            sys_mean = truth.home_sys if home else truth.office_sys
            dia_mean = truth.home_dia if home else truth.office_dia
            systolic = round(rng.gauss(sys_mean, 8))
            diastolic = min(round(rng.gauss(dia_mean, 6)), systolic - 20)
            pulse = round(rng.gauss(72, 8))
            user = 1 if device.users == 1 else rng.randint(1, device.users)
            device.take_reading(systolic, diastolic, pulse, user=user)
            return f"{source.local_name}: {resident.id} {systolic}/{diastolic} mmHg, {pulse}/min"
        if isinstance(device, GlucoseMeter):
            meal = rng.choice((1, 2, 3))
            rise = {1: 0.0, 2: rng.uniform(30, 70), 3: 0.0}[meal]
            value = max(40, round(rng.gauss(truth.fasting_glucose + rise, 12)))
            device.take_reading(value, meal=meal)
            return f"{source.local_name}: {resident.id} {value} mg/dL (meal {meal})"
        if isinstance(device, WeightScale):
            weight = round(truth.weight_kg + rng.gauss(0, 0.6), 1)
            slots = self.scale_slots.get(device.address, ())
            slot = next((s for s in slots if s.resident == resident.id), None)
            device.weigh(weight, user=slot.user_index if slot else None)
            who = f" (user {slot.user_index})" if slot else " (unknown user)" if device.uds else ""
            return f"{source.local_name}: {resident.id} {weight} kg{who}"
        return f"{source.local_name}: no reading"

    async def activity(self, interval: float, stop: asyncio.Event | None = None) -> None:
        """Measure forever (or until ``stop``), one reading every ``interval`` s on average."""
        if interval <= 0:
            return
        rng = random.Random(self.seed)
        while stop is None or not stop.is_set():
            delay = rng.expovariate(1.0 / interval)
            if stop is None:
                await asyncio.sleep(delay)
            else:
                try:
                    async with asyncio.timeout(delay):
                        await stop.wait()
                    return
                except TimeoutError:
                    pass
            logger.info("demo measurement: %s", self.measure_once(rng))


@dataclass(frozen=True, slots=True)
class _Truth:
    office_sys: float
    office_dia: float
    home_sys: float
    home_dia: float
    fasting_glucose: float
    weight_kg: float


def _truth(resident: DemoResident) -> _Truth:
    residents = demo_world().population.residents
    i = resident.population_index
    height = float(residents.height_cm[i]) / 100
    return _Truth(
        float(residents.true_office_sys[i]),
        float(residents.true_office_dia[i]),
        float(residents.true_home_sys[i]),
        float(residents.true_home_dia[i]),
        float(residents.true_fasting_glucose[i]),
        float(residents.bmi[i]) * height * height,
    )


def peripheral_for(source: DemoDevice, *, timing: Timing | None = None) -> HealthDevice:
    """The virtual device for a demo device, with its name and Device Information."""
    address = source.address
    if source.transport != "ble" or address is None:
        raise ValueError(f"{source.id} is not a BLE device")
    identity = Identity(source.manufacturer, source.model, source.serial, source.firmware)
    timing = timing or Timing()
    device: HealthDevice
    if source.role == "cuff":
        if source.model.startswith("UA-651"):
            device = BloodPressureCuff.and_ua651(address, timing=timing)
        else:
            device = BloodPressureCuff.omron(address, model=source.model, timing=timing)
    elif source.role == "glucose_meter":
        device = GlucoseMeter.caresens(address, timing=timing)
    elif source.role == "scale":
        device = WeightScale.and_uc352(address, timing=timing)
    elif source.role == "body_composition":
        device = BodyCompositionScale.beurer_bf720(address, timing=timing)
    else:
        raise ValueError(f"no virtual device for role {source.role!r}")
    device.identity = identity
    device.name = source.local_name
    return device


def build_fleet(
    centres: Sequence[str] | None = None,
    *,
    home: bool = True,
    seed: int = DEMO_SEED,
    timing: Timing | None = None,
) -> DemoFleet:
    """The demo devices of ``centres`` (default all three), plus home devices if ``home``."""
    wanted = tuple(centres) if centres else tuple(c.id for c in CENTRES)
    unknown = set(wanted) - {c.id for c in CENTRES}
    if unknown:
        raise ValueError(f"unknown centre(s): {sorted(unknown)} (yaksu, hwanghak, pil)")
    world = demo_world(seed)
    sources: list[DemoDevice] = [
        d for station in world.stations if station.centre in wanted for d in station.devices
    ]
    if home:
        sources.extend(d for d in world.home_devices if d.centre in wanted)
    sources = [d for d in sources if d.transport == "ble" and d.address is not None]
    rng = random.Random(seed)
    this_year = seoul_now().year
    fleet = DemoFleet(devices=[], sources={}, users={}, seed=seed)
    for source in sources:
        device = peripheral_for(source, timing=timing)
        fleet.devices.append(device)
        fleet.sources[device.address] = source
        if source.owner is not None:
            fleet.users[device.address] = (world.resident(source.owner),)
        else:
            fleet.users[device.address] = world.residents_of(source.centre)
        if isinstance(device, BodyCompositionScale):
            slots = []
            for resident in fleet.users[device.address][:SCALE_SLOTS]:
                user = device.register_user(
                    rng.randint(0, 9999),
                    height_m=Decimal(str(round(resident.height_cm / 100, 3))),
                    gender=0 if resident.sex == "M" else 1,
                    birth=date(
                        this_year - resident.age, 1 + rng.randrange(12), 1 + rng.randrange(28)
                    ),
                )
                slots.append(ScaleSlot(user.index, user.consent_code, resident.id))
            fleet.scale_slots[device.address] = tuple(slots)
    return fleet
