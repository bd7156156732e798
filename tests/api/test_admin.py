"""Administration without a terminal (issue 14.7) and new residents (14.4): the account page,
users, API tokens, resident and device registration with CSV import, dead letters, the audit
page one line per request, and ``daon status`` counting only flags that reach a worklist.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest

from ingest import store
from ingest.pipeline import process_message
from ingest.store import clinical, registry
from ingest.store.observations import write_outcomes
from tests.api.conftest import Api, seoul_today
from tests.api.test_find import flag_row
from tests.api.world import IN_YAKSU, PASSWORD

pytestmark = pytest.mark.db

RESIDENTS_OF_N01 = ("R0000001", "R0000002", "R0000004")


def sign_in(api: Api, username: str, password: str) -> Any:
    api.client.cookies.clear()
    form = api.client.get("/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', form.text)
    assert token
    return api.client.post(
        "/login", data={"username": username, "password": password, "login_csrf": token[1]}
    )


def secret(page: str) -> str:
    found = re.search(r'<code class="secret">([^<]+)</code>', page)
    assert found, "no one-time secret on the page"
    return found[1]


def test_everyone_changes_their_own_password(api: Api) -> None:
    csrf = api.login_as("L10-01")
    assert "비밀번호 바꾸기" in api.client.get("/account").text
    wrong = api.client.post(
        "/account/password",
        data={"csrf_token": csrf, "current": "nope", "new": "a" * 12, "again": "a" * 12},
    )
    assert wrong.status_code == 400
    short = api.client.post(
        "/account/password",
        data={"csrf_token": csrf, "current": PASSWORD, "new": "short", "again": "short"},
    )
    assert short.status_code == 400
    done = api.client.post(
        "/account/password",
        data={
            "csrf_token": csrf,
            "current": PASSWORD,
            "new": "새 비밀번호 2026!",
            "again": "새 비밀번호 2026!",
        },
    )
    assert done.status_code == 303
    assert sign_in(api, "l10-01", PASSWORD).status_code == 401
    assert sign_in(api, "l10-01", "새 비밀번호 2026!").status_code == 303


def test_admin_creates_edits_deactivates_and_resets_users(api: Api) -> None:
    csrf = api.login_as("A01")
    created = api.client.post(
        "/admin/users",
        data={
            "csrf_token": csrf,
            "user_id": "N13",
            "username": "n13",
            "display_name": "새 간호사",
            "role": "nurse",
            "neighbourhood": ["약수동", "황학동"],
        },
    )
    assert created.status_code == 200
    temporary = secret(created.text)
    assert temporary not in str(created.url)  # never in a URL
    assert sign_in(api, "n13", temporary).headers["location"] == "/worklist"
    csrf = api.login_as("A01")
    page = api.client.get("/admin/users").text
    assert "새 간호사" in page
    assert "약수동, 황학동" in page
    # role and neighbourhoods
    edited = api.client.post(
        "/admin/users/N13",
        data={
            "csrf_token": csrf,
            "display_name": "새 간호사",
            "role": "nurse",
            "neighbourhood": "약수동",
        },
    )
    assert edited.status_code == 303
    # caseload: R0000001 becomes N13's
    assigned = api.client.post(
        "/admin/users/N13/caseload", data={"csrf_token": csrf, "residents": "r0000001, R0000004"}
    )
    assert assigned.headers["location"].endswith("caseload-2")

    async def nurse_of(conn: Any) -> Any:
        cur = await conn.execute("SELECT nurse_id FROM resident WHERE id = %s", (IN_YAKSU,))
        return (await cur.fetchone())[0]

    assert api.db(nurse_of) == "N13"
    # deactivation stops the user's sign-in at once
    api.client.post("/admin/users/N13/active", data={"csrf_token": csrf, "active": "false"})
    assert sign_in(api, "n13", temporary).status_code == 401
    csrf = api.login_as("A01")
    api.client.post("/admin/users/N13/active", data={"csrf_token": csrf, "active": "true"})
    reset = api.client.post("/admin/users/N13/password", data={"csrf_token": csrf})
    again = secret(reset.text)
    assert again != temporary
    assert sign_in(api, "n13", again).status_code == 303
    # only admins
    csrf = api.login_as("N01")
    assert api.client.get("/admin/users").status_code == 403
    assert (
        api.client.post("/admin/users/N02/password", data={"csrf_token": csrf}).status_code == 403
    )


def test_tokens_are_issued_with_an_expiry_listed_and_revoked(api: Api) -> None:
    csrf = api.login_as("A01")
    issued = api.client.post(
        "/admin/tokens", data={"csrf_token": csrf, "user_id": "N01", "name": "EMR", "days": "30"}
    )
    assert issued.status_code == 200
    token = secret(issued.text)
    headers = {"Authorization": f"Bearer {token}"}
    assert api.client.get(f"/fhir/Patient/{IN_YAKSU}", headers=headers).status_code == 200
    listed = api.client.get("/admin/tokens").text
    token_id = token.split("_")[1]
    assert token_id in listed
    assert token not in listed  # shown once only
    today = seoul_today()
    expires = (today + timedelta(days=30)).isoformat()
    assert expires in listed or (today + timedelta(days=29)).isoformat() in listed
    api.client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf})
    api.client.cookies.clear()
    assert api.client.get(f"/fhir/Patient/{IN_YAKSU}", headers=headers).status_code == 401


def test_registering_new_residents_creates_their_contact_task(api: Api) -> None:
    csrf = api.login_as("A01")
    moved = (seoul_today() - timedelta(days=2)).isoformat()
    welfare = api.client.post(
        "/admin/residents",
        data={
            "csrf_token": csrf,
            "id": "R0000101",
            "display_name": "전입수급",
            "neighbourhood": "약수동",
            "liaison_id": "L10-01",
            "nurse_id": "N01",
            "moved_in_on": moved,
            "welfare_recipient": "true",
            "consent": "true",
        },
    )
    assert welfare.status_code == 303
    csv_text = (
        "id,display_name,neighbourhood,nurse_id,moved_in_on\n"
        f"R0000102,전입일반,약수동,N01,{moved}\n"
        "R0000103,기존주민,약수동,N01,\n"
    )
    imported = api.client.post(
        "/admin/residents/import",
        data={"csrf_token": csrf},
        files={"file": ("residents.csv", csv_text.encode(), "text/csv")},
    )
    assert imported.headers["location"].endswith("imported-2-0")
    bad = api.client.post(
        "/admin/residents/import",
        data={"csrf_token": csrf},
        files={
            "file": ("r.csv", b"id,display_name,neighbourhood\nR0000104,a,b\nX1,c,d\n", "text/csv")
        },
    )
    assert bad.status_code == 400
    assert "3" in bad.text  # names the bad line

    async def tasks(conn: Any) -> list[tuple[Any, ...]]:
        cur = await conn.execute(
            "SELECT resident_id, role, owner_id, due_at::date FROM follow_up_task"
            " WHERE flag_id IS NULL ORDER BY resident_id"
        )
        return await cur.fetchall()

    due = date.fromisoformat(moved) + timedelta(days=7)
    assert api.db(tasks) == [
        ("R0000101", "liaison", "L10-01", due),  # benefit recipient: the liaison officer visits
        ("R0000102", "nurse", "N01", due),  # everyone else: the health branch calls
    ]
    # registering again does not make a second task
    api.client.post(
        "/admin/residents/import",
        data={"csrf_token": csrf},
        files={"file": ("residents.csv", csv_text.encode(), "text/csv")},
    )
    assert len(api.db(tasks)) == 2
    # each sees it where they work
    api.login_as("N01")
    worklist = api.client.get("/worklist").text
    assert "전입일반" in worklist
    assert "건강 요구도 조사" in worklist
    api.login_as("L10-01")
    assert "전입수급" in api.client.get("/liaison").text


def test_devices_registered_and_dead_letters_replayed_or_discarded(api: Api) -> None:
    csrf = api.login_as("A01")
    device = api.client.post(
        "/admin/devices",
        data={
            "csrf_token": csrf,
            "device_id": "AA:BB:CC:00:11:22",
            "kind": "glucose",
            "owner_id": IN_YAKSU,
        },
    )
    assert device.status_code == 303

    async def letters(conn: Any) -> None:
        """Two malformed messages, dead-lettered by ingest's own pipeline."""
        snapshot = await registry.load_registry(conn)
        for raw in (b"{bad", b"{worse"):
            outcome = process_message("daon/gw/yaksu-gw-1/readings", raw, snapshot)
            async with conn.transaction():
                await write_outcomes(conn, [outcome])

    api.db(letters)
    page = api.client.get("/admin/dead-letters").text
    assert "{bad" in page
    ids = re.findall(r'action="/admin/dead-letters/(\d+)/replay"', page)
    assert len(ids) == 2
    again = api.client.post(f"/admin/dead-letters/{ids[0]}/replay", data={"csrf_token": csrf})
    assert "still-malformed_json" in again.headers["location"]  # fails the same way: kept
    no_reason = api.client.post(f"/admin/dead-letters/{ids[1]}/discard", data={"csrf_token": csrf})
    assert no_reason.status_code == 400
    api.client.post(
        f"/admin/dead-letters/{ids[1]}/discard", data={"csrf_token": csrf, "reason": "시험 메시지"}
    )

    async def states(conn: Any) -> list[tuple[Any, ...]]:
        cur = await conn.execute(
            "SELECT id::text, state, resolved_by, resolution_note FROM dead_letter ORDER BY id"
        )
        return await cur.fetchall()

    assert sorted(api.db(states)) == sorted(
        [(ids[0], "new", None, None), (ids[1], "dismissed", "A01", "시험 메시지")]
    )
    dismissed = api.client.get("/admin/dead-letters?state=dismissed").text
    assert ("{bad" in dismissed) != ("{worse" in dismissed)  # the one discarded, kept as sent
    assert "시험 메시지" not in api.client.get("/admin/dead-letters").text


def test_audit_page_is_one_line_per_request_paged_and_filtered(api: Api) -> None:
    async def flags(conn: Any) -> None:
        rows = [flag_row(r, "BP-HOME-HTN", "routine", ["nurse"], 5) for r in RESIDENTS_OF_N01]
        await clinical.save_flags(conn, rows)

    api.db(flags)
    api.login_as("N01")
    api.client.get("/worklist")  # one request that shows three residents
    api.login_as("A01")
    page = api.client.get("/admin/audit", params={"agent": "N01", "entity": "page:worklist"}).text
    rows = re.findall(r"<tr><td>", page)
    assert len(rows) == 1
    assert "R0000001, R0000002, R0000004" in page
    for _ in range(60):
        api.client.get("/admin/audit", params={"days": 1})
    first = api.client.get("/admin/audit").text
    assert len(re.findall(r"<tr><td>", first)) == 50
    older = re.search(r'href="\?([^"]*before=\d+[^"]*)"', first)
    assert older
    second = api.client.get("/admin/audit?" + older[1].replace("&amp;", "&")).text
    assert len(re.findall(r"<tr><td>", second)) >= 10


def test_status_counts_flags_that_reach_a_worklist(api: Api) -> None:
    async def work(conn: Any) -> store.Status:
        await clinical.save_flags(
            conn,
            [
                flag_row("R0000001", "BP-HOME-HTN", "routine", ["nurse"], 5),
                flag_row("R0000002", "OB-BMI-OVER", "info", ["resident"], 5),
                flag_row("R0000004", "SCR-BMD-OSTEOPENIA", "info", ["nurse"], 5),
            ],
        )
        return await store.read_status(conn)

    status = api.db(work)
    assert status.counts["open_flags"] == 1
    assert status.counts["info_flags"] == 2
