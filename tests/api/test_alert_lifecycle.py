"""One flag lifecycle (issue 11.5): staff actions on flags the real runner raised go through
clinical.lifecycle, the stored FHIR Flag, Task and RiskAssessment follow every action, and the
runner never re-opens what a person closed. Each test failed before the change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.riskassessment import RiskAssessment
from fhir.resources.R4B.task import Task

from clinical import runner
from clinical.alerts import AlertPolicy
from tests.api import readings
from tests.api.conftest import Api
from tests.api.world import IN_YAKSU

pytestmark = pytest.mark.db


def raise_crisis(api: Api, sys: int = 192, dia: int = 104) -> dict[str, Any]:
    """A hypertensive-crisis reading evaluated by the real runner; the flag and its task ids."""
    config = runner.RunnerConfig(api.url, alerts=AlertPolicy(hours=None))

    async def go(conn: Any) -> dict[str, Any]:
        now = datetime.now(UTC)
        await readings.blood_pressure(conn, IN_YAKSU, now - timedelta(minutes=2), sys, dia)
        await runner.evaluate_residents(conn, [IN_YAKSU], now, config)
        cur = await conn.execute(
            "SELECT f.id, t.id FROM risk_flag f JOIN follow_up_task t ON t.flag_id = f.id "
            "AND t.role = 'nurse' WHERE f.rule = 'BP-CRISIS' AND f.resident_id = %s",
            (IN_YAKSU,),
        )
        row = await cur.fetchone()
        assert row is not None
        return {"flag": row[0], "task": row[1]}

    return api.db(go)


def evaluate_again(api: Api, minutes: float) -> None:
    config = runner.RunnerConfig(api.url, alerts=AlertPolicy(hours=None))

    async def go(conn: Any) -> None:
        when = datetime.now(UTC) + timedelta(minutes=minutes)
        await runner.evaluate_residents(conn, [IN_YAKSU], when, config)

    api.db(go)


def fhir(api: Api, path: str) -> dict[str, Any]:
    r = api.client.get(path, headers=api.bearer("N01"))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_after_a_resolve_the_fhir_flag_task_and_risk_assessment_say_so(api: Api) -> None:
    ids = raise_crisis(api)
    assert Flag.model_validate(fhir(api, f"/fhir/Flag/{ids['flag']}")).status == "active"
    csrf = api.login_as("N01")
    r = api.client.post(
        f"/flags/{ids['flag']}/resolve", data={"csrf_token": csrf, "note": "통화함, 안정"}
    )
    assert r.status_code == 303
    flag = Flag.model_validate(fhir(api, f"/fhir/Flag/{ids['flag']}"))
    assert flag.status == "inactive"
    assert flag.period is not None
    assert flag.period.end is not None
    risk = RiskAssessment.model_validate(fhir(api, f"/fhir/RiskAssessment/{ids['flag']}"))
    assert risk.status == "amended"
    task = Task.model_validate(fhir(api, f"/fhir/Task/{ids['task']}"))
    assert task.status == "completed"
    assert task.businessStatus is not None
    assert task.businessStatus.text == "resolved"


def test_after_an_acknowledge_and_a_snooze_the_stored_resources_follow(api: Api) -> None:
    ids = raise_crisis(api)
    csrf = api.login_as("N01")
    api.client.post(f"/flags/{ids['flag']}/acknowledge", data={"csrf_token": csrf})
    task = Task.model_validate(fhir(api, f"/fhir/Task/{ids['task']}"))
    assert (task.status, task.businessStatus.text) == ("accepted", "acknowledged")  # type: ignore[union-attr]
    until = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    r = api.client.post(
        f"/flags/{ids['flag']}/snooze",
        data={"csrf_token": csrf, "until": until, "reason": "입원 중 / in hospital"},
    )
    assert r.status_code == 303
    task = Task.model_validate(fhir(api, f"/fhir/Task/{ids['task']}"))
    assert (task.status, task.businessStatus.text) == ("on-hold", "snoozed")  # type: ignore[union-attr]
    assert Flag.model_validate(fhir(api, f"/fhir/Flag/{ids['flag']}")).status == "active"


def test_a_task_a_nurse_completed_is_never_reopened_by_the_runner(api: Api) -> None:
    ids = raise_crisis(api)
    csrf = api.login_as("N01")
    r = api.client.post(
        f"/tasks/{ids['task']}/status",
        data={"csrf_token": csrf, "status": "completed", "note": "전화 완료"},
    )
    assert r.status_code == 303
    # the flag is still open and unacknowledged: the runner re-sends and escalates it, and
    # rewrites its tasks; the nurse's completed task must stay completed
    for minutes in (16, 31, 61):
        evaluate_again(api, minutes)
    task = Task.model_validate(fhir(api, f"/fhir/Task/{ids['task']}"))
    assert task.status == "completed"

    async def closed(conn: Any) -> tuple[Any, Any]:
        cur = await conn.execute(
            "SELECT closed_at, closed_by FROM follow_up_task WHERE id = %s", (ids["task"],)
        )
        row = await cur.fetchone()
        assert row is not None
        return row[0], row[1]

    closed_at, closed_by = api.db(closed)
    assert closed_at is not None
    assert closed_by == "staff"


def test_a_staff_resolve_is_not_undone_by_the_runner(api: Api) -> None:
    """A flag staff resolved stays resolved, with its tasks closed, whatever the runner sees
    again (§10.2.6; the re-opening of flags the runner closed itself is in test_lifecycle)."""
    ids = raise_crisis(api)
    csrf = api.login_as("N01")
    api.client.post(f"/flags/{ids['flag']}/resolve", data={"csrf_token": csrf, "note": "통화함"})
    evaluate_again(api, 5)

    async def states(conn: Any) -> list[tuple[str, Any]]:
        cur = await conn.execute(
            "SELECT f.state, t.closed_at FROM risk_flag f JOIN follow_up_task t "
            "ON t.flag_id = f.id WHERE f.id = %s",
            (ids["flag"],),
        )
        return [(r[0], r[1]) for r in await cur.fetchall()]

    assert all(state == "resolved" and closed is not None for state, closed in api.db(states))


def test_reached_stops_the_welfare_check(api: Api) -> None:
    ids = raise_crisis(api)
    csrf = api.login_as("N01")
    r = api.client.post(f"/flags/{ids['flag']}/reached", data={"csrf_token": csrf})
    assert r.status_code == 303
    evaluate_again(api, 61)

    async def welfare(conn: Any) -> int:
        cur = await conn.execute(
            "SELECT count(*) FROM follow_up_task WHERE flag_id = %s AND role = 'liaison'",
            (ids["flag"],),
        )
        row = await cur.fetchone()
        return int(row[0]) if row else -1

    assert api.db(welfare) == 0
    # someone else's flag cannot be marked reached
    other = api.login_as("N02")
    assert (
        api.client.post(f"/flags/{ids['flag']}/reached", data={"csrf_token": other}).status_code
        == 403
    )
