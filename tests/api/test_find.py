"""Finding residents (issue 14.1): the search box on every staff page, worklist filters, sorting
and paging, resident suggestions in the unbound queue, and error pages that keep the menu.

The world (tests/api/world.py) has 김하늘 (R0000001, 약수동, N01's), 박바다 (R0000002), 이솔
(R0000003, 황학동, N02's) and 최산 (R0000004); their phones are 010-0000-1001 … 1004.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ingest.store import clinical
from tests.api.conftest import Api
from tests.api.test_unbound import item_id, queue_one
from tests.api.test_worklist import flag_row, seed_flags
from tests.api.world import CARD, IN_HWANGHAK, IN_YAKSU, NO_LIAISON, WITHDRAWN

pytestmark = pytest.mark.db


def test_search_by_partial_korean_name_id_card_and_phone(api: Api) -> None:
    api.login_as("N01")
    page = api.client.get("/search", params={"q": "하늘"})
    assert page.status_code == 200
    assert f'href="/residents/{IN_YAKSU}"' in page.text
    assert "1명" in page.text
    # an exact id, card, full phone number or whole name (spaces ignored) opens the resident
    for text in (IN_YAKSU.lower(), CARD[IN_YAKSU], "010-0000-1001", "01000001001", "김 하늘"):
        found = api.client.get("/search", params={"q": text})
        assert found.status_code == 303, text
        assert found.headers["location"] == f"/residents/{IN_YAKSU}"
    # the last four digits of a phone list the resident
    assert f'href="/residents/{NO_LIAISON}"' in api.client.get("/search?q=1004").text
    # a partial id lists every match in scope
    listed = api.client.get("/search?q=R00000").text
    assert all(f'href="/residents/{r}"' in listed for r in (IN_YAKSU, WITHDRAWN, NO_LIAISON))


def test_search_stays_in_scope_and_is_audited(api: Api) -> None:
    api.login_as("N01")
    page = api.client.get("/search", params={"q": "이솔"})  # 황학동: N02's resident
    assert "0명" in page.text
    assert IN_HWANGHAK not in page.text
    assert api.client.get("/search", params={"q": CARD[IN_HWANGHAK]}).status_code == 200
    api.login_as("N02")
    assert api.client.get("/search", params={"q": "이솔"}).headers["location"].endswith(IN_HWANGHAK)
    # a liaison officer finds her consented resident, leading to her own view
    api.login_as("L10-01")
    found = api.client.get("/search", params={"q": "하늘"})
    assert found.status_code == 200
    assert f'href="/liaison#r-{IN_YAKSU}"' in found.text
    assert f'id="r-{IN_YAKSU}"' in api.client.get("/liaison").text
    withdrawn = api.client.get("/search", params={"q": "박바다"}).text  # consent withdrawn
    assert "0명" in withdrawn
    assert WITHDRAWN not in withdrawn
    # stations do not search
    api.login_as("S-yaksu-1")
    assert api.client.get("/search", params={"q": "김"}).status_code == 403

    async def audited(conn: Any) -> list[tuple[Any, ...]]:
        cur = await conn.execute(
            "SELECT agent_user_id, resident_id FROM audit_event WHERE entity = 'page:search'"
            " AND resident_id IS NOT NULL ORDER BY id"
        )
        return await cur.fetchall()

    assert ("L10-01", IN_YAKSU) in api.db(audited)


def test_every_staff_page_has_the_search_box_and_errors_keep_the_menu(api: Api) -> None:
    api.login_as("N01")
    for path in ("/worklist", "/visits", "/unbound", f"/residents/{IN_YAKSU}", "/search"):
        page = api.client.get(path)
        assert page.status_code == 200, path
        assert 'action="/search"' in page.text, path
    for path, status in (
        ("/no-such-page", 404),
        (f"/residents/{IN_HWANGHAK}", 403),
        ("/residents/R9999999", 403),  # the same answer as "not yours" (issue 13.6)
    ):
        page = api.client.get(path)
        assert page.status_code == status, path
        assert 'aria-label="주 메뉴 / Main"' in page.text, path  # the menu is there
        assert 'action="/search"' in page.text, path
    api.login_as("L10-01")
    assert 'action="/search"' in api.client.get("/liaison").text


def test_worklist_filters_sort_and_pages_beyond_fifty(api: Api) -> None:
    api.db(seed_flags)
    api.login_as("N01")
    # rule filter
    page = api.client.get("/worklist", params={"rule": "BP-CRISIS", "scope": "all"}).text
    assert "김하늘" in page
    assert "최산" not in page
    assert "박바다" not in page
    assert 'value="BP-CRISIS" selected' in page

    # visiting group filter: nobody is in the intensive group yet
    async def group(conn: Any) -> None:
        await conn.execute(
            "INSERT INTO visiting_group (resident_id, grp, since, visits, reason, rule_set,"
            " updated_at) VALUES (%s, 'intensive', current_date, '월 1회', 'test', 'test', now())",
            (NO_LIAISON,),
        )

    api.db(group)
    page = api.client.get("/worklist", params={"group": "intensive"}).text
    assert "최산" in page
    assert "김하늘" not in page
    # sort by name within a section
    many = api.client.get("/worklist", params={"sort": "name"})
    assert many.status_code == 200

    # paging: 120 more residents of N01 with an urgent flag
    async def crowd(conn: Any) -> None:
        await conn.execute(
            """INSERT INTO resident (id, card_number, display_name, neighbourhood, nurse_id)
               SELECT 'R9' || lpad(i::text, 6, '0'), NULL, '주민' || lpad(i::text, 3, '0'),
                      '약수동', 'N01' FROM generate_series(1, 120) i"""
        )
        await clinical.save_flags(
            conn,
            [
                flag_row(f"R9{i:06d}", "BP-STAGE2-HOME", "urgent", ["nurse"], 60 + i)
                for i in range(1, 121)
            ],
        )

    api.db(crowd)
    page = api.client.get("/worklist").text
    assert "(121명)" in page  # 최산 and the 120
    assert "1–50 / 121명" in page
    second = api.client.get("/worklist", params={"show": "urgent", "page": 2}).text
    assert "51–100 / 121명" in second
    third = api.client.get("/worklist", params={"show": "urgent", "page": 3}).text
    assert "101–121 / 121명" in third
    shown = {n for n in (f"주민{i:03d}" for i in range(1, 121)) if n in page + second + third}
    assert len(shown) == 120  # everyone reachable
    assert "위급" not in third.split('class="triage"')[1]  # only the chosen section
    by_name = api.client.get("/worklist", params={"show": "urgent", "sort": "name"}).text
    assert by_name.index("주민001") < by_name.index("주민002") < by_name.index("주민050")


def test_unbound_suggests_residents_checked_in_and_accepts_names(api: Api) -> None:
    async def checked_in(conn: Any) -> None:
        await conn.execute(
            """INSERT INTO station_checkin (station_id, gateway_id, resident_id, by_user_id, at,
                                            expires_at, ended_at)
               VALUES ('yaksu-station-1', 'yaksu-gw-1', %s, 'N01', %s, %s, %s)""",
            (
                WITHDRAWN,
                datetime.now(UTC) - timedelta(minutes=8),
                datetime.now(UTC),
                datetime.now(UTC) - timedelta(minutes=1),
            ),
        )

    api.db(queue_one)  # a blood pressure measured 5 minutes ago at yaksu-station-1
    api.db(checked_in)
    csrf = api.login_as("N01")
    page = api.client.get("/unbound").text
    unbound_id = item_id(page)
    assert "박바다" in page  # suggested: checked in 3 minutes before the measurement
    assert "3분 전" in page
    # a partial name that matches several residents shows the choice, with the menu
    several = api.client.post(
        f"/unbound/{unbound_id}/assign", data={"csrf_token": csrf, "resident": "R00000"}
    )
    assert several.status_code == 409
    assert "여러 주민이 일치합니다" in several.text
    assert 'aria-label="주 메뉴 / Main"' in several.text
    unknown = api.client.post(
        f"/unbound/{unbound_id}/assign", data={"csrf_token": csrf, "resident": "홍길동"}
    )
    assert unknown.status_code == 404
    assert 'aria-label="주 메뉴 / Main"' in unknown.text
    # a unique name assigns
    done = api.client.post(
        f"/unbound/{unbound_id}/assign", data={"csrf_token": csrf, "resident": "박바다"}
    )
    assert done.status_code == 303

    async def bound(conn: Any) -> set[str]:
        cur = await conn.execute("SELECT DISTINCT resident_id FROM observation")
        return {r[0] for r in await cur.fetchall()}

    assert api.db(bound) == {WITHDRAWN}
