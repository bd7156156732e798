"""The single-statement reads of issue 17 (``GET /Patient/{id}``, ``Observation/$lastn``): the
scope check, the read and the audit rows travel in one statement, committed in the same round
trip. What must not change: who may read what, and that every read leaves its audit rows,
durable, before anything is sent; a read whose audit row cannot be written or committed sends
nothing.

Expected audit rows follow the audit trail's definition (README "Security", migration 0300: one
row per resident read, DICOM 110110 patient record, FHIR restful interaction, v3 PurposeOfUse
TREAT for nurses, the SHA-256 of the client address; rows of one request share its transaction).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import AsyncConnection

from api.main import create_app
from api.store import access, queries
from tests.api import readings
from tests.api.conftest import Api, make_config
from tests.api.world import IN_HWANGHAK, IN_YAKSU, NO_LIAISON

pytestmark = pytest.mark.db

NAME = "김하늘"  # IN_YAKSU's name (tests/api/world.py)
PHONE = "010-0000-1001"  # IN_YAKSU's mobile number (tests/api/world.py CONTACTS)
TESTCLIENT = hashlib.sha256(b"testclient").digest()  # TestClient's client address
PATIENT = "/fhir/Patient/{rid}"
LASTN = "/fhir/Observation/$lastn?patient={rid}"

AuditRow = tuple[Any, ...]


def audit_rows(api: Api, where: str, params: tuple[Any, ...]) -> list[AuditRow]:
    """Audit rows, read on a connection of their own (so only committed rows are seen)."""

    async def work(conn: AsyncConnection[Any]) -> list[AuditRow]:
        cur = await conn.execute(
            "SELECT type_code, subtype, action, outcome, agent_user_id, agent_role,"
            " purpose_of_use, resident_id, entity, client_digest, txid FROM audit_event"
            f" WHERE {where} ORDER BY id".encode(),
            params,
        )
        return [tuple(row) for row in await cur.fetchall()]

    return api.db(work)


@pytest.fixture
def bp_151(api: Api) -> None:
    """A blood pressure of 151/93 a week ago for IN_YAKSU and IN_HWANGHAK."""
    week_ago = datetime.now(UTC) - timedelta(days=7)

    async def work(conn: AsyncConnection[Any]) -> None:
        for rid in (IN_YAKSU, IN_HWANGHAK):
            await readings.blood_pressure(conn, rid, week_ago, 151, 93)

    api.db(work)


def test_a_patient_read_leaves_its_two_audit_rows_in_one_transaction(api: Api) -> None:
    response = api.client.get(PATIENT.format(rid=IN_YAKSU), headers=api.bearer("N01"))
    assert response.status_code == 200, response.text
    assert NAME in response.text
    assert PHONE in response.text
    found = audit_rows(api, "agent_user_id = %s", ("N01",))
    expected = [
        ("110110", "read", "R", "0", "N01", "nurse", "TREAT", IN_YAKSU, entity, TESTCLIENT)
        for entity in ("Patient", "Patient.contact")
    ]
    assert [row[:10] for row in found] == expected
    assert found[0][10] is not None
    assert found[0][10] == found[1][10]


def test_lastn_leaves_its_audit_row(api: Api, bp_151: None) -> None:
    response = api.client.get(LASTN.format(rid=IN_YAKSU), headers=api.bearer("N01"))
    assert response.status_code == 200, response.text
    assert '"value": 151' in response.text
    found = audit_rows(api, "agent_user_id = %s", ("N01",))
    assert [row[:10] for row in found] == [
        (
            "110110",
            "operation",
            "E",
            "0",
            "N01",
            "nurse",
            "TREAT",
            IN_YAKSU,
            "Observation/$lastn",
            TESTCLIENT,
        )
    ]


@pytest.mark.parametrize("path", [PATIENT, LASTN])
@pytest.mark.parametrize(
    ("user", "rid", "denial_row"),
    [
        ("N01", IN_HWANGHAK, True),  # another neighbourhood's resident
        ("T01", IN_HWANGHAK, True),  # the therapist: not a rehabilitation-room resident
        ("L10-01", IN_YAKSU, True),  # a liaison officer, consented resident: no values
        ("G-yaksu-1", IN_YAKSU, True),  # a gateway's service account
        ("S-yaksu-1", IN_YAKSU, True),  # a station kiosk
        ("N01", "R9999999", False),  # nobody: the same answer as "not yours"
    ],
)
def test_reads_out_of_scope_send_nothing_and_leave_no_read_audit(
    api: Api, bp_151: None, path: str, user: str, rid: str, denial_row: bool
) -> None:
    response = api.client.get(path.format(rid=rid), headers=api.bearer(user))
    assert response.status_code == 403, response.text
    for secret in ("151", "김", "010-0000"):
        assert secret not in response.text
    found = audit_rows(api, "agent_user_id = %s", (user,))
    assert [row for row in found if row[3] == "0"] == []  # no successful read recorded
    assert [row[3] for row in found] == (["4"] if denial_row else [])


@pytest.mark.parametrize("path", [PATIENT, LASTN])
def test_a_resident_with_no_nurse_outside_her_neighbourhood_is_a_recorded_denial(
    api: Api, bp_151: None, path: str
) -> None:
    """The nurse scope is "her own residents or her neighbourhoods": for a resident of another
    neighbourhood with no nurse assigned it is NULL in SQL, which must deny (and record the
    denial) like any other resident outside her scope, not pass for "no such resident"."""

    async def no_nurse(conn: AsyncConnection[Any]) -> None:
        await conn.execute("UPDATE resident SET nurse_id = NULL WHERE id = %s", (IN_HWANGHAK,))

    api.db(no_nurse)
    response = api.client.get(path.format(rid=IN_HWANGHAK), headers=api.bearer("N01"))
    assert response.status_code == 403, response.text
    assert "151" not in response.text
    found = audit_rows(api, "agent_user_id = %s", ("N01",))
    assert [(row[3], row[7]) for row in found] == [("4", IN_HWANGHAK)]


def test_a_therapist_reads_her_rehabilitation_residents(api: Api, bp_151: None) -> None:
    for rid in (IN_YAKSU, NO_LIAISON):  # the rehabilitation-room residents
        response = api.client.get(PATIENT.format(rid=rid), headers=api.bearer("T01"))
        assert response.status_code == 200, response.text
    response = api.client.get(LASTN.format(rid=IN_YAKSU), headers=api.bearer("T01"))
    assert response.status_code == 200
    assert '"value": 151' in response.text
    found = audit_rows(api, "agent_user_id = %s AND outcome = '0'", ("T01",))
    assert [(row[7], row[8], row[6]) for row in found] == [
        (IN_YAKSU, "Patient", "TREAT"),
        (IN_YAKSU, "Patient.contact", "TREAT"),
        (NO_LIAISON, "Patient", "TREAT"),
        (NO_LIAISON, "Patient.contact", "TREAT"),
        (IN_YAKSU, "Observation/$lastn", "TREAT"),
    ]


def test_forged_expired_and_revoked_tokens_read_nothing(api: Api, bp_151: None) -> None:
    async def tokens(conn: AsyncConnection[Any]) -> tuple[str, str]:
        expired = await access.create_token(conn, "N01", "old", lifetime=timedelta(seconds=-1))
        revoked = await access.create_token(conn, "N01", "lost")
        await access.revoke_token(conn, api.world.actor("A01"), revoked.token_id)
        return expired.token, revoked.token

    expired, revoked = api.db(tokens)
    genuine = api.tokens["N01"]
    forged = genuine[: genuine.rindex("_") + 1] + "A" * 43  # a real token id, a guessed secret
    for token in (forged, expired, revoked, "daon_00000000_" + "B" * 43, ""):
        for path in (PATIENT, LASTN):
            response = api.client.get(
                path.format(rid=IN_YAKSU), headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 401, (token, response.text)
            assert NAME not in response.text
            assert "151" not in response.text
    assert audit_rows(api, "subtype IN ('read', 'operation')", ()) == []


@pytest.fixture
def strict_client(api: Api) -> Iterator[TestClient]:
    """A second app on the same database whose server errors become responses (as uvicorn
    sends them) instead of exceptions raised into the test."""
    with TestClient(
        create_app(make_config(api.url)), raise_server_exceptions=False, follow_redirects=False
    ) as client:
        yield client


def _install(api: Api, sql: str) -> None:
    async def work(conn: AsyncConnection[Any]) -> None:
        await conn.execute(sql.encode())

    api.db(work)


FAIL_FUNCTION = """CREATE FUNCTION test_audit_fails() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'audit store refuses the row'; END $$"""


@pytest.mark.parametrize("when", ["insert", "commit"])
def test_a_read_whose_audit_row_is_not_durable_sends_nothing(
    api: Api, strict_client: TestClient, bp_151: None, when: str
) -> None:
    """The audit row's INSERT fails, or the transaction's COMMIT fails (a deferred constraint
    trigger raises at commit): the read answers 500 with none of the resident's data, and no
    audit row of it remains. Once the audit store works again, so do the reads."""
    _install(api, FAIL_FUNCTION)
    if when == "insert":
        trigger = "CREATE TRIGGER test_audit_fails BEFORE INSERT ON audit_event"
    else:
        trigger = (
            "CREATE CONSTRAINT TRIGGER test_audit_fails AFTER INSERT ON audit_event"
            " DEFERRABLE INITIALLY DEFERRED"
        )
    _install(
        api,
        f"{trigger} FOR EACH ROW WHEN (NEW.outcome = '0') EXECUTE FUNCTION test_audit_fails()",
    )
    headers = api.bearer("N01")
    for path in (PATIENT, LASTN):
        response = strict_client.get(path.format(rid=IN_YAKSU), headers=headers)
        assert response.status_code == 500, response.text
        for secret in (NAME, PHONE, "151"):
            assert secret not in response.text
    reads = "outcome = '0' AND subtype IN ('read', 'operation')"
    assert audit_rows(api, reads, ()) == []
    _install(api, "DROP TRIGGER test_audit_fails ON audit_event")
    for path in (PATIENT, LASTN):
        assert strict_client.get(path.format(rid=IN_YAKSU), headers=headers).status_code == 200
    assert len(audit_rows(api, reads, ())) == 3


async def test_the_read_commits_in_its_own_call_even_as_a_transactions_first_statement(
    api: Api, bp_151: None
) -> None:
    """``commit=True`` commits although the read is the transaction's first statement (in
    pipeline mode nothing has reached the server when COMMIT is queued)."""
    nurse = api.world.actor("N01")
    async with await AsyncConnection.connect(api.url) as conn:
        found = await queries.read_patient(conn, nurse, IN_YAKSU, commit=True)
        assert found.record.display_name == NAME
        assert conn.info.transaction_status is psycopg.pq.TransactionStatus.IDLE
        latest = await queries.last_n(conn, nurse, IN_YAKSU, commit=True)
        assert len(latest) == 1
        assert conn.info.transaction_status is psycopg.pq.TransactionStatus.IDLE
    async with await AsyncConnection.connect(api.url) as other:
        cur = await other.execute(
            "SELECT entity FROM audit_event WHERE agent_user_id = 'N01' ORDER BY id"
        )
        assert [r[0] for r in await cur.fetchall()] == [
            "Patient",
            "Patient.contact",
            "Observation/$lastn",
        ]
