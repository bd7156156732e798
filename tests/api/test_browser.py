"""Browser tests in headless Chromium (Chrome DevTools Protocol over a pipe): the worklist, the
resident page and the station screen, driven like a user would (sign in through the form, click,
type, press keys), with screenshots saved under test-artifacts/browser/.

Skipped with the reason when Chromium is not installed (scripts/system-deps.sh installs it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from api.main import create_app
from daon.embedded import free_port
from tests.api import readings
from tests.api.cdp import Browser, find_chromium
from tests.api.conftest import make_config, run_db
from tests.api.test_worklist import seed_flags
from tests.api.world import CARD, IN_YAKSU, NO_LIAISON, PASSWORD, World

pytestmark = [pytest.mark.db, pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
CHROMIUM = find_chromium()
TABLET = (1024, 768)  # a nurse's tablet, landscape
KIOSK = (1080, 1920)  # the station's portrait touch screen


@pytest.fixture
def live(world_url: tuple[str, World]) -> Iterator[str]:
    """The app served by uvicorn on a free port (the real lifespan, pool and all)."""
    url, _ = world_url
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(make_config(url)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip(
            "Chromium is not installed (apt-get install chromium; see scripts/system-deps.sh)"
        )
    b = Browser(CHROMIUM, *TABLET)
    try:
        yield b
    finally:
        b.close()


def sign_in(b: Browser, base: str, username: str) -> None:
    b.goto(f"{base}/login")
    b.fill("#username", username)
    b.fill("#password", PASSWORD)
    b.click_and_wait("form button[type=submit]")


def seed_history(conn: Any) -> None:
    """A month of readings for R0000001 (the resident page's charts)."""

    async def go() -> None:
        now = datetime.now(UTC)
        for day in range(30):
            at = now - timedelta(days=day, hours=2)
            await readings.blood_pressure(conn, IN_YAKSU, at, 128 + (day * 7) % 19, 78 + day % 9)
            if day % 2 == 0:
                await readings.simple(
                    conn, IN_YAKSU, at + timedelta(minutes=5), "glucose", 96 + day % 40
                )
            if day % 5 == 0:
                await readings.simple(
                    conn, IN_YAKSU, at + timedelta(minutes=9), "weight", 58.0 + day / 20
                )
                await readings.simple(
                    conn, IN_YAKSU, at + timedelta(minutes=9), "body_fat", 31.0 + day / 15
                )
                await readings.simple(
                    conn, IN_YAKSU, at + timedelta(minutes=9), "muscle_mass", 17.0 - day / 60
                )

    return go()


def test_worklist_in_a_browser(live: str, browser: Browser, world_url) -> None:
    run_db(world_url[0], seed_flags)
    sign_in(browser, live, "n01")
    assert browser.evaluate("location.pathname") == "/worklist"
    text = browser.text()
    assert "위급" in text
    assert "김하늘" in text
    browser.screenshot(ARTIFACTS / "worklist-tablet.png")
    # keyboard: the first Tab reaches the skip link, which leads to the content
    browser.evaluate("document.activeElement.blur()")
    browser.press("Tab", key_code=9)
    assert browser.evaluate("document.activeElement.className") == "skip"
    # acknowledge the critical flag with a click
    browser.click_and_wait("form[action$='/acknowledge'] button")
    assert "확인했습니다" in browser.text()
    assert "확인 / ack 테스트 N01" in browser.text()


def test_resident_page_in_a_browser(live: str, browser: Browser, world_url) -> None:
    run_db(world_url[0], seed_history)
    run_db(world_url[0], seed_flags)
    sign_in(browser, live, "n01")
    browser.goto(f"{live}/residents/{IN_YAKSU}?days=30")
    charts = browser.evaluate(
        "[...document.querySelectorAll('figure.chart > svg')].map(s => "
        "[s.getBoundingClientRect().width, s.querySelectorAll('circle').length])"
    )
    assert len(charts) == 4
    assert all(width > 300 for width, _ in charts)  # laid out, not collapsed
    assert [points for _, points in charts[:2]] == [60, 15]  # 30 BP × sys/dia, 15 glucose
    assert "BP-CRISIS" in browser.text()
    browser.screenshot(ARTIFACTS / "resident-tablet.png", full_page=False)
    browser.screenshot(ARTIFACTS / "resident-tablet-full.png")
    for section in ("trends", "flags", "enter"):
        browser.evaluate(f"document.getElementById('{section}').scrollIntoView()")
        browser.screenshot(ARTIFACTS / f"resident-tablet-{section}.png", full_page=False)
    # enter a reading from the home visit with the keyboard-friendly form
    browser.fill("input[name=systolic]", "136")
    browser.fill("input[name=diastolic]", "88")
    browser.click_and_wait("form[action$='/readings'] button[type=submit]")
    assert "측정값을 저장했습니다" in browser.text()
    assert "136/88 mmHg" in browser.text()


def test_station_screen_in_a_browser(live: str, browser: Browser, world_url) -> None:
    browser.set_viewport(*KIOSK)
    sign_in(browser, live, "s-yaksu-1")
    assert browser.evaluate("location.pathname") == "/station"
    assert browser.evaluate("document.activeElement.id") == "card_number"  # ready to type
    browser.screenshot(ARTIFACTS / "station-welcome.png", full_page=False)
    # the on-screen number pad types the card (a touch kiosk has no keyboard) ...
    for digit in CARD[IN_YAKSU][:4]:
        browser.evaluate(f"document.querySelector('.keypad [data-key=\"{digit}\"]').click()")
    assert browser.evaluate("document.getElementById('card_number').value") == CARD[IN_YAKSU][:4]
    # ... and a keyboard or card reader works too: type the rest and press Enter
    browser.fill("#card_number", CARD[IN_YAKSU][4:])
    browser._drain()
    browser.press("Enter", key_code=13)
    browser.wait_event("Page.loadEventFired")
    assert "김*늘 님" in browser.text()

    async def measure(conn: Any) -> None:
        await readings.blood_pressure(conn, IN_YAKSU, datetime.now(UTC), 152, 94)
        await readings.blood_pressure(conn, NO_LIAISON, datetime.now(UTC), 120, 70)

    run_db(world_url[0], measure)
    deadline = time.monotonic() + 15  # the result appears by itself (no refresh button)
    while "152/94" not in browser.text() and time.monotonic() < deadline:
        time.sleep(0.2)
    text = browser.text()
    assert "152/94" in text
    assert (
        "한 번의 측정으로 판단하지 않습니다" in text
    )  # clinical-rules.md §2: never from one reading
    size = browser.evaluate(
        "parseFloat(getComputedStyle(document.querySelector('.big-value')).fontSize)"
    )
    assert size >= 60  # large type for older residents
    browser.screenshot(ARTIFACTS / "station-reading.png", full_page=False)
    browser.click_and_wait("form[action='/station/finish'] button")
    assert "건강카드 번호" in browser.text()
