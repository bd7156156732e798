"""Consent decisions with care (issue 14.3): a confirmation naming the resident, the reason and
the date recorded as a FHIR Consent, undo within the day, audited; the same for granting.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from tests.api.conftest import Api, seoul_today
from tests.api.world import IN_YAKSU

pytestmark = pytest.mark.db


def consent_row(api: Api, consent_id: str) -> dict[str, Any]:
    async def work(conn: Any) -> dict[str, Any]:
        cur = await conn.execute(
            "SELECT withdrawn_at, withdrawn_by, withdraw_reason, reason, cancelled_at,"
            " resource::text FROM consent WHERE id::text = %s",
            (consent_id,),
        )
        row = await cur.fetchone()
        keys = ("withdrawn_at", "withdrawn_by", "withdraw_reason", "reason", "cancelled_at")
        out = dict(zip(keys, row[:5], strict=True))
        out["resource"] = json.loads(row[5]) if row[5] else None
        return out

    return api.db(work)


def audit_entities(api: Api) -> list[str]:
    async def work(conn: Any) -> list[str]:
        cur = await conn.execute(
            "SELECT entity FROM audit_event WHERE entity LIKE 'Consent/%%' ORDER BY id"
        )
        return [r[0] for r in await cur.fetchall()]

    return api.db(work)


def test_liaison_withdrawal_is_confirmed_named_reasoned_and_undone_the_same_day(api: Api) -> None:
    consent = api.world.consent_ids[IN_YAKSU]
    csrf = api.login_as("L10-01")
    # the button leads to a confirmation naming the resident; nothing changes yet
    confirm = api.client.get(f"/consents/{consent}/withdraw")
    assert confirm.status_code == 200
    assert "김하늘" in confirm.text
    assert "철회 이유" in confirm.text
    unconfirmed = api.client.post(f"/consents/{consent}/withdraw", data={"csrf_token": csrf})
    assert unconfirmed.headers["location"] == f"/consents/{consent}/withdraw"
    assert consent_row(api, consent)["withdrawn_at"] is None
    no_reason = api.client.post(
        f"/consents/{consent}/withdraw", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert no_reason.status_code == 400
    done = api.client.post(
        f"/consents/{consent}/withdraw",
        data={
            "csrf_token": csrf,
            "confirm": "yes",
            "reason": "본인 전화 요청",
            "effective_on": seoul_today().isoformat(),
        },
    )
    assert done.status_code == 303
    row = consent_row(api, consent)
    assert row["withdrawn_by"] == "L10-01"
    assert row["withdraw_reason"] == "본인 전화 요청"
    assert row["resource"]["resourceType"] == "Consent"
    assert row["resource"]["status"] == "inactive"
    assert row["resource"]["patient"] == {"reference": f"Patient/{IN_YAKSU}"}
    landed = api.client.get(done.headers["location"]).text
    assert "김하늘</strong> 님의 동의 철회를 기록했습니다" in landed  # the message names her
    assert f'href="/liaison#r-{IN_YAKSU}"' not in landed
    # undo, the same day: she is back on the list
    undo = api.client.post(f"/consents/{consent}/undo", data={"csrf_token": csrf})
    assert undo.status_code == 303
    assert consent_row(api, consent)["withdrawn_at"] is None
    assert consent_row(api, consent)["resource"]["status"] == "active"
    assert f'id="r-{IN_YAKSU}"' in api.client.get("/liaison").text
    assert audit_entities(api)[-2:] == ["Consent/withdraw", "Consent/undo-withdraw"]


def test_grant_is_confirmed_and_can_be_undone_today_but_not_later(api: Api) -> None:
    csrf = api.login_as("N01")
    form = {
        "csrf_token": csrf,
        "purpose": "care-coordination",
        "period_start": seoul_today().isoformat(),
    }
    confirm = api.client.post(f"/residents/{IN_YAKSU}/consents", data=form)
    assert confirm.status_code == 200
    assert "김하늘" in confirm.text
    assert "동의를 기록할까요" in confirm.text
    done = api.client.post(
        f"/residents/{IN_YAKSU}/consents",
        data={**form, "confirm": "yes", "reason": "서면 동의서 2026-101"},
    )
    assert done.status_code == 303
    consent_id = done.headers["location"].split("c=")[1].split("#")[0]
    row = consent_row(api, consent_id)
    assert row["reason"] == "서면 동의서 2026-101"
    assert row["resource"]["status"] == "active"
    assert "김하늘 님의 동의를 기록했습니다" in api.client.get(done.headers["location"]).text
    api.client.post(f"/consents/{consent_id}/undo", data={"csrf_token": csrf})
    row = consent_row(api, consent_id)
    assert row["cancelled_at"] is not None
    assert row["resource"]["status"] == "entered-in-error"
    # a decision of an earlier day stands
    older = api.world.consent_ids[IN_YAKSU]

    async def yesterday(conn: Any) -> None:
        await conn.execute(
            "UPDATE consent SET recorded_at = now() - interval '2 days' WHERE id::text = %s",
            (older,),
        )

    api.db(yesterday)
    late = api.client.post(f"/consents/{older}/undo", data={"csrf_token": csrf})
    assert late.status_code == 400
    # a withdrawal dated the day the resident said so
    when = (seoul_today() - timedelta(days=3)).isoformat()
    api.client.post(
        f"/consents/{older}/withdraw",
        data={"csrf_token": csrf, "confirm": "yes", "reason": "방문 시 철회", "effective_on": when},
    )
    assert str(consent_row(api, older)["withdrawn_at"].date()) <= when
    assert "Consent/undo-grant" in audit_entities(api)
