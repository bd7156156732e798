"""The month's visit plan (issue 14.6): a resident never visited is due now, the area filter
is a list, and a liaison officer has her own monthly plan without clinical values."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.api.conftest import Api, seoul_today
from tests.api.world import IN_YAKSU, NO_LIAISON, WITHDRAWN

pytestmark = pytest.mark.db


async def groups(conn: Any) -> None:
    """Three regular-group residents enrolled today (next visit due in three months by the
    group's schedule); one of them was visited last week."""
    later = seoul_today() + timedelta(days=90)
    for rid in (IN_YAKSU, WITHDRAWN, NO_LIAISON):
        await conn.execute(
            "INSERT INTO visiting_group (resident_id, grp, since, visits, reason, next_visit_due,"
            " rule_set, updated_at) VALUES (%s, 'regular', current_date, '3개월 1회', 't', %s,"
            " 't', now())",
            (rid, later),
        )
    await conn.execute(
        "INSERT INTO home_visit (resident_id, user_id, visited_on, kind)"
        " VALUES (%s, 'N01', current_date - 7, 'home')",
        (WITHDRAWN,),
    )


def test_never_visited_residents_are_due_now(api: Api) -> None:
    api.db(groups)
    api.login_as("N01")
    page = api.client.get("/visits").text
    assert page.count("지금 (첫 방문)") == 2
    assert "김하늘" in page
    assert "최산" in page
    assert "박바다" not in page  # visited last week, next due in three months
    assert '<select id="nb" name="nb">' in page
    assert '<option value="약수동"' in page
    assert "김하늘" not in api.client.get("/visits", params={"nb": "황학동"}).text


def test_liaison_officer_has_her_own_monthly_plan_without_values(api: Api) -> None:
    api.db(groups)

    async def task(conn: Any) -> None:
        await conn.execute(
            """INSERT INTO follow_up_task (identifier, resident_id, role, owner_id, priority,
                   status, business_status, due_at, description, resource, created_at,
                   updated_at)
               VALUES ('t-l-1', %s, 'liaison', 'L10-01', 'routine', 'requested', 'open',
                       now() + interval '5 days', '이번 달 방문해 주세요. 월간 방문 계획에 반영',
                       '{}'::jsonb, now(), now())""",
            (IN_YAKSU,),
        )

    api.db(task)
    api.login_as("L10-01")
    page = api.client.get("/visits")
    assert page.status_code == 200
    assert "김하늘" in page.text
    assert "1건" in page.text
    for clinical in ("정기관리군", "regular", "mmHg", "mg/dL", "건강관리군"):
        assert clinical not in page.text.split("<main")[1], clinical
    assert 'href="/visits"' in page.text  # in her menu
