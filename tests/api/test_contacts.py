"""Residents' contact details: stored as given, seen only within scope and consent, audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection

from api.store import access
from api.store.access import AccessDenied
from api.store.contacts import contacts, resident_contacts
from ingest.store import clinical, registry
from tests.api.conftest import Api
from tests.api.world import (
    CONTACTS,
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


async def test_contacts_read_back_as_written(conn: AsyncConnection[Any], world: World) -> None:
    found = await registry.read_contacts(conn, [*RESIDENTS, "R9999999"])
    assert set(found) == set(RESIDENTS)
    for rid, written in CONTACTS.items():
        got = found[rid]
        assert got.mobile_phone == written.mobile_phone
        assert got.home_phone == written.home_phone
        assert got.address_road == written.address_road
        assert got.address_detail == written.address_detail
        assert got.lives_alone == written.lives_alone
        assert got.contacts == written.contacts
    yaksu = found[IN_YAKSU]
    assert yaksu.neighbourhood == "약수동"
    assert yaksu.phone == "010-0000-1001"
    assert yaksu.address_text == "서울특별시 중구 다산로 11, 101호 (약수동)"


async def test_contact_persons_are_replaced_not_appended(
    conn: AsyncConnection[Any], world: World
) -> None:
    new = registry.ResidentContacts(
        resident_id=IN_YAKSU,
        mobile_phone=None,
        home_phone="02-0000-9999",
        contacts=(
            registry.Contact("이웃 김씨", "neighbour", "010-0000-7001"),
            registry.Contact("아들 박씨", "son", "010-0000-7002", guardian=True),
        ),
    )
    await registry.upsert_contacts(conn, [new])
    got = (await registry.read_contacts(conn, [IN_YAKSU]))[IN_YAKSU]
    assert got.contacts == new.contacts
    assert got.phone == "02-0000-9999"  # no mobile: home is the number to call
    assert got.address_text is None


@pytest.mark.parametrize("phone", ["01000001234", "+82-10-0000-1234", "010-0000-123", "phone"])
async def test_malformed_phone_numbers_are_refused(
    conn: AsyncConnection[Any], world: World, phone: str
) -> None:
    bad = registry.ResidentContacts(resident_id=IN_YAKSU, mobile_phone=phone)
    with pytest.raises(psycopg.errors.CheckViolation):
        await registry.upsert_contacts(conn, [bad])


async def test_unknown_relationship_is_refused(conn: AsyncConnection[Any], world: World) -> None:
    bad = registry.ResidentContacts(
        resident_id=IN_YAKSU, contacts=(registry.Contact("누구", "boss", "010-0000-1111"),)
    )
    with pytest.raises(psycopg.errors.CheckViolation):
        await registry.upsert_contacts(conn, [bad])


# Who sees which resident's contacts: the scope of tests/api/world.py, written out by hand.
EXPECTED = {
    "A01": set(RESIDENTS),
    "N01": {IN_YAKSU, WITHDRAWN, NO_LIAISON},
    "N02": {IN_HWANGHAK},  # another neighbourhood's nurse sees none of 약수동
    "T01": {IN_YAKSU, NO_LIAISON},
    "L10-01": {IN_YAKSU},  # consented only: not R0000002 (withdrew), not R0000004 (none)
    "S-yaksu-1": set(),  # a station kiosk never shows phone numbers
    "G-yaksu-1": set(),
}


@pytest.mark.parametrize("user_id", sorted(EXPECTED))
async def test_contacts_follow_scope_and_consent(
    conn: AsyncConnection[Any], world: World, user_id: str
) -> None:
    found = await contacts(conn, world.actor(user_id), RESIDENTS)
    assert set(found) == EXPECTED[user_id]


async def test_liaison_loses_contacts_when_consent_is_withdrawn(
    conn: AsyncConnection[Any], world: World
) -> None:
    liaison = world.actor("L10-01")
    assert (await resident_contacts(conn, liaison, IN_YAKSU)).phone == "010-0000-1001"
    await access.withdraw_consent(conn, liaison, world.consent_ids[IN_YAKSU])
    assert await contacts(conn, liaison, [IN_YAKSU]) == {}
    with pytest.raises(AccessDenied):
        await resident_contacts(conn, liaison, IN_YAKSU)


async def test_other_neighbourhoods_nurse_is_denied_one_resident(
    conn: AsyncConnection[Any], world: World
) -> None:
    with pytest.raises(AccessDenied):
        await resident_contacts(conn, world.actor("N02"), IN_YAKSU)


async def test_station_is_denied(conn: AsyncConnection[Any], world: World) -> None:
    with pytest.raises(AccessDenied):
        await resident_contacts(conn, world.actor("S-yaksu-1"), IN_YAKSU)


async def test_every_read_is_audited_per_resident(conn: AsyncConnection[Any], world: World) -> None:
    await contacts(conn, world.actor("N01"), RESIDENTS)
    cur = await conn.execute(
        "SELECT resident_id FROM audit_event WHERE agent_user_id = 'N01' "
        "AND entity = 'Patient.contact' ORDER BY resident_id"
    )
    assert [r[0] for r in await cur.fetchall()] == sorted([IN_YAKSU, WITHDRAWN, NO_LIAISON])


# --- on the pages -------------------------------------------------------------------------


async def _flag_and_group(conn: AsyncConnection[Any]) -> None:
    """A critical flag and a visiting group for R0000001 and R0000002 (worklist, visit plan)."""
    now = datetime.now(UTC)
    await clinical.save_flags(
        conn,
        [
            clinical.FlagRow(
                id=None,
                resident_id=rid,
                rule="BP-CRISIS",
                rule_set="t",
                severity="critical",
                recipients=["nurse", "liaison"],
                state="open",
                opened_at=now,
                alerted_at=now,
                summary="SBP 186 mmHg",
            )
            for rid in (IN_YAKSU, WITHDRAWN)
        ],
    )
    await conn.execute(
        """INSERT INTO visiting_group (resident_id, grp, since, visits, reason, next_visit_due,
                                       rule_set, updated_at)
           SELECT unnest(%s::text[]), 'intensive', current_date, 'monthly', 'test',
                  current_date, 't', now()""",
        ([IN_YAKSU, WITHDRAWN],),
    )


def test_staff_pages_show_phones_and_address(api: Api) -> None:
    api.db(_flag_and_group)
    api.login_as("N01")
    worklist = api.client.get("/worklist").text
    assert 'href="tel:010-0000-1001"' in worklist  # R0000001's mobile on her row
    assert "010-0000-3001" in worklist  # and her guardian's
    resident = api.client.get(f"/residents/{IN_YAKSU}").text
    for text in ("010-0000-1001", "02-0000-2001", "서울특별시 중구 다산로 11, 101호 (약수동)",
                 "보호자1", "딸", "혼자 사심"):  # fmt: skip
        assert text in resident, text
    visits = api.client.get("/visits").text
    assert "010-0000-1001" in visits
    assert "다산로 11, 101호" in visits
    # another neighbourhood's nurse sees none of them anywhere
    api.login_as("N02")
    assert "010-0000-1001" not in api.client.get("/worklist").text
    assert "010-0000-1001" not in api.client.get("/visits").text


def test_liaison_sees_contacts_of_consented_residents_only_and_never_values(api: Api) -> None:
    api.db(_flag_and_group)
    api.login_as("L10-01")
    page = api.client.get("/liaison").text
    assert "010-0000-1001" in page  # R0000001: consented
    assert "다산로 11, 101호" in page
    assert "010-0000-1002" not in page  # R0000002: withdrew
    assert "186" not in page  # no values, only the plain-language need
    assert "mmHg" not in page
    liaison = api.world.actor("L10-01")

    async def withdraw(conn: AsyncConnection[Any]) -> None:
        await access.withdraw_consent(conn, liaison, api.world.consent_ids[IN_YAKSU])

    plan = api.client.get("/visits").text  # her own monthly visit plan
    assert "010-0000-1001" in plan
    assert "010-0000-1002" not in plan

    api.db(withdraw)
    assert "010-0000-1001" not in api.client.get("/liaison").text
    assert "010-0000-1001" not in api.client.get("/visits").text
