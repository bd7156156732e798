"""The access layer on the real database: scope, consent, sessions, tokens, throttling, audit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import AsyncConnection

from api.security import DEFAULT_PARAMS, hash_password, needs_rehash, verify_password
from api.store import access
from api.store.access import AccessDenied, Capability, NotFound, Role
from tests.api.world import (
    FAST,
    IN_HWANGHAK,
    IN_YAKSU,
    NO_LIAISON,
    RESIDENTS,
    WITHDRAWN,
    World,
    build_world,
)

pytestmark = pytest.mark.db


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[AsyncConnection[Any]]:
    async with await AsyncConnection.connect(db_url, autocommit=True) as c:
        yield c


@pytest.fixture
async def world(conn: AsyncConnection[Any]) -> World:
    return await build_world(conn)


async def visible(conn: AsyncConnection[Any], actor: access.Actor) -> set[str]:
    where, params = access.scope_predicate(actor)
    cur = await conn.execute(f"SELECT r.id FROM resident r WHERE {where}".encode(), params)
    return {row[0] for row in await cur.fetchall()}


# The expected scopes follow the rules in the api.store.access docstring and the world's
# layout (tests/api/world.py), written out by hand.
EXPECTED_SCOPE = {
    "A01": set(RESIDENTS),
    "N01": {IN_YAKSU, WITHDRAWN, NO_LIAISON},  # 약수동 and assigned
    "N02": {IN_HWANGHAK},
    "T01": {IN_YAKSU, NO_LIAISON},  # rehab-room residents
    "L10-01": {IN_YAKSU},  # assigned with active consent; R0000002 withdrew
    "S-yaksu-1": set(),  # nobody checked in yet
    "G-yaksu-1": set(),
}


@pytest.mark.parametrize("user_id", sorted(EXPECTED_SCOPE))
async def test_scope_by_role(conn, world: World, user_id: str) -> None:
    assert await visible(conn, world.actor(user_id)) == EXPECTED_SCOPE[user_id]


async def test_withdrawal_takes_effect_on_the_next_query(conn, world: World) -> None:
    liaison = world.actor("L10-01")
    assert IN_YAKSU in await visible(conn, liaison)
    await access.withdraw_consent(conn, liaison, world.consent_ids[IN_YAKSU])
    assert await visible(conn, liaison) == set()


async def test_expired_consent_no_longer_counts(conn, world: World) -> None:
    await conn.execute(
        "UPDATE consent SET period_end = now() - interval '1 second', "
        "period_start = now() - interval '1 year' WHERE resident_id = %s",
        (IN_YAKSU,),
    )
    assert await visible(conn, world.actor("L10-01")) == set()


async def test_consent_for_another_purpose_does_not_open_liaison_scope(conn, world: World) -> None:
    await access.record_consent(
        conn,
        world.actor("A01"),
        resident_id=NO_LIAISON,
        purpose=access.ConsentPurpose.CARE_COORDINATION,
        recipient_roles=("nurse",),
        period_start=datetime.now(UTC) - timedelta(days=1),
    )
    await conn.execute("UPDATE resident SET liaison_id = 'L10-01' WHERE id = %s", (NO_LIAISON,))
    assert await visible(conn, world.actor("L10-01")) == {IN_YAKSU}


async def test_liaison_may_withdraw_only_for_assigned_residents(conn, world: World) -> None:
    with pytest.raises(AccessDenied):
        await access.withdraw_consent(conn, world.actor("L10-01"), world.consent_ids[IN_HWANGHAK])


async def test_liaison_may_not_record_consent(conn, world: World) -> None:
    with pytest.raises(AccessDenied):
        await access.record_consent(
            conn,
            world.actor("L10-01"),
            resident_id=IN_YAKSU,
            purpose=access.ConsentPurpose.LIAISON_SHARING,
            recipient_roles=("liaison",),
            period_start=datetime.now(UTC),
        )


async def test_withdrawing_twice_is_refused(conn, world: World) -> None:
    with pytest.raises(access.InvalidRequest):
        await access.withdraw_consent(conn, world.actor("A01"), world.consent_ids[WITHDRAWN])


async def test_require_resident_distinguishes_missing_from_forbidden(conn, world: World) -> None:
    nurse = world.actor("N02")
    with pytest.raises(NotFound):
        await access.require_resident(conn, nurse, "R9999999", Capability.READ_HEALTH)
    with pytest.raises(AccessDenied) as denied:
        await access.require_resident(conn, nurse, IN_YAKSU, Capability.READ_HEALTH)
    assert denied.value.resident == IN_YAKSU
    await access.require_resident(conn, nurse, IN_HWANGHAK, Capability.READ_HEALTH)


async def test_liaison_never_has_health_capability(conn, world: World) -> None:
    with pytest.raises(AccessDenied):
        await access.require_resident(conn, world.actor("L10-01"), IN_YAKSU, Capability.READ_HEALTH)


async def test_station_scope_opens_with_a_checkin_and_closes_after_it(conn, world: World) -> None:
    station = world.actor("S-yaksu-1")
    await conn.execute(
        """INSERT INTO station_checkin (station_id, gateway_id, resident_id, by_user_id, expires_at)
           VALUES ('yaksu-station-1', 'yaksu-gw-1', %s, 'S-yaksu-1', now() + interval '5 min')""",
        (IN_HWANGHAK,),
    )
    assert await visible(conn, station) == {IN_HWANGHAK}
    await conn.execute("UPDATE station_checkin SET ended_at = now()")
    assert await visible(conn, station) == set()


async def test_sessions_expire_and_end(conn, world: World) -> None:
    session = await access.create_session(conn, "N01", lifetime=timedelta(hours=1))
    info = await access.session_actor(conn, session.token, idle=timedelta(minutes=30))
    assert info is not None
    assert info.actor.user_id == "N01"
    assert info.csrf_token == session.csrf_token
    assert await access.session_actor(conn, "not-a-token", idle=timedelta(minutes=30)) is None
    await conn.execute("UPDATE user_session SET last_seen_at = now() - interval '31 minutes'")
    assert await access.session_actor(conn, session.token, idle=timedelta(minutes=30)) is None
    session = await access.create_session(conn, "N01", lifetime=timedelta(hours=1))
    await access.end_session(conn, session.token)
    assert await access.session_actor(conn, session.token, idle=timedelta(minutes=30)) is None


async def test_session_tokens_are_stored_hashed(conn, world: World) -> None:
    session = await access.create_session(conn, "N01", lifetime=timedelta(hours=1))
    cur = await conn.execute("SELECT token_hash FROM user_session")
    stored = [bytes(r[0]) for r in await cur.fetchall()]
    assert session.token.encode() not in stored
    assert access.digest(session.token) in stored


async def test_deactivated_user_loses_sessions_and_tokens(conn, world: World) -> None:
    session = await access.create_session(conn, "N01", lifetime=timedelta(hours=1))
    token = await access.create_token(conn, "N01", "tablet")
    await conn.execute("UPDATE app_user SET active = false WHERE id = 'N01'")
    assert await access.session_actor(conn, session.token, idle=timedelta(hours=1)) is None
    assert await access.token_actor(conn, token.token) is None


async def test_tokens_can_be_revoked_and_expire(conn, world: World) -> None:
    token = await access.create_token(conn, "G-yaksu-1", "gateway")
    actor = await access.token_actor(conn, token.token)
    assert actor is not None
    assert actor.role is Role.GATEWAY
    await access.revoke_token(conn, world.actor("A01"), token.token_id)
    assert await access.token_actor(conn, token.token) is None
    short = await access.create_token(conn, "G-yaksu-1", "gw", lifetime=timedelta(seconds=-1))
    assert await access.token_actor(conn, short.token) is None


async def test_audit_records_one_event_per_resident(conn, world: World) -> None:
    nurse = world.actor("N01").with_client("192.0.2.10")
    await access.record_audit(
        conn,
        nurse,
        subtype="search-type",
        action="E",
        entity="Observation?patient",
        residents=(IN_YAKSU, NO_LIAISON, IN_YAKSU),
    )
    events = await access.audit_events(conn, world.actor("A01"), agent_user_id="N01")
    assert [(e.resident_id, e.purpose_of_use, e.agent_role) for e in events] == [
        (NO_LIAISON, "TREAT", "nurse"),
        (IN_YAKSU, "TREAT", "nurse"),
    ]
    cur = await conn.execute("SELECT client_digest FROM audit_event WHERE agent_user_id = 'N01'")
    assert {bytes(r[0]) for r in await cur.fetchall()} == {access.digest("192.0.2.10")}


async def test_only_admins_read_the_audit_trail(conn, world: World) -> None:
    for user_id in ("N01", "T01", "L10-01", "S-yaksu-1", "G-yaksu-1"):
        with pytest.raises(AccessDenied):
            await access.audit_events(conn, world.actor(user_id))


async def test_reading_the_audit_trail_is_audited(conn, world: World) -> None:
    await access.audit_events(conn, world.actor("A01"), resident_id=IN_YAKSU)
    events = await access.audit_events(conn, world.actor("A01"), agent_user_id="A01", limit=1)
    assert events[0].entity == "AuditEvent"
    assert events[0].resident_id == IN_YAKSU


async def test_consent_changes_are_audited(conn, world: World) -> None:
    events = await access.audit_events(conn, world.actor("A01"), resident_id=WITHDRAWN)
    assert [e.entity for e in events if e.entity.startswith("Consent")] == [
        "Consent/withdraw",
        "Consent",
    ]


def test_password_hash_roundtrip_and_salt() -> None:
    first = hash_password("비밀번호 123", FAST)
    second = hash_password("비밀번호 123", FAST)
    assert first != second  # per-user salt
    assert verify_password("비밀번호 123", first)
    assert not verify_password("비밀번호 124", first)
    assert not verify_password("x", "md5$abc")
    assert not verify_password("x", None)


def test_default_work_factor_is_the_owasp_minimum() -> None:
    # OWASP Password Storage Cheat Sheet: scrypt N=2^17 (128 MiB), r=8, p=1.
    assert (DEFAULT_PARAMS.n, DEFAULT_PARAMS.r, DEFAULT_PARAMS.p) == (2**17, 8, 1)
    assert needs_rehash(hash_password("x", FAST))
    assert not needs_rehash(hash_password("x", FAST), FAST)
