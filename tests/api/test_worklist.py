"""The nurse worklist (TIDE-style triage), flag actions, tasks, the visit plan, the case-meeting
report and the FHIR Flag / RiskAssessment / Task views, on flags stored through the clinical
runner's own store functions (ingest.store.clinical)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.riskassessment import RiskAssessment
from fhir.resources.R4B.task import Task

from api.store.web_worklist import Category, DeviceIssue, OpenFlag, triage
from ingest.store import clinical
from tests.api import readings
from tests.api.conftest import Api, seoul_today
from tests.api.world import IN_HWANGHAK, IN_YAKSU, NO_LIAISON, WITHDRAWN

pytestmark = pytest.mark.db

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def open_flag(
    rule: str, severity: str, state: str = "open", snoozed_until: datetime | None = None
) -> OpenFlag:
    return OpenFlag(1, rule, severity, state, "s", NOW, None, None, snoozed_until, None)


# (flags, device issues, expected category): the TIDE order of the web_worklist docstring,
# written out by hand.
F, C, LOW = open_flag, Category, DeviceIssue("d", None, 12, None)
TRIAGE_CASES = [
    ([F("BP-CRISIS", "critical"), F("GLU-HYPO-L1", "urgent")], [], C.CRITICAL),
    ([F("GLU-HYPO-L1", "urgent"), F("ADH-NO-DATA", "routine")], [], C.URGENT),
    ([F("BP-HOME-HTN", "routine"), F("ADH-NO-DATA", "routine")], [], C.ROUTINE),
    ([F("ADH-NO-DATA", "routine")], [LOW], C.NO_DATA),
    ([], [LOW], C.DEVICE),
    ([F("ADH-QUALITY", "info")], [], C.DEVICE),
    ([F("BP-CRISIS", "critical", "snoozed", NOW + timedelta(hours=2))], [], None),
    ([F("BP-CRISIS", "critical", "snoozed", NOW - timedelta(hours=2))], [], C.CRITICAL),
    ([F("BP-CRISIS", "critical", "acknowledged")], [], C.CRITICAL),
    ([], [], None),
]  # fmt: skip


@pytest.mark.parametrize(("flags", "devices", "expected"), TRIAGE_CASES)
def test_triage_order(flags, devices, expected) -> None:
    assert triage(flags, devices, NOW) == expected


def flag_row(
    resident: str, rule: str, severity: str, recipients: list[str], minutes_ago: int
) -> clinical.FlagRow:
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return clinical.FlagRow(
        id=None,
        resident_id=resident,
        rule=rule,
        rule_set="2026.11-1",
        severity=severity,
        recipients=recipients,
        state="open",
        opened_at=at,
        alerted_at=at,
        summary=f"{rule} 테스트 요약",
        peak_value=182.0,
    )


async def seed_flags(conn: Any) -> dict[str, int]:
    rows = [
        flag_row(IN_YAKSU, "BP-CRISIS", "critical", ["nurse"], 5),
        flag_row(NO_LIAISON, "GLU-HYPO-L1", "urgent", ["nurse"], 30),
        flag_row(WITHDRAWN, "BP-HOME-HTN", "routine", ["nurse"], 60),
        flag_row(IN_HWANGHAK, "OB-BMI-OBESE", "routine", ["nurse"], 90),
        flag_row(IN_YAKSU, "ADH-NO-DATA", "routine", ["liaison"], 120),
    ]
    ids = await clinical.save_flags(conn, rows)
    due = datetime.now(UTC) + timedelta(days=3)
    await clinical.upsert_tasks(
        conn,
        [
            clinical.TaskRow(
                identifier="t-liaison-1",
                flag_id=ids[4],
                resident_id=IN_YAKSU,
                role="liaison",
                owner_id="L10-01",
                priority="routine",
                status="requested",
                business_status="open",
                due_at=due,
                description="최근 건강 측정 기록이 없습니다. 이번 주에 확인해 주세요.",
                resource={
                    "resourceType": "Task",
                    "status": "requested",
                    "intent": "order",
                    "description": "최근 건강 측정 기록이 없습니다.",
                    "for": {"reference": f"Patient/{IN_YAKSU}"},
                },
                at=datetime.now(UTC),
            ),
            clinical.TaskRow(
                identifier="t-nurse-1",
                flag_id=ids[0],
                resident_id=IN_YAKSU,
                role="nurse",
                owner_id="N01",
                priority="stat",
                status="requested",
                business_status="open",
                due_at=due,
                description="BP 182/121: 1시간 안에 연락",
                resource={
                    "resourceType": "Task",
                    "status": "requested",
                    "intent": "order",
                    "description": "BP 182/121: 1시간 안에 연락",
                    "for": {"reference": f"Patient/{IN_YAKSU}"},
                },
                at=datetime.now(UTC),
            ),
        ],
    )
    cur = await conn.execute("SELECT identifier, id FROM follow_up_task")
    tasks = {r[0]: r[1] for r in await cur.fetchall()}
    return {
        "crisis": ids[0],
        "hypo": ids[1],
        "home": ids[2],
        "obese": ids[3],
        "nodata": ids[4],
        "task_liaison": tasks["t-liaison-1"],
        "task_nurse": tasks["t-nurse-1"],
    }


def section_of(page: str, resident_name: str) -> str:
    """The triage section heading a resident's row sits under."""
    position = page.index(resident_name)
    headings = [
        ("위급", page.rfind("위급</span>", 0, position)),
        ("긴급", page.rfind("긴급</span>", 0, position)),
        ("정기", page.rfind("정기</span>", 0, position)),
        ("측정 없음", page.rfind("측정 없음</span>", 0, position)),
        ("기기 문제", page.rfind("기기 문제</span>", 0, position)),
    ]
    return max(headings, key=lambda h: h[1])[0]


def test_worklist_triages_each_resident_once_in_scope(api: Api) -> None:
    api.db(seed_flags)
    api.login_as("N01")
    page = api.client.get("/worklist")
    assert page.status_code == 200
    text = page.text
    assert text.count('href="/residents/R0000001"') == 1  # two flags, listed once
    assert section_of(text, "김하늘") == "위급"  # critical beats the no-data flag
    assert section_of(text, "최산") == "긴급"
    assert section_of(text, "박바다") == "정기"
    assert "이솔" not in text  # 황학동: N02's
    api.login_as("N02")
    assert "이솔" in api.client.get("/worklist").text
    for user in ("T01", "L10-01", "S-yaksu-1"):
        api.login_as(user)
        assert api.client.get("/worklist").status_code == 403, user


def test_no_data_and_device_problems_are_shown(api: Api) -> None:
    async def work(conn: Any) -> None:
        await clinical.save_flags(
            conn, [flag_row(WITHDRAWN, "ADH-NO-DATA", "routine", ["liaison"], 10)]
        )
        await conn.execute(
            "INSERT INTO device (id, model, owner_id, battery_pct, last_seen_at) VALUES "
            "('home-bp-1', 'HEM-7361T', %s, 90, now()), ('home-sc-1', 'UC-352BLE', %s, 9, now()),"
            " ('home-gl-1', 'CareSens', %s, 80, now() - interval '20 days')",
            (WITHDRAWN, NO_LIAISON, IN_YAKSU),
        )
        await readings.blood_pressure(
            conn, NO_LIAISON, datetime.now(UTC) - timedelta(days=1), 120, 80
        )

    api.db(work)
    api.login_as("N01")
    text = api.client.get("/worklist").text
    assert section_of(text, "박바다") == "측정 없음"  # the engine's ADH-NO-DATA
    assert section_of(text, "최산") == "기기 문제"  # scale battery 9 %
    assert section_of(text, "김하늘") == "기기 문제"  # meter silent for 20 days
    assert "배터리 9%" in text
    assert "1일 전" in text  # last measured, for the listed residents


def test_acknowledge_snooze_resolve_from_the_worklist(api: Api) -> None:
    ids = api.db(seed_flags)
    csrf = api.login_as("N01")
    r = api.client.post(f"/flags/{ids['crisis']}/acknowledge", data={"csrf_token": csrf})
    assert r.status_code == 303
    until = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    assert (
        api.client.post(
            f"/flags/{ids['hypo']}/snooze", data={"csrf_token": csrf, "until": until}
        ).status_code
        == 400
    )  # a snooze needs a reason
    api.client.post(
        f"/flags/{ids['hypo']}/snooze",
        data={"csrf_token": csrf, "until": until, "reason": "가족과 통화, 내일 재측정"},
    )
    api.client.post(
        f"/flags/{ids['home']}/resolve", data={"csrf_token": csrf, "note": "약 복용 확인"}
    )
    text = api.client.get("/worklist").text
    assert "확인 / ack 테스트 N01" in text
    assert "박바다" not in text  # resolved, nothing else open
    assert "최산" not in text  # snoozed until later: not in a category

    async def states(conn: Any) -> dict[int, str]:
        cur = await conn.execute("SELECT id, state FROM risk_flag")
        return {r[0]: r[1] for r in await cur.fetchall()}

    got = api.db(states)
    assert (got[ids["crisis"]], got[ids["hypo"]], got[ids["home"]]) == (
        "acknowledged",
        "snoozed",
        "resolved",
    )
    # another nurse's resident's flag cannot be touched
    denied = api.client.post(f"/flags/{ids['obese']}/acknowledge", data={"csrf_token": csrf})
    assert denied.status_code == 403


def test_liaison_sees_plain_tasks_and_marks_them_done(api: Api) -> None:
    ids = api.db(seed_flags)
    csrf = api.login_as("L10-01")
    text = api.client.get("/liaison").text
    assert "최근 건강 측정 기록이 없습니다" in text
    assert "182" not in text  # never values
    assert "BP-CRISIS" not in text
    r = api.client.post(
        f"/tasks/{ids['task_liaison']}/status",
        data={"csrf_token": csrf, "status": "completed", "note": "통화함, 기기 배터리 교체"},
    )
    assert r.status_code == 303
    assert "최근 건강 측정 기록이 없습니다" not in api.client.get("/liaison").text
    # the nurse's clinical task is not hers to read or change
    bearer = api.bearer("L10-01")
    assert api.client.get(f"/fhir/Task/{ids['task_nurse']}", headers=bearer).status_code == 403
    assert (
        api.client.post(
            f"/tasks/{ids['task_nurse']}/status", data={"csrf_token": csrf, "status": "completed"}
        ).status_code
        == 403
    )


def test_fhir_flag_risk_assessment_and_task(api: Api) -> None:
    ids = api.db(seed_flags)
    bearer = api.bearer("N01")
    flag = Flag.model_validate(api.client.get(f"/fhir/Flag/{ids['crisis']}", headers=bearer).json())
    assert flag.status == "active"
    assert flag.subject.reference == f"Patient/{IN_YAKSU}"
    risk = RiskAssessment.model_validate(
        api.client.get(f"/fhir/RiskAssessment/{ids['crisis']}", headers=bearer).json()
    )
    assert risk.method.coding[0].code == "BP-CRISIS"
    body = api.client.get(f"/fhir/Task/{ids['task_nurse']}", headers=bearer).json()
    task = Task.model_validate(body)
    assert (task.id, task.status) == (str(ids["task_nurse"]), "requested")
    body["status"] = "in-progress"
    body["note"] = [{"text": "전화 연결 시도"}]
    updated = api.client.put(
        f"/fhir/Task/{ids['task_nurse']}",
        json=body,
        headers={**bearer, "Content-Type": "application/fhir+json"},
    )
    assert updated.status_code == 200, updated.text
    assert Task.model_validate(updated.json()).status == "in-progress"
    assert updated.json()["note"][-1]["text"] == "전화 연결 시도"
    body["priority"] = "routine"
    refused = api.client.put(
        f"/fhir/Task/{ids['task_nurse']}",
        json=body,
        headers={**bearer, "Content-Type": "application/fhir+json"},
    )
    assert refused.status_code == 400
    assert "priority" in refused.json()["issue"][0]["diagnostics"]
    assert api.client.get(f"/fhir/Flag/{ids['obese']}", headers=bearer).status_code == 403
    assert (
        api.client.get(f"/fhir/Flag/{ids['crisis']}", headers=api.bearer("L10-01")).status_code
        == 403
    )


def test_visit_plan_and_case_meeting_report(api: Api) -> None:
    ids = api.db(seed_flags)
    today = seoul_today()

    async def groups(conn: Any) -> None:
        await clinical.save_visiting_groups(
            conn,
            [
                clinical.GroupRow(
                    IN_YAKSU,
                    "intensive",
                    today,
                    "3개월 내 8회",
                    "BP-CRISIS",
                    today,
                    None,
                    "r1",
                    datetime.now(UTC),
                ),
                clinical.GroupRow(
                    NO_LIAISON,
                    "regular",
                    today,
                    "3개월마다 1회",
                    "dx",
                    today + timedelta(days=200),
                    None,
                    "r1",
                    datetime.now(UTC),
                ),
                clinical.GroupRow(
                    IN_HWANGHAK,
                    "regular",
                    today,
                    "3개월마다 1회",
                    "dx",
                    today,
                    None,
                    "r1",
                    datetime.now(UTC),
                ),
            ],
        )

    api.db(groups)
    csrf = api.login_as("N01")
    api.client.post(
        f"/residents/{IN_YAKSU}/visits",
        data={
            "csrf_token": csrf,
            "visited_on": today.isoformat(),
            "kind": "home",
            "note": "혈압 재측정",
        },
    )
    # 최산 was visited last month; a resident never visited would be due now (issue 14.6)
    api.client.post(
        f"/residents/{NO_LIAISON}/visits",
        data={
            "csrf_token": csrf,
            "visited_on": (today - timedelta(days=40)).isoformat(),
            "kind": "home",
        },
    )
    plan = api.client.get(f"/visits?month={today:%Y-%m}").text
    assert "김하늘" in plan  # intensive, due now
    assert "최산" not in plan  # visited, next visit due in 200 days
    assert "이솔" not in plan  # another nurse's
    report = api.client.get(f"/reports/case-meeting?nb=약수동&month={today:%Y-%m}")
    assert report.status_code == 200
    text = report.text
    assert "BP-CRISIS" in text
    assert "혈압 재측정" in text  # visit done this month
    assert "BP 182/121: 1시간 안에 연락" in text  # open task
    assert "OB-BMI-OBESE" not in text  # 황학동
    assert api.client.get("/reports/case-meeting?nb=황학동").status_code == 403
    del ids


def test_stored_flag_resources_are_served_as_stored(api: Api) -> None:
    ids = api.db(seed_flags)
    stored_flag = {
        "resourceType": "Flag",
        "status": "active",
        "code": {"text": "runner's rendering"},
        "subject": {"reference": f"Patient/{IN_YAKSU}"},
    }
    stored_risk = {
        "resourceType": "RiskAssessment",
        "status": "final",
        "subject": {"reference": f"Patient/{IN_YAKSU}"},
    }

    async def store(conn: Any) -> None:
        await clinical.save_flag_resources(conn, [(ids["crisis"], stored_flag, stored_risk)])

    api.db(store)
    bearer = api.bearer("N01")
    flag = api.client.get(f"/fhir/Flag/{ids['crisis']}", headers=bearer).json()
    assert flag.pop("meta")["versionId"] == "1"  # the version the server adds (issue 16.4)
    assert flag == {**stored_flag, "id": str(ids["crisis"])}
    risk = api.client.get(f"/fhir/RiskAssessment/{ids['crisis']}", headers=bearer).json()
    assert risk.pop("meta")["versionId"] == "1"
    assert risk == {**stored_risk, "id": str(ids["crisis"])}


def test_my_caseload_by_default_and_the_whole_neighbourhood_on_request(api: Api) -> None:
    api.db(seed_flags)

    async def reassign(conn: Any) -> None:
        await conn.execute("UPDATE resident SET nurse_id = 'N02' WHERE id = %s", (NO_LIAISON,))

    api.db(reassign)
    api.login_as("N01")
    mine = api.client.get("/worklist").text
    assert "최산" not in mine  # 약수동, but now N02's caseload
    assert "김하늘" in mine
    everyone = api.client.get("/worklist?scope=all").text
    assert "최산" in everyone  # still in N01's neighbourhood (scope)
