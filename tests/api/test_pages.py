"""The staff web pages against the real database: login, resident page, actions, consent."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.charts import Band, Chart, RefLine, Series, render
from ingest.fhir.encoding import loads
from ingest.store.templates import served_observations
from tests.api import readings
from tests.api.conftest import Api, seoul_today
from tests.api.world import IN_HWANGHAK, IN_YAKSU, PASSWORD

pytestmark = pytest.mark.db


def login_form_token(api: Api) -> str:
    page = api.client.get("/login")
    match = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def test_login_sets_a_session_and_sends_each_role_home(api: Api) -> None:
    api.client.cookies.clear()
    homes = {"n01": "/worklist", "t01": "/rehab", "l10-01": "/liaison", "s-yaksu-1": "/station"}
    for name, home in homes.items():
        api.client.cookies.clear()
        token = login_form_token(api)
        response = api.client.post(
            "/login", data={"username": name, "password": PASSWORD, "login_csrf": token}
        )
        assert response.status_code == 303, name
        assert response.headers["location"] == home
        cookie = response.headers["set-cookie"]
        assert "daon_session=" in cookie
        assert "HttpOnly" in cookie
        assert "samesite=lax" in cookie.lower()


def test_wrong_password_then_throttled(api_factory) -> None:
    from api.store.throttle import Policy

    api: Api = api_factory(login_policy=Policy(free=2))
    api.client.cookies.clear()
    for _ in range(2):
        token = login_form_token(api)
        bad = api.client.post(
            "/login", data={"username": "n01", "password": "wrong", "login_csrf": token}
        )
        assert bad.status_code == 401
        assert "아이디 또는 비밀번호가 맞지 않습니다" in bad.text
    token = login_form_token(api)
    throttled = api.client.post(
        "/login", data={"username": "n01", "password": PASSWORD, "login_csrf": token}
    )
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0


def test_gateway_accounts_cannot_sign_in_to_the_web(api: Api) -> None:
    api.client.cookies.clear()
    token = login_form_token(api)
    response = api.client.post(
        "/login", data={"username": "g-yaksu-1", "password": PASSWORD, "login_csrf": token}
    )
    assert response.status_code == 403


def test_pages_need_a_session(api: Api) -> None:
    api.client.cookies.clear()
    response = api.client.get(f"/residents/{IN_YAKSU}")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


def test_logout_ends_the_session(api: Api) -> None:
    csrf = api.login_as("N01")
    assert api.client.get(f"/residents/{IN_YAKSU}").status_code == 200
    api.client.post("/logout", data={"csrf_token": csrf})
    api.login_as("N01")  # the same (now ended) token again
    assert api.client.get(f"/residents/{IN_YAKSU}").status_code == 303


def test_resident_page_shows_charts_table_and_history(api: Api) -> None:
    now = datetime.now(UTC)

    async def work(conn: Any) -> None:
        for d in range(5):
            await readings.blood_pressure(conn, IN_YAKSU, now - timedelta(days=d), 142 - d, 91)
        await readings.simple(conn, IN_YAKSU, now - timedelta(hours=3), "glucose", 112)
        await readings.simple(conn, IN_YAKSU, now - timedelta(hours=2), "weight", 58.3)

    api.db(work)
    api.login_as("N01")
    page = api.client.get(f"/residents/{IN_YAKSU}?days=30")
    assert page.status_code == 200
    text = page.text
    assert text.count("<svg viewBox") == 4
    assert "142/91 mmHg" in text
    assert "112 mg/dL" in text
    assert "58.3 kg" in text
    assert 'aria-current="page">30일' in text
    # the therapist sees this rehab-room resident too; another nurse does not
    api.login_as("T01")
    assert api.client.get(f"/residents/{IN_YAKSU}").status_code == 200
    api.login_as("N02")
    assert api.client.get(f"/residents/{IN_YAKSU}").status_code == 403
    api.login_as("L10-01")  # liaison officers never see values
    assert api.client.get(f"/residents/{IN_YAKSU}").status_code == 403


def test_review_and_visit_are_recorded_and_shown(api: Api) -> None:
    csrf = api.login_as("N01")
    api.client.post(
        f"/residents/{IN_YAKSU}/review", data={"csrf_token": csrf, "note": "전화 상담함"}
    )
    today = seoul_today().isoformat()
    api.client.post(
        f"/residents/{IN_YAKSU}/visits",
        data={"csrf_token": csrf, "visited_on": today, "kind": "home", "note": "혈압 교육"},
    )
    page = api.client.get(f"/residents/{IN_YAKSU}").text
    assert "전화 상담함" in page
    assert "혈압 교육" in page
    assert "테스트 N01" in page  # last reviewed by whom
    future = (seoul_today() + timedelta(days=10)).isoformat()
    bad = api.client.post(
        f"/residents/{IN_YAKSU}/visits", data={"csrf_token": csrf, "visited_on": future}
    )
    assert bad.status_code == 400


def test_consent_recorded_and_withdrawn_from_the_resident_page(api: Api) -> None:
    csrf = api.login_as("N02")
    form = {
        "csrf_token": csrf,
        "purpose": "care-coordination",
        "period_start": seoul_today().isoformat(),
        "source": "동의서 2026-077",
    }
    confirm = api.client.post(f"/residents/{IN_HWANGHAK}/consents", data=form)
    assert confirm.status_code == 200  # a confirmation naming the resident first
    assert "이솔" in confirm.text
    response = api.client.post(
        f"/residents/{IN_HWANGHAK}/consents", data={**form, "confirm": "yes", "reason": "서면"}
    )
    assert response.status_code == 303
    page = api.client.get(f"/residents/{IN_HWANGHAK}").text
    consent_ids = re.findall(r'href="/consents/([0-9a-f-]+)/withdraw"', page)
    assert len(consent_ids) == 2  # the liaison consent from the world and this one
    for consent_id in consent_ids:
        api.client.post(
            f"/consents/{consent_id}/withdraw",
            data={
                "csrf_token": csrf,
                "resident_id": IN_HWANGHAK,
                "confirm": "yes",
                "reason": "본인 요청",
            },
        )
    page = api.client.get(f"/residents/{IN_HWANGHAK}").text
    assert page.count("철회됨 / withdrawn") == 2


def test_chart_has_an_accessible_name_and_description() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    chart = Chart(
        title="혈압 / Blood pressure",
        unit="mmHg",
        series=[
            Series("수축기", [(start + timedelta(days=i), 130.0 + i) for i in range(3)], "#000")
        ],
        start=start,
        end=start + timedelta(days=30),
        bands=[Band(60, 120, "normal")],
        lines=[RefLine(140, "140")],
    )
    svg = render(chart)
    assert svg.startswith("<svg")
    assert 'role="img"' in svg
    assert '<title id="t">혈압 / Blood pressure</title>' in svg
    assert "수축기: 3회, 최근 132 mmHg, 범위 130-132" in svg
    assert svg.count("<circle") == 3
    empty = render(Chart("체중", "kg", [Series("w", [], "#000")], start, start + timedelta(days=7)))
    assert "측정값 없음" in empty


def test_rehab_view_lists_rehab_room_residents_with_body_composition(api: Api) -> None:
    now = datetime.now(UTC)

    async def work(conn: Any) -> None:
        await readings.simple(conn, IN_YAKSU, now - timedelta(days=40), "muscle_mass", 17.9)
        await readings.simple(conn, IN_YAKSU, now - timedelta(days=2), "muscle_mass", 17.2)
        await readings.simple(conn, IN_YAKSU, now - timedelta(days=2), "body_fat", 33.5)
        await readings.simple(conn, IN_HWANGHAK, now, "muscle_mass", 15.0)

    api.db(work)
    api.login_as("T01")
    page = api.client.get("/rehab")
    assert page.status_code == 200
    assert "김하늘" in page.text  # R0000001, rehab room
    assert "최산" in page.text  # R0000004, rehab room
    assert "이솔" not in page.text  # not a rehab-room resident
    assert "17.2 kg" in page.text
    assert 'aria-label="감소 / down"' in page.text  # 17.9 -> 17.2
    assert "33.5 %" in page.text
    api.login_as("N01")
    assert api.client.get("/rehab").status_code == 403


def test_admin_reads_the_audit_page(api: Api) -> None:
    api.login_as("N01")
    api.client.get(f"/residents/{IN_YAKSU}")
    api.login_as("A01")
    page = api.client.get(f"/admin/audit?resident={IN_YAKSU}&agent=N01")
    assert page.status_code == 200
    assert "page:resident" in page.text
    api.login_as("N01")
    assert api.client.get("/admin/audit").status_code == 403


def test_responses_carry_security_headers_and_no_ids_in_logs(api: Api, caplog) -> None:
    import logging

    api.login_as("N01")
    with caplog.at_level(logging.INFO, logger="api.main"):
        response = api.client.get(f"/residents/{IN_YAKSU}")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    lines = [r.getMessage() for r in caplog.records if r.name == "api.main"]
    assert any("/residents/{resident_id} -> 200" in line for line in lines)
    assert not any(IN_YAKSU in line for line in lines)


def test_therapist_enters_function_tests_seen_on_the_rehab_view(api: Api) -> None:
    from ingest.store import clinical

    async def flag(conn: Any) -> None:
        now = datetime.now(UTC)
        await clinical.save_flags(
            conn,
            [
                clinical.FlagRow(
                    id=None,
                    resident_id=IN_YAKSU,
                    rule="SAR-POSSIBLE",
                    rule_set="t",
                    severity="routine",
                    recipients=["rehab"],
                    state="open",
                    opened_at=now,
                    alerted_at=now,
                    summary="악력 15.2 kg",
                )
            ],
        )

    api.db(flag)
    csrf = api.login_as("T01")
    form = {"csrf_token": csrf, "measured_at": "2026-03-03T10:00", "grip": "15.2", "gait": "0.85"}
    done = api.client.post(f"/residents/{IN_YAKSU}/function-tests", data=form)
    assert done.status_code == 303
    assert done.headers["location"].endswith("m=function-tests")
    api.client.post(f"/residents/{IN_YAKSU}/function-tests", data=form)  # the same again
    bad = api.client.post(
        f"/residents/{IN_YAKSU}/function-tests", data={**form, "grip": "150"}
    )  # outside the plausible range
    assert bad.status_code == 400

    async def stored(conn: Any) -> list[tuple[Any, ...]]:
        cur = await conn.execute("SELECT code, value, unit FROM observation ORDER BY code")
        found = await cur.fetchall()
        served = await served_observations(conn, order="o.code")
        return [
            (*row, loads(text)["performer"][0]["reference"])
            for row, (_, text) in zip(found, served, strict=True)
        ]

    assert api.db(stored) == [
        ("daon-gait-speed", 0.85, "m/s", "Practitioner/T01"),
        ("daon-grip", 15.2, "kg", "Practitioner/T01"),
    ]
    page = api.client.get("/rehab").text
    assert "15.2 kg" in page
    assert "0.85 m/s" in page
    assert "SAR-POSSIBLE" in page
    api.login_as("L10-01")
    refused = api.client.post(
        f"/residents/{IN_YAKSU}/function-tests",
        data={**form, "csrf_token": api.sessions["L10-01"][1]},
    )
    assert refused.status_code == 403
