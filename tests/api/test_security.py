"""Regression tests of the adversarial pass (issue 13): each failed before its fix."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api import readings
from tests.api.conftest import Api
from tests.api.world import CARD, IN_HWANGHAK, IN_YAKSU

pytestmark = pytest.mark.db


def kiosk_checkin(api: Api, card: str) -> Any:
    csrf = api.login_as("S-yaksu-1")
    return api.client.post("/station/checkin", data={"card_number": card, "csrf_token": csrf})


def test_the_kiosk_never_reads_the_fhir_api_and_its_screen_shows_only_this_visit(
    api: Api,
) -> None:
    """13.2: right after a card check-in the kiosk read the resident's whole history."""
    week_ago = datetime.now(UTC) - timedelta(days=7)
    api.db(lambda conn: readings.blood_pressure(conn, IN_YAKSU, week_ago, 151, 93))
    assert kiosk_checkin(api, CARD[IN_YAKSU]).status_code == 303
    for path in (
        "/fhir/Observation?_count=500",
        f"/fhir/Observation?patient={IN_YAKSU}",
        f"/fhir/Observation/$lastn?patient={IN_YAKSU}",
        f"/fhir/Patient/{IN_YAKSU}",
    ):
        with_session = api.client.get(path)
        with_token = api.client.get(path, headers=api.bearer("S-yaksu-1"))
        assert with_session.status_code == 403, path
        assert with_token.status_code == 403, path
        assert "151" not in with_session.text + with_token.text
    time.sleep(0.01)
    api.db(lambda conn: readings.blood_pressure(conn, IN_YAKSU, datetime.now(UTC), 134, 84))
    screen = api.client.get("/station").text
    assert "134/84" in screen  # the reading just taken
    assert "151/93" not in screen  # never the history
    assert api.client.get(f"/residents/{IN_YAKSU}").status_code == 403


def test_staff_pages_refuse_gateway_sessions(api: Api) -> None:
    """A gateway service account has no web session, whatever cookie it holds."""
    api.login_as("G-yaksu-1")
    home = api.client.get("/worklist")
    assert home.status_code == 303
    assert home.headers["location"] == "/login"


def test_not_yours_and_does_not_exist_get_one_answer(api: Api) -> None:
    """13.6: 403 for another centre's resident but 404 for a made-up id told an outsider which
    ids exist (residents, consents, observations, unbound readings)."""
    api.login_as("N01")
    pages = [api.client.get(f"/residents/{rid}") for rid in (IN_HWANGHAK, "R9999999")]
    assert pages[0].status_code == pages[1].status_code == 403
    assert pages[0].text == pages[1].text
    fhir = [
        api.client.get(f"/fhir/Patient/{rid}", headers=api.bearer("N01"))
        for rid in (IN_HWANGHAK, "R9999999")
    ]
    assert fhir[0].status_code == fhir[1].status_code == 403
    assert fhir[0].json() == fhir[1].json()
    csrf = api.login_as("L10-01")
    consent = api.world.consent_ids[IN_HWANGHAK]  # another officer's resident
    made_up = "00000000-0000-4000-8000-000000000000"
    answers = [
        api.client.post(f"/consents/{cid}/withdraw", data={"csrf_token": csrf})
        for cid in (consent, made_up)
    ]
    assert answers[0].status_code == answers[1].status_code == 403
    assert answers[0].text == answers[1].text
    # the admin sees everything, so "not found" tells her nothing she could not read
    admin = api.client.get("/fhir/Patient/R9999999", headers=api.bearer("A01"))
    assert admin.status_code == 404
