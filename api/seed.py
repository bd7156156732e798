"""Demo logins and consents for ``daon demo`` (synthetic data only).

The composition root passes plain values (it owns the demo world); this module creates one
login per member of staff, a kiosk login per station, a service account and bearer token per
gateway, and an admin, all with the same printed demo password, and records the residents'
liaison-sharing consents. Idempotent: running it again resets the same accounts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from api import glossary
from api.security import DEFAULT_PARAMS, ScryptParams, hash_password
from api.store import access
from api.store.access import Role

DEMO_PASSWORD = "daon-demo-2026"


@dataclass(frozen=True, slots=True)
class StaffSpec:
    """One member of staff of the demo world."""

    user_id: str  # 'N01', 'L10-03', 'T01'
    display_name: str
    role: Role
    neighbourhoods: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DemoLogin:
    username: str
    role: Role
    display_name: str
    secret: str  # the password, or the bearer token of a service account
    home: str  # where to go after signing in

    def line(self) -> str:
        kind = "token" if self.role is Role.GATEWAY else "password"
        return f"{self.role:<9} {self.username:<24} {kind} {self.secret}  ({self.display_name})"


_HOME = {
    Role.NURSE: "/worklist",
    Role.ADMIN: "/worklist",
    Role.THERAPIST: "/rehab",
    Role.LIAISON: "/liaison",
    Role.STATION: "/station",
    Role.GATEWAY: "/fhir/metadata",
}


async def seed_demo_users(
    conn: AsyncConnection[Any],
    *,
    staff: Iterable[StaffSpec],
    stations: Iterable[tuple[str, str]],
    gateways: Iterable[str],
    password: str = DEMO_PASSWORD,
    params: ScryptParams = DEFAULT_PARAMS,
) -> tuple[DemoLogin, ...]:
    """Create the demo logins (stations as ``(station_id, name)``) and return them to print."""
    hashed = await asyncio.to_thread(hash_password, password, params)
    logins: list[DemoLogin] = []

    async def add(user_id: str, username: str, name: str, role: Role, **extra: Any) -> None:
        await access.upsert_user(
            conn,
            user_id=user_id,
            username=username,
            display_name=name,
            role=role,
            password_hash=hashed,
            **extra,
        )
        logins.append(DemoLogin(username, role, name, password, _HOME[role]))

    await add("admin", "admin", "관리자 / Administrator", Role.ADMIN)
    for member in staff:
        await add(
            member.user_id,
            member.user_id.lower(),
            member.display_name,
            member.role,
            neighbourhoods=member.neighbourhoods,
        )
    for station_id, name in stations:
        await add(
            f"kiosk-{station_id}",
            f"kiosk-{station_id}",
            f"{name} 키오스크 / kiosk",
            Role.STATION,
            station_id=station_id,
        )
    for gateway_id in gateways:
        user_id = f"gw-{gateway_id}"
        await access.upsert_user(
            conn,
            user_id=user_id,
            username=user_id,
            display_name=glossary.gateway(gateway_id),
            role=Role.GATEWAY,
            password_hash=None,
            gateway_id=gateway_id,
        )
        token = await access.create_token(
            conn, user_id, "데모 게이트웨이 / demo gateway", lifetime=timedelta(days=30)
        )
        logins.append(
            DemoLogin(user_id, Role.GATEWAY, gateway_id, token.token, _HOME[Role.GATEWAY])
        )
    return tuple(logins)


async def seed_demo_consents(
    conn: AsyncConnection[Any], consents: Sequence[tuple[str, bool]], *, admin_id: str = "admin"
) -> int:
    """Record a liaison-sharing consent for each ``(resident_id, consented)`` that consented and
    has none yet. Returns how many were recorded."""
    admin = await access.load_actor(conn, admin_id)
    if admin is None:
        raise access.NotFound(f"user {admin_id} (run seed_demo_users first)")
    recorded = 0
    start = datetime.now(UTC) - timedelta(days=60)
    for resident_id, consented in consents:
        if not consented:
            continue
        existing = await access.consents_for(conn, admin, resident_id)
        if any(c.purpose is access.ConsentPurpose.LIAISON_SHARING for c in existing):
            continue
        await access.record_consent(
            conn,
            admin,
            resident_id=resident_id,
            purpose=access.ConsentPurpose.LIAISON_SHARING,
            recipient_roles=("liaison",),
            period_start=start,
            period_end=start + timedelta(days=730),
            source="데모 동의서 / demo consent form",
        )
        recorded += 1
    return recorded
