"""Registries: centres, gateways, stations, devices, residents and personal-device user slots.

The demo and the simulators seed through the ``upsert_*`` functions (idempotent, batched with
``executemany``). Ingest reads a :class:`RegistrySnapshot` (:func:`load_registry`) once and
refreshes it periodically, so binding a reading never costs a database round trip;
:func:`resolve_patient` is the same rule as one query, for callers that need a single answer.

Binding rule for personal devices (house-style.md §3.2, iomt-fhir's Device→Patient lookup,
with the user slot of a multi-user device): a ``device_user`` row valid at the measurement time
names the resident; a device with no ``device_user`` rows at all binds to its ``owner_id``; a
multi-user device whose slot has no mapping binds to nobody (the reading goes to the staff
queue). A user slot is never a person by itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from ingest.fhir import device_resource
from ingest.fhir.encoding import dumps

Conn = AsyncConnection[Any]

UNKNOWN_USER = 255  # BLE "unknown user" slot


@dataclass(frozen=True, slots=True)
class Centre:
    id: str
    name: str
    neighbourhood: str


@dataclass(frozen=True, slots=True)
class Gateway:
    id: str
    centre_id: str | None
    mode: str = "station"  # "station" | "visit"
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Station:
    id: str
    centre_id: str
    name: str
    gateway_id: str | None = None


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    kind: str | None = None
    address: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    station_id: str | None = None
    owner_id: str | None = None
    calibration: str | None = None


@dataclass(frozen=True, slots=True)
class Resident:
    id: str
    display_name: str
    neighbourhood: str
    card_number: str | None = None
    birth_date: date | None = None
    sex: str | None = None
    height_cm: Decimal | float | None = None
    profile: Mapping[str, Any] = field(default_factory=dict)
    nurse_id: str | None = None
    liaison_id: str | None = None
    rehab: bool = False
    active: bool = True


@dataclass(frozen=True, slots=True)
class DeviceUser:
    device_id: str
    user_index: int
    resident_id: str
    valid_from: datetime
    valid_to: datetime | None = None


async def upsert_centres(conn: Conn, centres: Iterable[Centre]) -> int:
    rows = [(c.id, c.name, c.neighbourhood) for c in centres]
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO centre (id, name, neighbourhood) VALUES (%s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
            "neighbourhood = excluded.neighbourhood",
            rows,
        )
    return len(rows)


async def upsert_gateways(conn: Conn, gateways: Iterable[Gateway]) -> int:
    rows = [(g.id, g.centre_id, g.mode, g.description) for g in gateways]
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO gateway (id, centre_id, mode, description) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET centre_id = excluded.centre_id, "
            "mode = excluded.mode, description = excluded.description",
            rows,
        )
    return len(rows)


async def upsert_stations(conn: Conn, stations: Iterable[Station]) -> int:
    rows = [(s.id, s.centre_id, s.gateway_id, s.name) for s in stations]
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO station (id, centre_id, gateway_id, name) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET centre_id = excluded.centre_id, "
            "gateway_id = excluded.gateway_id, name = excluded.name",
            rows,
        )
    return len(rows)


def _device_json(d: Device) -> Jsonb:
    resource = device_resource(
        d.id,
        address=d.address,
        manufacturer=d.manufacturer,
        model=d.model,
        serial=d.serial,
        firmware=d.firmware,
        kind=d.kind,
    )
    return Jsonb(resource, dumps=dumps)


async def upsert_devices(conn: Conn, devices: Iterable[Device]) -> int:
    """Insert or update devices; the stored FHIR Device (PhdDevice) is rebuilt each time."""
    rows = [
        (
            d.id,
            d.address,
            d.manufacturer,
            d.model,
            d.serial,
            d.firmware,
            d.kind,
            d.station_id,
            d.owner_id,
            d.calibration,
            _device_json(d),
        )
        for d in devices
    ]
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO device (id, address, manufacturer, model, serial, firmware, kind, "
            "station_id, owner_id, calibration, resource) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET address = excluded.address, "
            "manufacturer = excluded.manufacturer, model = excluded.model, "
            "serial = excluded.serial, firmware = excluded.firmware, kind = excluded.kind, "
            "station_id = excluded.station_id, owner_id = excluded.owner_id, "
            "calibration = excluded.calibration, resource = excluded.resource",
            rows,
        )
    return len(rows)


async def upsert_residents(conn: Conn, residents: Iterable[Resident]) -> int:
    rows = [
        (
            r.id,
            r.card_number,
            r.display_name,
            r.neighbourhood,
            r.birth_date,
            r.sex,
            r.height_cm,
            Jsonb(dict(r.profile)),
            r.nurse_id,
            r.liaison_id,
            r.rehab,
            r.active,
        )
        for r in residents
    ]
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO resident (id, card_number, display_name, neighbourhood, birth_date, "
            "sex, height_cm, profile, nurse_id, liaison_id, rehab, active) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET card_number = excluded.card_number, "
            "display_name = excluded.display_name, neighbourhood = excluded.neighbourhood, "
            "birth_date = excluded.birth_date, sex = excluded.sex, "
            "height_cm = excluded.height_cm, profile = excluded.profile, "
            "nurse_id = excluded.nurse_id, liaison_id = excluded.liaison_id, "
            "rehab = excluded.rehab, active = excluded.active",
            rows,
        )
    return len(rows)


async def upsert_device_users(conn: Conn, mappings: Iterable[DeviceUser]) -> int:
    rows = [(m.device_id, m.user_index, m.resident_id, m.valid_from, m.valid_to) for m in mappings]
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO device_user (device_id, user_index, resident_id, valid_from, valid_to) "
            "VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (device_id, user_index, valid_from) DO UPDATE SET "
            "resident_id = excluded.resident_id, valid_to = excluded.valid_to",
            rows,
        )
    return len(rows)


async def resolve_patient(
    conn: Conn, device_id: str, user_index: int | None, at: datetime
) -> str | None:
    """The resident a personal device's reading belongs to, or None (see the module rule)."""
    cur = await conn.execute(
        """
        SELECT
          (SELECT du.resident_id FROM device_user du
            WHERE du.device_id = d.id AND du.user_index = %(slot)s
              AND du.valid_from <= %(at)s AND (du.valid_to IS NULL OR du.valid_to > %(at)s)
            ORDER BY du.valid_from DESC LIMIT 1),
          EXISTS (SELECT 1 FROM device_user du WHERE du.device_id = d.id),
          d.owner_id
        FROM device d WHERE d.id = %(device)s
        """,
        {"device": device_id, "slot": user_index if user_index is not None else -1, "at": at},
    )
    row = await cur.fetchone()
    if row is None:
        return None
    mapped, multi_user, owner = row
    if mapped is not None:
        return str(mapped)
    if multi_user:
        return None
    return None if owner is None else str(owner)


# --- contact details (migration 0003) ---------------------------------------------------------

#: Relationship of a contact person to the resident (the column's CHECK list), Korean label.
RELATIONSHIPS: Mapping[str, str] = {
    "spouse": "배우자",
    "son": "아들",
    "daughter": "딸",
    "child": "자녀",
    "sibling": "형제자매",
    "grandchild": "손자녀",
    "parent": "부모",
    "relative": "친척",
    "friend": "친구",
    "neighbour": "이웃",
    "guardian": "후견인",
    "carer": "돌봄 제공자",
    "other": "기타",
}


@dataclass(frozen=True, slots=True)
class Contact:
    """An emergency contact or guardian (보호자); ``phone`` in national format with dashes."""

    name: str
    relationship: str  # a key of RELATIONSHIPS
    phone: str
    guardian: bool = False


@dataclass(frozen=True, slots=True)
class ResidentContacts:
    """How to reach a resident and who to call for them (FHIR Patient.telecom/address/contact).

    The address is a road-name address (KR Core ``krcore-roadNameAddress``) in the resident's
    동 (``resident.neighbourhood``), which the caller joins with ``address_road``.
    """

    resident_id: str
    neighbourhood: str = ""
    mobile_phone: str | None = None
    home_phone: str | None = None
    address_road: str | None = None
    address_detail: str | None = None
    postal_code: str | None = None
    lives_alone: bool | None = None
    contacts: tuple[Contact, ...] = ()

    @property
    def phone(self) -> str | None:
        """The number to call first: mobile, else home."""
        return self.mobile_phone or self.home_phone

    @property
    def address_text(self) -> str | None:
        """The address as one line ('서울특별시 중구 다산로 12, 301호 (약수동)')."""
        if not self.address_road:
            return None
        street = " ".join(p for p in (self.address_road, self.address_detail) if p)
        suffix = f" ({self.neighbourhood})" if self.neighbourhood else ""
        return f"서울특별시 중구 {street}{suffix}"


async def upsert_contacts(conn: Conn, items: Iterable[ResidentContacts]) -> int:
    """Set the contact details of existing residents; their contact persons are replaced."""
    items = list(items)
    if not items:
        return 0
    async with conn.cursor() as cur:
        await cur.executemany(
            "UPDATE resident SET mobile_phone = %s, home_phone = %s, address_road = %s, "
            "address_detail = %s, postal_code = %s, lives_alone = %s WHERE id = %s",
            [
                (
                    c.mobile_phone,
                    c.home_phone,
                    c.address_road,
                    c.address_detail,
                    c.postal_code,
                    c.lives_alone,
                    c.resident_id,
                )
                for c in items
            ],
        )
        await cur.execute(
            "DELETE FROM resident_contact WHERE resident_id = ANY(%s)",
            ([c.resident_id for c in items],),
        )
        rows = [
            (c.resident_id, rank, p.name, p.relationship, p.phone, p.guardian)
            for c in items
            for rank, p in enumerate(c.contacts, start=1)
        ]
        if rows:
            await cur.executemany(
                "INSERT INTO resident_contact (resident_id, rank, name, relationship, phone, "
                "guardian) VALUES (%s, %s, %s, %s, %s, %s)",
                rows,
            )
    return len(items)


CONTACTS_SQL = """
SELECT r.id, r.neighbourhood, r.mobile_phone, r.home_phone, r.address_road, r.address_detail,
       r.postal_code, r.lives_alone,
       coalesce((SELECT array_agg(ARRAY[c.name, c.relationship, c.phone, c.guardian::text]
                                  ORDER BY c.rank)
                 FROM resident_contact c WHERE c.resident_id = r.id), '{}')
FROM resident r"""


def contacts_from_row(row: tuple[Any, ...] | Any) -> ResidentContacts:
    """A :data:`CONTACTS_SQL` row as :class:`ResidentContacts`."""
    return ResidentContacts(
        resident_id=str(row[0]),
        neighbourhood=str(row[1]),
        mobile_phone=row[2],
        home_phone=row[3],
        address_road=row[4],
        address_detail=row[5],
        postal_code=row[6],
        lives_alone=row[7],
        contacts=tuple(Contact(p[0], p[1], p[2], p[3] == "true") for p in row[8]),
    )


async def read_contacts(conn: Conn, resident_ids: Iterable[str]) -> dict[str, ResidentContacts]:
    """Contact details of residents by id (unknown ids are left out). No access check: for
    services; the web app reads them through ``api.store.contacts`` (scope, consent, audit)."""
    cur = await conn.execute(
        (CONTACTS_SQL + " WHERE r.id = ANY(%s)").encode(), (list(resident_ids),)
    )
    return {c.resident_id: c for c in map(contacts_from_row, await cur.fetchall())}


# --- the in-memory snapshot ingest binds with --------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    id: str
    kind: str | None
    station_id: str | None
    owner_id: str | None
    calibration: str | None
    centre_id: str | None


@dataclass(frozen=True, slots=True)
class GatewayEntry:
    id: str
    centre_id: str | None
    mode: str


@dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    """The registries at one moment; ``resolve`` applies the module's binding rule."""

    gateways: Mapping[str, GatewayEntry]
    devices: Mapping[str, DeviceEntry]
    residents: frozenset[str]
    # device id → [(user_index, valid_from, valid_to, resident)]
    slots: Mapping[str, tuple[tuple[int, datetime, datetime | None, str], ...]]
    loaded_at: datetime
    stations: Mapping[str, str] = field(default_factory=dict)  # station id → centre id

    def resolve(self, device_id: str, user_index: int | None, at: datetime) -> str | None:
        mappings = self.slots.get(device_id)
        if mappings:
            for slot, valid_from, valid_to, resident in mappings:
                if slot == user_index and valid_from <= at and (valid_to is None or valid_to > at):
                    return resident
            return None
        device = self.devices.get(device_id)
        return None if device is None else device.owner_id

    def multi_user(self, device_id: str) -> bool:
        return bool(self.slots.get(device_id))

    def gateway(self, gateway_id: str) -> GatewayEntry | None:
        return self.gateways.get(gateway_id)

    def device(self, device_id: str) -> DeviceEntry | None:
        return self.devices.get(device_id)

    def resident_known(self, resident_id: str) -> bool:
        return resident_id in self.residents

    def station_centre(self, station_id: str) -> str | None:
        return self.stations.get(station_id)


async def load_registry(conn: Conn) -> RegistrySnapshot:
    """Read the registries into memory (a district has thousands of rows, not millions)."""
    gateways = {
        row[0]: GatewayEntry(row[0], row[1], row[2])
        for row in await (await conn.execute("SELECT id, centre_id, mode FROM gateway")).fetchall()
    }
    devices = {
        row[0]: DeviceEntry(*row)
        for row in await (
            await conn.execute(
                "SELECT d.id, d.kind, d.station_id, d.owner_id, d.calibration, s.centre_id "
                "FROM device d LEFT JOIN station s ON s.id = d.station_id"
            )
        ).fetchall()
    }
    residents = frozenset(
        row[0]
        for row in await (await conn.execute("SELECT id FROM resident WHERE active")).fetchall()
    )
    slots: dict[str, list[tuple[int, datetime, datetime | None, str]]] = {}
    for device_id, slot, valid_from, valid_to, resident in await (
        await conn.execute(
            "SELECT device_id, user_index, valid_from, valid_to, resident_id FROM device_user "
            "ORDER BY device_id, valid_from DESC"
        )
    ).fetchall():
        slots.setdefault(device_id, []).append((int(slot), valid_from, valid_to, resident))
    stations = {
        str(row[0]): str(row[1])
        for row in await (await conn.execute("SELECT id, centre_id FROM station")).fetchall()
    }
    now = await (await conn.execute("SELECT now()")).fetchone()
    assert now is not None
    return RegistrySnapshot(
        stations=stations,
        gateways=gateways,
        devices=devices,
        residents=residents,
        slots={k: tuple(v) for k, v in slots.items()},
        loaded_at=now[0],
    )
