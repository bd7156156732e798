"""A small synthetic world for the api tests: two centres, residents, one user per role.

Everything here is synthetic. Residents are placed so that each role has one resident in
scope and one out of scope:

    R0000001  약수동  nurse N01, liaison L10-01 with active consent, rehab room
    R0000002  약수동  nurse N01, liaison L10-01, consent WITHDRAWN
    R0000003  황학동  nurse N02, liaison L14-01 with active consent
    R0000004  약수동  nurse N01, no liaison, rehab room, no consent
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from api.security import ScryptParams, hash_password
from api.store import access
from api.store.access import Actor, Role
from ingest.store import registry

#: Cheap scrypt for tests (the default is deliberately slow); one test checks the default.
FAST = ScryptParams(n=2**10, r=8, p=1)
PASSWORD = "correct horse battery staple"

IN_YAKSU = "R0000001"
WITHDRAWN = "R0000002"
IN_HWANGHAK = "R0000003"
NO_LIAISON = "R0000004"
RESIDENTS = (IN_YAKSU, WITHDRAWN, IN_HWANGHAK, NO_LIAISON)

CARD = {
    IN_YAKSU: "941000000017",
    WITHDRAWN: "941000000025",
    IN_HWANGHAK: "941000000033",
    NO_LIAISON: "941000000041",
}

USERS: dict[str, tuple[Role, tuple[str, ...], dict[str, str]]] = {
    "N01": (Role.NURSE, ("약수동",), {}),
    "N02": (Role.NURSE, ("황학동",), {}),
    "T01": (Role.THERAPIST, (), {}),
    "L10-01": (Role.LIAISON, ("약수동",), {}),
    "S-yaksu-1": (Role.STATION, (), {"station_id": "yaksu-station-1"}),
    "G-yaksu-1": (Role.GATEWAY, (), {"gateway_id": "yaksu-gw-1"}),
    "A01": (Role.ADMIN, (), {}),
}


#: Synthetic contact details (numbers that reach nobody: 010-0000-xxxx, 02-0000-xxxx).
CONTACTS = {
    rid: registry.ResidentContacts(
        resident_id=rid,
        mobile_phone=f"010-0000-{1000 + i:04d}",
        home_phone=f"02-0000-{2000 + i:04d}" if i % 2 else None,
        address_road="다산로" if rid != IN_HWANGHAK else "난계로",
        address_detail=f"{10 + i}, {100 + i}호",
        lives_alone=i % 2 == 1,
        contacts=(
            registry.Contact(f"보호자{i}", "daughter", f"010-0000-{3000 + i:04d}", guardian=True),
        ),
    )
    for i, rid in enumerate(RESIDENTS, start=1)
}


def username(user_id: str) -> str:
    return user_id.lower()


@dataclass(frozen=True)
class World:
    actors: dict[str, Actor]
    consent_ids: dict[str, str]

    def actor(self, user_id: str) -> Actor:
        return self.actors[user_id]


async def build_world(conn: AsyncConnection[Any]) -> World:
    """Insert the registry rows, users and consents; return the actors."""
    await conn.execute(
        """INSERT INTO centre (id, name, neighbourhood) VALUES
             ('yaksu', '약수동 U-건강센터', '약수동'), ('hwanghak', '황학동 U-건강센터', '황학동');
           INSERT INTO gateway (id, centre_id) VALUES ('yaksu-gw-1', 'yaksu'),
             ('hwanghak-gw-1', 'hwanghak');
           INSERT INTO station (id, centre_id, gateway_id, name) VALUES
             ('yaksu-station-1', 'yaksu', 'yaksu-gw-1', '약수 1번 측정대'),
             ('hwanghak-station-1', 'hwanghak', 'hwanghak-gw-1', '황학 1번 측정대')"""
    )
    # id, card, name, neighbourhood, birth date, sex, height, nurse, liaison, rehab room
    rows = [
        (
            IN_YAKSU,
            CARD[IN_YAKSU],
            "김하늘",
            "약수동",
            "1948-03-02",
            "F",
            152.0,
            "N01",
            "L10-01",
            True,
        ),
        (
            WITHDRAWN,
            CARD[WITHDRAWN],
            "박바다",
            "약수동",
            "1951-07-19",
            "M",
            168.0,
            "N01",
            "L10-01",
            False,
        ),
        (
            IN_HWANGHAK,
            CARD[IN_HWANGHAK],
            "이솔",
            "황학동",
            "1944-11-30",
            "F",
            149.5,
            "N02",
            "L14-01",
            False,
        ),
        (
            NO_LIAISON,
            CARD[NO_LIAISON],
            "최산",
            "약수동",
            "1957-01-05",
            "M",
            171.0,
            "N01",
            None,
            True,
        ),
    ]
    async with conn.cursor() as cur:
        await cur.executemany(
            """INSERT INTO resident (id, card_number, display_name, neighbourhood, birth_date, sex,
                                     height_cm, nurse_id, liaison_id, rehab)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            rows,
        )
    await registry.upsert_contacts(conn, CONTACTS.values())
    hashed = hash_password(PASSWORD, FAST)
    for user_id, (role, nbs, extra) in USERS.items():
        await access.upsert_user(
            conn,
            user_id=user_id,
            username=username(user_id),
            display_name=f"테스트 {user_id}",
            role=role,
            password_hash=hashed,
            neighbourhoods=nbs,
            **extra,
        )
    actors = {}
    for user_id in USERS:
        loaded = await access.load_actor(conn, user_id)
        assert loaded is not None
        actors[user_id] = loaded
    admin = actors["A01"]
    start = datetime.now(UTC) - timedelta(days=30)
    consent_ids = {}
    for rid in (IN_YAKSU, WITHDRAWN, IN_HWANGHAK):
        consent = await access.record_consent(
            conn,
            admin,
            resident_id=rid,
            purpose=access.ConsentPurpose.LIAISON_SHARING,
            recipient_roles=("liaison",),
            period_start=start,
            source="동의서 2026-001",
        )
        consent_ids[rid] = consent.id
    await access.withdraw_consent(conn, admin, consent_ids[WITHDRAWN])
    return World(actors=actors, consent_ids=consent_ids)
