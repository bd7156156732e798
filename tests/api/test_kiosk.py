"""The station screen as a resident alone uses it (issue 15.1), in headless Chromium at the
three sizes of the issue: a tablet kiosk (800×1280), a desktop (1280×900) and a phone (390×844).

Checked on each: the centre and station are named; no staff control is visible; nothing lies
outside the viewport (element boxes against the window); the 확인 button is on screen without
scrolling (tablet, desktop) and the keypad stays inside its card; a wrong card keeps the typed
digits; results appear by themselves as each measurement is stored, blood pressure first; 측정 끝
and an idle screen leave nothing of the resident behind. Screenshots go to
test-artifacts/browser/kiosk-*.png.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api import readings
from tests.api.cdp import Browser
from tests.api.conftest import run_db
from tests.api.test_browser import ARTIFACTS, browser, live, sign_in  # noqa: F401
from tests.api.world import CARD, IN_YAKSU

pytestmark = [pytest.mark.db, pytest.mark.browser, pytest.mark.slow]

SIZES = {"tablet": (800, 1280), "desktop": (1280, 900), "phone": (390, 844)}

#: Visible elements whose box leaves the viewport horizontally (text that falls off-screen).
OUTSIDE = """(() => {
  const w = window.innerWidth, out = [];
  for (const e of document.querySelectorAll("main *, header *")) {
    const r = e.getBoundingClientRect(), s = getComputedStyle(e);
    if (!r.width || !r.height || s.visibility === "hidden" || e.closest("[hidden]")) continue;
    if (e.classList.contains("sr-only") || e.closest(".skip")) continue;
    if (r.left < -1 || r.right > w + 1) out.push(e.tagName + "." + e.className + " " +
      Math.round(r.left) + ".." + Math.round(r.right) + " of " + w);
  }
  if (document.documentElement.scrollWidth > w + 1) out.push("page scrolls sideways");
  return out;
})()"""

VISIBLE_CONTROLS = """[...document.querySelectorAll("a, button")]
  .filter(e => e.getBoundingClientRect().width > 0 && !e.closest("[hidden]"))
  .map(e => e.innerText.trim())"""


def box(b: Browser, selector: str) -> dict[str, float]:
    found: dict[str, float] = b.evaluate(
        f"(() => {{ const r = document.querySelector('{selector}').getBoundingClientRect();"
        " return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; })()"
    )
    return found


def wait_for(b: Browser, expression: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not b.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {expression}")
        time.sleep(0.2)


@pytest.mark.parametrize("size", list(SIZES))
def test_a_resident_alone_at_the_kiosk(
    live: str,  # noqa: F811
    browser: Browser,  # noqa: F811
    world_url: Any,
    size: str,
) -> None:
    width, height = SIZES[size]
    browser.set_viewport(width, height)
    sign_in(browser, live, "s-yaksu-1")
    assert browser.evaluate("location.pathname") == "/station"
    text = browser.text()
    assert "약수동 U-건강센터" in text  # the centre and the station are named
    assert "약수 1번 측정대" in text
    controls = browser.evaluate(VISIBLE_CONTROLS)
    assert not [c for c in controls if "로그아웃" in c or "Sign out" in c]  # no staff controls
    assert browser.evaluate(OUTSIDE) == []
    card, pad, go = box(browser, ".welcome"), box(browser, ".keypad"), box(browser, ".go")
    assert card["left"] <= pad["left"]
    assert pad["right"] <= card["right"]
    assert card["top"] <= pad["top"]
    assert pad["bottom"] <= card["bottom"]
    if size != "phone":
        assert go["bottom"] <= height  # 확인 is on screen without scrolling
    browser.screenshot(ARTIFACTS / f"kiosk-{size}-welcome.png", full_page=False)

    # a wrong card: the message says so and the typed digits stay
    for digit in "1234":
        browser.evaluate(f"document.querySelector('.keypad [data-key=\"{digit}\"]').click()")
    browser.click_and_wait(".go")
    assert "카드를 찾을 수 없습니다" in browser.text()
    assert browser.evaluate("document.getElementById('card_number').value") == "1234"
    assert browser.evaluate(OUTSIDE) == []
    browser.screenshot(ARTIFACTS / f"kiosk-{size}-wrong-card.png", full_page=False)

    browser.evaluate("document.getElementById('card_number').value = ''")
    browser.fill("#card_number", CARD[IN_YAKSU])
    browser.click_and_wait(".go")
    assert "김*늘 님" in browser.text()
    assert "새로 고침" not in browser.text()

    async def glucose(conn: Any) -> None:
        await readings.simple(conn, IN_YAKSU, datetime.now(UTC), "glucose", 104)

    async def pressure(conn: Any) -> None:
        await readings.blood_pressure(
            conn, IN_YAKSU, datetime.now(UTC) - timedelta(seconds=30), 152, 94
        )

    # each result appears by itself as it is stored (nobody touches the screen)
    run_db(world_url[0], glucose)
    wait_for(browser, "document.querySelectorAll('article.reading').length === 1")
    run_db(world_url[0], pressure)
    wait_for(browser, "document.querySelectorAll('article.reading').length === 2")
    titles = browser.evaluate(
        "[...document.querySelectorAll('article.reading .big-value')].map(e => e.innerText)"
    )
    assert "152/94" in titles[0]  # blood pressure first, though measured before the glucose
    assert browser.evaluate(OUTSIDE) == []
    assert browser.evaluate(
        "parseFloat(getComputedStyle(document.querySelector('.big-value')).fontSize)"
    ) >= (40 if size == "phone" else 60)
    browser.screenshot(ARTIFACTS / f"kiosk-{size}-results.png", full_page=False)
    browser.screenshot(ARTIFACTS / f"kiosk-{size}-results-full.png")

    if size == "tablet":
        # the resident walks away: after the idle time the screen clears itself
        browser.evaluate("document.getElementById('kiosk').dataset.idle = '2'")
        browser._drain()
        browser.wait_event("Page.loadEventFired", timeout=15)
        wait_for(browser, "document.getElementById('kiosk').dataset.state === 'welcome'")
    else:
        browser.click_and_wait("form.finish button")
    text = browser.text()
    assert "건강카드 번호" in text
    assert "김*늘" not in text
    assert "152/94" not in text
