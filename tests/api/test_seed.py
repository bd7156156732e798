"""Demo seeding: logins for every role, tokens for gateways, consents; idempotent."""

from __future__ import annotations

from typing import Any

import pytest

from api.security import verify_password
from api.seed import StaffSpec, seed_demo_consents, seed_demo_users
from api.store import access
from api.store.access import Role
from tests.api.conftest import run_db
from tests.api.world import FAST, IN_HWANGHAK, NO_LIAISON

pytestmark = pytest.mark.db


def test_seed_creates_working_logins_and_consents(world_url) -> None:
    url, _ = world_url
    staff = [
        StaffSpec("N07", "간호사 7", Role.NURSE, ("약수동",)),
        StaffSpec("T02", "재활 2", Role.THERAPIST, ("황학동",)),
    ]

    async def work(conn: Any) -> tuple[Any, ...]:
        first = await seed_demo_users(
            conn,
            staff=staff,
            stations=[("yaksu-station-1", "약수 1번")],
            gateways=["yaksu-gw-1"],
            password="pw-1",
            params=FAST,
        )
        again = await seed_demo_users(
            conn,
            staff=staff,
            stations=[("yaksu-station-1", "약수 1번")],
            gateways=["yaksu-gw-1"],
            password="pw-1",
            params=FAST,
        )
        consents = await seed_demo_consents(conn, [(NO_LIAISON, True), (IN_HWANGHAK, True)])
        repeat = await seed_demo_consents(conn, [(NO_LIAISON, True)])
        creds = await access.credentials(conn, "kiosk-yaksu-station-1")
        kiosk = await access.load_actor(conn, "kiosk-yaksu-station-1")
        gateway_token = next(x.secret for x in first if x.role is Role.GATEWAY)
        gateway = await access.token_actor(conn, gateway_token)
        return first, again, consents, repeat, creds, kiosk, gateway

    first, again, consents, repeat, creds, kiosk, gateway = run_db(url, work)
    assert [x.username for x in first] == [x.username for x in again]
    assert {x.role for x in first} == {
        Role.ADMIN,
        Role.NURSE,
        Role.THERAPIST,
        Role.STATION,
        Role.GATEWAY,
    }
    assert creds is not None
    assert verify_password("pw-1", creds.password_hash)
    assert kiosk.station_id == "yaksu-station-1"
    assert gateway.gateway_id == "yaksu-gw-1"
    # R0000003 already had one (the world's); R0000004 gets its first; a rerun adds none
    assert (consents, repeat) == (1, 0)
