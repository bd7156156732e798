"""The station screen says what the risk engine raised (issue 11.3c): the critical instruction
and resident prompts of clinical-rules.md §0 at the moment of measurement, consistent with the
flag, including who was told and when (staffed hours)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from api import explain
from api.explain import Level, RaisedFlag
from clinical import runner
from clinical.alerts import AlertPolicy, StaffedHours
from tests.api import readings
from tests.api.conftest import Api
from tests.api.world import CARD, IN_YAKSU

SEOUL = explain.SEOUL
CRISIS = explain.blood_pressure(186, 121)  # > 180 / > 120: the value's own band is critical


# --- pure: the words follow the flag ------------------------------------------------------------


def test_before_the_engine_looked_the_value_band_applies() -> None:
    assert explain.with_flags(CRISIS, [], evaluated=False) == CRISIS


def test_a_critical_flag_shows_the_instruction_and_that_the_nurse_was_told() -> None:
    shown = explain.with_flags(CRISIS, [RaisedFlag("BP-CRISIS", "critical")], evaluated=True)
    assert shown.level is Level.CRITICAL
    assert "119" in shown.next_step
    assert "5분" in shown.next_step  # rest and re-measure (§0)
    assert "담당 간호사에게 지금 알렸습니다" in shown.next_step


def test_outside_staffed_hours_the_screen_says_when_the_nurse_will_call() -> None:
    monday = datetime(2026, 3, 16, 9, 0, tzinfo=SEOUL)
    shown = explain.with_flags(
        CRISIS, [RaisedFlag("BP-CRISIS", "critical", monday)], evaluated=True
    )
    assert "03/16 09:00" in shown.next_step
    assert "119" in shown.next_step


def test_a_rejected_measurement_asks_to_measure_again_not_for_an_emergency() -> None:
    shown = explain.with_flags(CRISIS, [RaisedFlag("Q-REMEASURE", "info")], evaluated=True)
    assert shown.level is Level.INFO
    assert "다시 재 주세요" in shown.next_step
    assert "119" not in shown.next_step


def test_without_a_critical_flag_the_screen_shows_no_emergency() -> None:
    shown = explain.with_flags(CRISIS, [RaisedFlag("BP-RECHECK", "info")], evaluated=True)
    assert shown.level is Level.HIGH


def test_a_low_glucose_flag_gets_the_sugar_instruction() -> None:
    low = explain.glucose(50, "mg/dL")
    shown = explain.with_flags(low, [RaisedFlag("GLU-HYPO-L2", "critical")], evaluated=True)
    assert "15~20g" in shown.next_step


# --- the screen, with the real runner ----------------------------------------------------------


def _checked_in_crisis(api: Api) -> None:
    csrf = api.login_as("S-yaksu-1")
    api.client.post("/station/checkin", data={"card_number": CARD[IN_YAKSU], "csrf_token": csrf})

    async def measure(conn: Any) -> None:
        await readings.blood_pressure(conn, IN_YAKSU, datetime.now(UTC), 186, 121)

    api.db(measure)


def _evaluate(api: Api, policy: AlertPolicy) -> None:
    config = runner.RunnerConfig(api.url, alerts=policy)

    async def go(conn: Any) -> None:
        await runner.evaluate_residents(conn, [IN_YAKSU], datetime.now(UTC), config)

    api.db(go)


@pytest.mark.db
def test_the_screen_follows_the_crisis_flag_in_staffed_hours(api: Api) -> None:
    _checked_in_crisis(api)
    before = api.client.get("/station").text
    assert "186/121" in before
    # waiting for the risk engine: the state key has no "+" (evaluated) mark yet
    assert re.search(r'data-state="[^"+]*"', before) is not None
    _evaluate(api, AlertPolicy(hours=None))
    after = api.client.get("/station").text
    assert "level-critical" in after
    assert "담당 간호사에게 지금 알렸습니다" in after
    assert re.search(r'data-state="[^"]*\+"', after) is not None  # evaluated: the script swaps


@pytest.mark.db
def test_the_screen_says_when_the_nurse_will_call_when_nobody_is_on_duty(api: Api) -> None:
    today = datetime.now(SEOUL).date()
    # staffed every day but today: the nurse's item opens tomorrow at 09:00
    hours = StaffedHours(weekdays=frozenset(d for d in range(7) if d != today.weekday()))
    _checked_in_crisis(api)
    _evaluate(api, AlertPolicy(hours=hours))
    tomorrow: date = today + timedelta(days=1)
    page = api.client.get("/station").text
    assert f"{tomorrow:%m/%d} 09:00" in page
    assert "119" in page
