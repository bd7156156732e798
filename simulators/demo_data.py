"""The demo's fixed world: three U-health centres, their stations and devices, staff, residents.

Plain frozen data, used by ``daon demo``, the gateway configuration, the API seed and the
station simulator. Centres and stations are constants; the people come from a small synthetic
population (:func:`simulators.population.generate`, seed :data:`DEMO_SEED`), so they are
consistent with the big one (same rules for nurses, liaison officers, consent, cards) and are
built once on first use by :func:`demo_world`. Every name and number is synthetic.

The world (junggu-district.md): U-health centres at 약수동 (``yaksu``), 황학동 (``hwanghak``) and
필동 (``pil``), each with one station ``<centre>-station-1`` holding a blood-pressure cuff
(A&D UA-651BLE), a glucose meter (i-SENS CareSens N Premier), a weight scale (A&D UC-352BLE)
and a body-composition scale (Beurer BF720); rehabilitation rooms at 약수동 and 황학동 with one
rotating rehabilitation exercise therapist; 12 visiting nurses; liaison officers; and a few
residents' own home devices (an Omron HEM-7361T cuff, a CareSens N Premier, an A&D UC-352BLE)
that nurses read on home visits. Every model is a row of :mod:`devices.catalogue`.

Each station also has a measurement kiosk (측정 키오스크) that reads the resident's card and
publishes MQTT station payloads (:mod:`devices.station`) for its four measurement devices,
``<centre>-kiosk-1-bp``, ``-glucose``, ``-scale`` and ``-bca`` (:mod:`simulators.stations`
plays them).

Device identity follows the wire format (``devices/wire.py``): a BLE device's ``id`` is its
address; addresses are random-static (first octet ≥ 0xC0), so they belong to no real device.
A kiosk device's ``id`` is its registry id and it has no address.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

import numpy as np

from devices.model import Kind
from simulators.population import CENTRE_OF_NEIGHBOURHOOD, NEIGHBOURHOODS, Population, generate
from simulators.population_names import synthetic_names

__all__ = [
    "CENTRES",
    "DEMO_SEED",
    "STATIONS",
    "Centre",
    "DemoDevice",
    "DemoResident",
    "DemoWorld",
    "StaffMember",
    "Station",
    "demo_world",
]

DEMO_SEED = 2014
DEMO_POPULATION_SIZE = 1200  # a 1:50 scale model of the district
DEMO_RESIDENTS = 150  # picked from it, every 동 in proportion to the district's figures
MIN_PER_NEIGHBOURHOOD = 4
REHAB_NEIGHBOURHOODS = ("약수동", "황학동")  # the rehabilitation rooms' own 동
REHAB_AGE = 70
MIN_REHAB_PER_NEIGHBOURHOOD = 4
_FIXED_END = dt.date(2026, 1, 1)  # only the residents are used; readings are generated live


@dataclass(frozen=True, slots=True)
class DemoDevice:
    """One BLE health device of the demo (station-mounted or a resident's own)."""

    id: str  # the BLE address (BLE) or the registry id (MQTT kiosk device)
    address: str | None  # None for an MQTT kiosk device
    transport: str  # "ble" | "mqtt"
    kind: Kind
    role: str  # "cuff" | "glucose_meter" | "scale" | "body_composition"
    manufacturer: str
    model: str
    serial: str
    firmware: str
    local_name: str  # what it advertises ('' for an MQTT device)
    calibration: str | None  # glucose meters: "plasma" | "whole_blood"; others None
    centre: str  # centre id (for home devices: the resident's centre)
    station: str | None  # station id, or None for a home device
    owner: str | None  # resident id for a home device, None at a station


@dataclass(frozen=True, slots=True)
class Station:
    """A measurement station (측정 스테이션): check-in by card, then self-measurement."""

    id: str  # "<centre>-station-1"
    centre: str
    name: str
    devices: tuple[DemoDevice, ...]  # BLE devices, read by the centre's gateway
    kiosk: tuple[DemoDevice, ...] = ()  # MQTT devices of the station's kiosk

    def device(self, role: str) -> DemoDevice:
        """The station's BLE device with ``role`` ('cuff', 'glucose_meter', 'scale', ...)."""
        for device in self.devices:
            if device.role == role:
                return device
        raise KeyError(role)

    def kiosk_device(self, role: str) -> DemoDevice:
        """The kiosk's MQTT device with ``role``."""
        for device in self.kiosk:
            if device.role == role:
                return device
        raise KeyError(role)


@dataclass(frozen=True, slots=True)
class Centre:
    """A U-health centre (U-건강센터)."""

    id: str
    name: str  # Korean
    name_en: str
    neighbourhood: str
    rehab_room: bool  # 재활치료실
    stations: tuple[Station, ...]


@dataclass(frozen=True, slots=True)
class StaffMember:
    """A member of staff: visiting nurse, liaison officer or rehabilitation therapist."""

    id: str
    name: str
    role: str  # "nurse" | "liaison" | "rehab"
    neighbourhoods: tuple[str, ...]
    centres: tuple[str, ...]  # for the therapist: the rehabilitation rooms she rotates through


@dataclass(frozen=True, slots=True)
class DemoResident:
    """A demo resident: a row of the synthetic population, as plain values."""

    id: str
    name: str
    neighbourhood: str
    age: int
    sex: str
    height_cm: float
    benefit: str
    card_number: str
    centre: str
    nurse: str
    liaison: str  # '' when the resident has no liaison officer
    consent: bool  # consented to share health information with the liaison officer
    hypertension: bool
    diabetes: bool
    obesity: bool
    dyslipidemia: bool
    population_index: int  # row in demo_world().population.residents
    home_devices: tuple[str, ...]  # device ids
    rehab: bool = False  # attends a rehabilitation room (재활치료실) in their own 동


@dataclass(frozen=True, slots=True)
class DemoWorld:
    """Everything the demo needs, built by :func:`demo_world`."""

    centres: tuple[Centre, ...]
    residents: tuple[DemoResident, ...]
    home_devices: tuple[DemoDevice, ...]
    nurses: tuple[StaffMember, ...]
    liaisons: tuple[StaffMember, ...]
    therapists: tuple[StaffMember, ...]
    population: Population  # the small population the residents come from (readings unused)

    @property
    def stations(self) -> tuple[Station, ...]:
        return tuple(station for centre in self.centres for station in centre.stations)

    @property
    def devices(self) -> tuple[DemoDevice, ...]:
        """Every device: station BLE devices, kiosk devices, then home devices."""
        station_devices = tuple(d for station in self.stations for d in station.devices)
        kiosk_devices = tuple(d for station in self.stations for d in station.kiosk)
        return station_devices + kiosk_devices + self.home_devices

    def centre(self, centre_id: str) -> Centre:
        for centre in self.centres:
            if centre.id == centre_id:
                return centre
        raise KeyError(centre_id)

    def station(self, station_id: str) -> Station:
        for station in self.stations:
            if station.id == station_id:
                return station
        raise KeyError(station_id)

    def device(self, device_id: str) -> DemoDevice:
        for device in self.devices:
            if device.id == device_id:
                return device
        raise KeyError(device_id)

    def resident(self, resident_id: str) -> DemoResident:
        for resident in self.residents:
            if resident.id == resident_id:
                return resident
        raise KeyError(resident_id)

    def resident_by_card(self, card_number: str) -> DemoResident | None:
        """The resident holding ``card_number``, or None (an unknown card at a station)."""
        for resident in self.residents:
            if resident.card_number == card_number:
                return resident
        return None

    def residents_of(self, centre_id: str) -> tuple[DemoResident, ...]:
        return tuple(r for r in self.residents if r.centre == centre_id)


# --- the fixed part -----------------------------------------------------------------------------

_CENTRE_NAMES = {
    "yaksu": ("약수동", "약수 U-건강센터", "Yaksu U-health centre", True, 0x10),
    "hwanghak": ("황학동", "황학 U-건강센터", "Hwanghak U-health centre", True, 0x20),
    "pil": ("필동", "필동 U-건강센터", "Pil-dong U-health centre", False, 0x30),
}


def _address(centre_code: int, slot: int) -> str:
    """A random-static BLE address (top bits 11) that encodes centre and slot, for readability."""
    octets = (0xC0 | (centre_code >> 4), 0xDA, 0x0E, centre_code & 0xFF, 0x00, slot)
    return ":".join(f"{o:02X}" for o in octets)


def _station_device(
    centre: str, station: str, code: int, slot: int, role: str, serial_base: int
) -> DemoDevice:
    address = _address(code, slot)
    tail = address.replace(":", "")[-6:]
    kinds = {
        "cuff": (Kind.BLOOD_PRESSURE, "A&D Medical", "UA-651BLE", "1.3", f"A&D_UA-651BLE_{tail}"),
        "glucose_meter": (
            Kind.GLUCOSE,
            "i-SENS",
            "CareSens N Premier",
            "2.1",
            f"CareSens {tail[:2]}{tail[-2:]}",
        ),
        "scale": (Kind.BODY_WEIGHT, "A&D Medical", "UC-352BLE", "1.1", f"A&D_UC-352BLE_{tail}"),
        "body_composition": (Kind.BODY_COMPOSITION, "Beurer", "BF720", "1.0", "BF720"),
    }
    kind, manufacturer, model, firmware, name = kinds[role]
    return DemoDevice(
        id=address,
        address=address,
        transport="ble",
        kind=kind,
        role=role,
        manufacturer=manufacturer,
        model=model,
        serial=f"{serial_base + slot:010d}",
        firmware=firmware,
        local_name=name,
        calibration="plasma" if role == "glucose_meter" else None,
        centre=centre,
        station=station,
        owner=None,
    )


STATION_ROLES: tuple[str, ...] = ("cuff", "glucose_meter", "scale", "body_composition")
_KIOSK_SUFFIX = {
    "cuff": "bp",
    "glucose_meter": "glucose",
    "scale": "scale",
    "body_composition": "bca",
}
_KIOSK_KIND = {
    "cuff": Kind.BLOOD_PRESSURE,
    "glucose_meter": Kind.GLUCOSE,
    "scale": Kind.BODY_WEIGHT,
    "body_composition": Kind.BODY_COMPOSITION,
}
KIOSK_MANUFACTURER = "Daon (synthetic)"
KIOSK_MODEL = "Daon station kiosk"


def _kiosk_device(centre: str, station: str, role: str, serial_base: int, slot: int) -> DemoDevice:
    return DemoDevice(
        id=f"{centre}-kiosk-1-{_KIOSK_SUFFIX[role]}",
        address=None,
        transport="mqtt",
        kind=_KIOSK_KIND[role],
        role=role,
        manufacturer=KIOSK_MANUFACTURER,
        model=KIOSK_MODEL,
        serial=f"{serial_base + 50 + slot:010d}",
        firmware="1.0",
        local_name="",
        calibration="plasma" if role == "glucose_meter" else None,
        centre=centre,
        station=station,
        owner=None,
    )


def _centres() -> tuple[Centre, ...]:
    centres = []
    for centre_id, (neighbourhood, name, name_en, rehab, code) in _CENTRE_NAMES.items():
        station_id = f"{centre_id}-station-1"
        devices = tuple(
            _station_device(centre_id, station_id, code, slot + 1, role, 5120000000 + code * 100)
            for slot, role in enumerate(STATION_ROLES)
        )
        kiosk = tuple(
            _kiosk_device(centre_id, station_id, role, 5120000000 + code * 100, slot + 1)
            for slot, role in enumerate(STATION_ROLES)
        )
        station = Station(
            id=station_id,
            centre=centre_id,
            name=f"{name} 측정 스테이션 1",
            devices=devices,
            kiosk=kiosk,
        )
        centres.append(
            Centre(
                id=centre_id,
                name=name,
                name_en=name_en,
                neighbourhood=neighbourhood,
                rehab_room=rehab,
                stations=(station,),
            )
        )
    return tuple(centres)


CENTRES: tuple[Centre, ...] = _centres()
STATIONS: tuple[Station, ...] = tuple(s for c in CENTRES for s in c.stations)


# --- the generated part -------------------------------------------------------------------------


def _home_devices(residents: list[DemoResident]) -> dict[str, tuple[DemoDevice, ...]]:
    """A few residents' own devices: a cuff for hypertension, a meter for diabetes, a scale."""
    chosen: dict[str, tuple[DemoDevice, ...]] = {}
    slot = 0
    wants = (("hypertension", "cuff"), ("diabetes", "glucose_meter"), ("obesity", "scale"))
    for resident in residents:
        devices = []
        for condition, role in wants:
            if not getattr(resident, condition) or slot >= 12:
                continue
            slot += 1
            address = _address(0x40, slot)
            tail = address.replace(":", "")[-6:]
            if role == "cuff":
                spec = (
                    Kind.BLOOD_PRESSURE,
                    "Omron",
                    "HEM-7361T",
                    "2.0",
                    f"BLESmart_0000015F{address.replace(':', '')}",
                )
            elif role == "glucose_meter":
                spec = (
                    Kind.GLUCOSE,
                    "i-SENS",
                    "CareSens N Premier",
                    "2.1",
                    f"CareSens {tail[:2]}{tail[-2:]}",
                )
            else:
                spec = (
                    Kind.BODY_WEIGHT,
                    "A&D Medical",
                    "UC-352BLE",
                    "1.1",
                    f"A&D_UC-352BLE_{tail}",
                )
            kind, manufacturer, model, firmware, name = spec
            devices.append(
                DemoDevice(
                    id=address,
                    address=address,
                    transport="ble",
                    kind=kind,
                    role=role,
                    manufacturer=manufacturer,
                    model=model,
                    serial=f"{7300000000 + slot:010d}",
                    firmware=firmware,
                    local_name=name,
                    calibration="plasma" if role == "glucose_meter" else None,
                    centre=resident.centre,
                    station=None,
                    owner=resident.id,
                )
            )
        if devices:
            chosen[resident.id] = tuple(devices)
        if slot >= 12:
            break
    return chosen


def _pick_rows(population: Population, seed: int) -> list[int]:
    """Rows of the demo's residents: every 동 in proportion to the district's figures (at least
    :data:`MIN_PER_NEIGHBOURHOOD`), each 동's nurses and liaison officers with a caseload, and
    residents who use a U-health centre first (their readings are what the demo shows)."""
    r = population.residents
    rng = np.random.default_rng([seed, 11])
    names = [nb.name for nb in NEIGHBOURHOODS]
    weights = np.array([nb.residents for nb in NEIGHBOURHOODS], dtype=np.float64)
    quota = np.maximum(np.round(DEMO_RESIDENTS * weights / weights.sum()), MIN_PER_NEIGHBOURHOOD)
    condition = r.hypertension | r.diabetes | r.obesity | r.dyslipidemia
    score = (
        4.0 * (r.centre != "")
        + 2.0 * (r.liaison != "")
        + 1.0 * condition
        + rng.random(len(r.id))  # a deterministic tie-break
    )
    picked: list[int] = []
    for name, want in zip(names, quota, strict=True):
        rows = [
            int(i) for i in sorted(np.flatnonzero(r.neighbourhood == name), key=lambda i: -score[i])
        ]
        chosen: list[int] = []
        # every nurse and officer of the 동 gets someone; an officer sees only residents who
        # consented to share, so hers is a consenting one wherever the 동 has one
        for column, needs in ((r.nurse, None), (r.liaison, r.consent)):
            for person in dict.fromkeys(str(column[i]) for i in rows):
                theirs = [i for i in rows if str(column[i]) == person]
                if needs is not None:
                    theirs = [i for i in theirs if needs[i]] or theirs
                if person and not any(i in chosen for i in theirs):
                    chosen.append(theirs[0])
        if name in REHAB_NEIGHBOURHOODS:  # the therapist's room has people in it
            have = sum(1 for i in chosen if r.age[i] >= REHAB_AGE)
            older = [i for i in rows if r.age[i] >= REHAB_AGE and i not in chosen]
            chosen.extend(older[: max(0, MIN_REHAB_PER_NEIGHBOURHOOD - have)])
        size = max(int(want), len(chosen))  # coverage first, then the best-scoring rest
        chosen.extend(i for i in rows if i not in chosen)
        picked.extend(int(i) for i in chosen[:size])
    return picked


@functools.cache
def demo_world(seed: int = DEMO_SEED) -> DemoWorld:
    """The demo world (built once per seed; deterministic)."""
    population = generate(seed, n_residents=DEMO_POPULATION_SIZE, days=1, end=_FIXED_END)
    r = population.residents
    picked = [
        DemoResident(
            id=str(r.id[i]),
            name=str(r.name[i]),
            neighbourhood=str(r.neighbourhood[i]),
            age=int(r.age[i]),
            sex=str(r.sex[i]),
            height_cm=float(r.height_cm[i]),
            benefit=str(r.benefit[i]),
            card_number=str(r.card_number[i]),
            # the centre they use, else their 동's (where a staff member would send them)
            centre=str(r.centre[i]) or CENTRE_OF_NEIGHBOURHOOD[str(r.neighbourhood[i])],
            nurse=str(r.nurse[i]),
            liaison=str(r.liaison[i]),
            consent=bool(r.consent[i]),
            hypertension=bool(r.hypertension[i]),
            diabetes=bool(r.diabetes[i]),
            obesity=bool(r.obesity[i]),
            dyslipidemia=bool(r.dyslipidemia[i]),
            population_index=int(i),
            home_devices=(),
            rehab=str(r.neighbourhood[i]) in REHAB_NEIGHBOURHOODS and int(r.age[i]) >= REHAB_AGE,
        )
        for i in _pick_rows(population, seed)
    ]
    # The first residents with each condition get their own device (12 at most).
    by_centre = [[p for p in picked if p.centre == c.id] for c in CENTRES]
    interleaved = [p for group in zip(*by_centre, strict=False) for p in group]
    home = _home_devices(interleaved)
    residents = tuple(
        DemoResident(
            **{
                **{f: getattr(p, f) for f in DemoResident.__dataclass_fields__},
                "home_devices": tuple(d.id for d in home.get(p.id, ())),
            }
        )
        for p in picked
    )
    nurses = tuple(
        StaffMember(
            id=n.id,
            name=n.name,
            role="nurse",
            neighbourhoods=n.neighbourhoods,
            centres=tuple(sorted({CENTRE_OF_NEIGHBOURHOOD[nb] for nb in n.neighbourhoods})),
        )
        for n in population.nurses
    )
    liaisons = tuple(
        StaffMember(
            id=o.id,
            name=o.name,
            role="liaison",
            neighbourhoods=(o.neighbourhood,),
            centres=(CENTRE_OF_NEIGHBOURHOOD[o.neighbourhood],),
        )
        for o in population.liaisons
    )
    therapist_name = str(synthetic_names(np.random.default_rng([seed, 7]), 1)[0])
    therapists = (
        StaffMember(
            id="T01",
            name=therapist_name,
            role="rehab",
            neighbourhoods=("약수동", "황학동"),
            centres=tuple(c.id for c in CENTRES if c.rehab_room),
        ),
    )
    return DemoWorld(
        centres=CENTRES,
        residents=residents,
        home_devices=tuple(d for devices in home.values() for d in devices),
        nurses=nurses,
        liaisons=liaisons,
        therapists=therapists,
        population=population,
    )
