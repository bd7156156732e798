"""What devices do not measure, entered by staff (issue 14.2): stored as Observations with their
LOINC (or the runner's local) codes, checked against clinical-rules.md §2 and the instruments'
scales, audited, and evaluated at once: a PHQ-9 with item 9 ≥ 1 raises SCR-DEP-SUICIDE (urgent,
clinical-rules.md §7) before the nurse leaves the page.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ingest.store.templates import served_observations
from tests.api.conftest import Api
from tests.api.world import IN_HWANGHAK, IN_YAKSU, NO_LIAISON

pytestmark = pytest.mark.db


#: Within the last 72 h: single-reading rules act only on recent readings (clinical.runner).
WHEN = (datetime.now(ZoneInfo("Asia/Seoul")) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")


def post(api: Api, csrf: str, rid: str, kind: str, **fields: Any) -> Any:
    data: dict[str, Any] = {"csrf_token": csrf, "kind": kind, "measured_at": WHEN}
    data.update(fields)
    return api.client.post(f"/residents/{rid}/entries", data=data)


def stored(api: Api, rid: str) -> list[tuple[Any, ...]]:
    async def work(conn: Any) -> list[tuple[Any, ...]]:
        cur = await conn.execute(
            "SELECT code, code_system, value, unit, daon_observation_context(context, setting,"
            " binding, session_id, station_id, reading_id)::text"  # migration 0109
            " FROM observation WHERE resident_id = %s ORDER BY code",
            (rid,),
        )
        found = await cur.fetchall()
        served = await served_observations(conn, "o.resident_id = %s", (rid,), order="o.code")
        return [(*row, text) for row, (_, text) in zip(found, served, strict=True)]

    return api.db(work)


def open_flags(api: Api, rid: str) -> dict[str, str]:
    async def work(conn: Any) -> dict[str, str]:
        cur = await conn.execute(
            "SELECT rule, severity FROM risk_flag WHERE resident_id = %s"
            " AND state IN ('open', 'acknowledged', 'snoozed')",
            (rid,),
        )
        return {r[0]: r[1] for r in await cur.fetchall()}

    return api.db(work)


def test_phq9_item9_raises_the_urgent_flag_before_the_nurse_leaves_the_page(api: Api) -> None:
    csrf = api.login_as("N01")
    page = api.client.get(f"/residents/{IN_YAKSU}")
    assert 'action="/residents/R0000001/entries"' in page.text
    assert "PHQ-9" in page.text
    done = post(api, csrf, IN_YAKSU, "phq9", phq9_total="6", phq9_item9="1")
    assert done.status_code == 303
    assert "#entry-result" in done.headers["location"]
    # the flag is there when the redirect lands, without waiting for the runner
    assert open_flags(api, IN_YAKSU).get("SCR-DEP-SUICIDE") == "urgent"
    shown = api.client.get(done.headers["location"].split("#")[0]).text
    result = shown[shown.index('id="entry-result"') :]
    assert "SCR-DEP-SUICIDE" in result[: result.index("</div>")]
    rows = {r[0]: r for r in stored(api, IN_YAKSU)}
    assert rows["44261-6"][1] == "http://loinc.org"
    assert rows["44261-6"][2] == 6
    assert rows["44260-8"][2] == 1
    resource = json.loads(rows["44260-8"][5])
    assert resource["performer"] == [{"reference": "Practitioner/N01"}]
    assert resource["category"][0]["coding"][0]["code"] == "survey"

    async def audited(conn: Any) -> list[tuple[Any, ...]]:
        cur = await conn.execute(
            "SELECT agent_user_id, resident_id FROM audit_event"
            " WHERE entity = 'Observation (staff entry: phq9)'"
        )
        return await cur.fetchall()

    assert api.db(audited) == [("N01", IN_YAKSU)]
    # the same entry again is stored once
    again = post(api, csrf, IN_YAKSU, "phq9", phq9_total="6", phq9_item9="1")
    assert "reading-duplicate" in again.headers["location"]
    assert len(stored(api, IN_YAKSU)) == 2


def test_values_outside_section_2_and_the_scales_are_refused(api: Api) -> None:
    csrf = api.login_as("N01")
    for kind, fields in (
        ("a1c", {"a1c": "25"}),  # 3-20 %
        ("height", {"height": "90"}),  # 100-220 cm
        ("waist", {"waist": "230"}),  # 40-200 cm
        ("phq9", {"phq9_total": "30", "phq9_item9": "0"}),  # PHQ-9: 0-27
        ("phq9", {"phq9_total": "2", "phq9_item9": "3"}),  # item 9 above the total
        ("cist", {"cist_score": "20"}),  # the result is missing
        ("symptom", {}),  # no symptom chosen
        ("frailty", {"frailty_score": "4.5"}),  # a whole number
    ):
        response = post(api, csrf, IN_YAKSU, kind, **fields)
        assert response.status_code == 400, (kind, fields)
        assert 'aria-label="주 메뉴 / Main"' in response.text  # the page keeps the menu
    assert stored(api, IN_YAKSU) == []


def test_labs_events_and_screens_carry_what_the_engine_reads(api: Api) -> None:
    csrf = api.login_as("N01")
    assert post(api, csrf, NO_LIAISON, "lipids", tg="220", hdl="35", source="screening")
    post(api, csrf, NO_LIAISON, "a1c", a1c="7.1", source="lab")
    post(api, csrf, NO_LIAISON, "cist", cist_score="17", cist_result="decline")
    post(api, csrf, NO_LIAISON, "symptom", symptom=["dizziness", "chest_pain"])
    post(api, csrf, NO_LIAISON, "bmd", bmd_t="-2.7")
    post(api, csrf, NO_LIAISON, "waist", waist="95.5")
    post(api, csrf, NO_LIAISON, "height", height="170.5")
    rows = {r[0]: r for r in stored(api, NO_LIAISON)}
    assert rows["2571-8"][2:4] == (220, "mg/dL")
    assert rows["2085-9"][2] == 35
    assert json.loads(rows["2571-8"][4])["source"] == "screening"
    assert rows["4548-4"][2:4] == (7.1, "%")
    assert json.loads(rows["daon-cist"][4])["result"] == "decline"
    assert json.loads(rows["daon-symptom"][4])["symptoms"] == ["dizziness", "chest_pain"]
    assert rows["38263-0"][2] == -2.7
    assert rows["8280-0"][2:4] == (95.5, "cm")
    assert rows["8302-2"][2] == 170.5
    flags = open_flags(api, NO_LIAISON)
    assert flags.get("SCR-COG") == "routine"  # CIST decline (§7)
    assert flags.get("SCR-BMD-OSTEO") == "routine"  # T ≤ −2.5 (§7)

    async def height(conn: Any) -> Any:
        cur = await conn.execute("SELECT height_cm FROM resident WHERE id = %s", (NO_LIAISON,))
        row = await cur.fetchone()
        return row[0]

    assert float(api.db(height)) == 170.5


def test_who_may_enter_what(api: Api) -> None:
    csrf = api.login_as("T01")  # the therapist: falls and frailty, not depression screens
    fall = post(api, csrf, IN_YAKSU, "fall", injury="true")
    assert fall.status_code == 303
    rows = {r[0]: r for r in stored(api, IN_YAKSU)}
    assert json.loads(rows["daon-fall"][4])["injury"] is True
    assert open_flags(api, IN_YAKSU).get("FR-FALL") == "urgent"  # injury: urgent (§0 #8)
    assert post(api, csrf, IN_YAKSU, "phq9", phq9_total="3", phq9_item9="0").status_code == 403
    csrf = api.login_as("L10-01")
    assert post(api, csrf, IN_YAKSU, "frailty", frailty_score="5").status_code == 403
    csrf = api.login_as("N01")
    assert post(api, csrf, IN_HWANGHAK, "a1c", a1c="6.0").status_code == 403  # another 동
