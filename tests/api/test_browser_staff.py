"""Staff tasks of issue 14 in headless Chromium, at a desktop (1280×900) and a tablet held
upright (800×1280): find a resident from the header, filter and page the worklist, enter what
devices do not measure, administer users and tokens. Screenshots go to
test-artifacts/browser/staff-*.png.
"""

from __future__ import annotations

import pytest

from tests.api.cdp import Browser
from tests.api.conftest import run_db
from tests.api.test_browser import (  # noqa: F401 (fixtures)
    ARTIFACTS,
    browser,
    live,
    seed_history,
    sign_in,
)
from tests.api.test_worklist import seed_flags
from tests.api.world import IN_YAKSU

pytestmark = [pytest.mark.db, pytest.mark.browser, pytest.mark.slow]

SIZES = {"desktop": (1280, 900), "tablet": (800, 1280)}


def no_sideways_scroll(b: Browser) -> bool:
    return bool(b.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


@pytest.mark.parametrize("size", SIZES)
def test_find_a_resident_from_the_header(live: str, browser: Browser, size: str) -> None:  # noqa: F811
    browser.set_viewport(*SIZES[size])
    sign_in(browser, live, "n01")
    assert browser.evaluate("location.pathname") == "/worklist"
    # the search box is in the header of every staff page
    browser.fill("header form.find input[name=q]", "하늘")
    browser.click_and_wait("header form.find button")
    assert browser.evaluate("location.pathname") == "/search"
    assert "김하늘" in browser.text()
    assert no_sideways_scroll(browser)
    browser.screenshot(ARTIFACTS / f"staff-search-{size}.png", full_page=False)
    browser.click_and_wait(f"table.results a[href='/residents/{IN_YAKSU}']")
    assert browser.evaluate("location.pathname") == f"/residents/{IN_YAKSU}"
    # an error page keeps the menu and the search box
    browser.goto(f"{live}/residents/R0000003")
    assert browser.evaluate("document.querySelectorAll('header nav a').length") >= 3
    assert browser.evaluate("!!document.querySelector('header form.find')")


@pytest.mark.parametrize("size", SIZES)
def test_worklist_filters_and_sort(live: str, browser: Browser, world_url, size: str) -> None:  # noqa: F811
    run_db(world_url[0], seed_flags)
    browser.set_viewport(*SIZES[size])
    sign_in(browser, live, "n01")
    browser.evaluate("document.getElementById('rule').value = 'GLU-HYPO-L1'")
    browser.evaluate("document.getElementById('sort').value = 'name'")
    browser.click_and_wait("form.filters button[type=submit]")
    text = browser.text()
    assert "최산" in text
    assert "김하늘" not in text
    assert "rule=GLU-HYPO-L1" in browser.evaluate("location.search")
    assert no_sideways_scroll(browser)
    browser.screenshot(ARTIFACTS / f"staff-worklist-filter-{size}.png", full_page=False)


@pytest.mark.parametrize("size", SIZES)
def test_phq9_entry_shows_the_urgent_flag_at_once(live: str, browser: Browser, size: str) -> None:  # noqa: F811
    browser.set_viewport(*SIZES[size])
    sign_in(browser, live, "n01")
    browser.goto(f"{live}/residents/{IN_YAKSU}")
    browser.evaluate("document.getElementById('entry-phq9').open = true")
    browser.fill("#phq9_total", "8")
    browser.fill("#phq9_item9", "2")
    browser.click_and_wait("#entry-phq9 button[type=submit]")
    result = browser.evaluate("document.getElementById('entry-result').innerText")
    assert "SCR-DEP-SUICIDE" in result
    assert no_sideways_scroll(browser)
    browser.evaluate("document.getElementById('entry-result').scrollIntoView()")
    browser.screenshot(ARTIFACTS / f"staff-phq9-{size}.png", full_page=False)


@pytest.mark.parametrize("size", SIZES)
def test_admin_without_a_terminal(live: str, browser: Browser, size: str) -> None:  # noqa: F811
    browser.set_viewport(*SIZES[size])
    sign_in(browser, live, "a01")
    browser.goto(f"{live}/admin/users")
    browser.evaluate("document.querySelector('details.card').open = true")
    browser.fill("#nu-id", f"N8{len(size)}")
    browser.fill("#nu-name", f"n8{len(size)}")
    browser.fill("#nu-display", "브라우저 간호사")
    browser.click_and_wait("form[action='/admin/users'] button[type=submit]")
    assert browser.evaluate("!!document.querySelector('code.secret')")
    assert "브라우저 간호사" in browser.text()
    assert no_sideways_scroll(browser)
    browser.screenshot(ARTIFACTS / f"staff-admin-users-{size}.png", full_page=False)
    for path in ("/admin/tokens", "/admin/registry", "/admin/dead-letters", "/admin/audit"):
        browser.goto(f"{live}{path}")
        assert browser.evaluate("document.querySelectorAll('header nav a').length") >= 6, path
        assert no_sideways_scroll(browser), path
    browser.screenshot(ARTIFACTS / f"staff-admin-audit-{size}.png", full_page=False)
    browser.goto(f"{live}/account")
    assert "비밀번호 바꾸기" in browser.text()


@pytest.mark.parametrize("size", SIZES)
def test_charts_fill_the_tablet_and_show_values_on_tap(
    live: str,  # noqa: F811
    browser: Browser,  # noqa: F811
    world_url,
    size: str,
) -> None:
    run_db(world_url[0], seed_history)
    browser.set_viewport(*SIZES[size])
    sign_in(browser, live, "n01")
    browser.goto(f"{live}/residents/{IN_YAKSU}?days=14")
    widths = browser.evaluate(
        "[...document.querySelectorAll('figure.chart > svg')].map(s => "
        "s.getBoundingClientRect().width)"
    )
    main = browser.evaluate("document.querySelector('main').getBoundingClientRect().width")
    if size == "tablet":
        assert min(widths) > 0.9 * main - 40  # one chart per row, full width
    browser.evaluate(
        "document.querySelector('figure.chart circle[data-v]').dispatchEvent("
        "new MouseEvent('click', {bubbles: true}))"
    )
    picked = browser.evaluate("document.querySelector('figure.chart .picked').textContent")
    assert "mmHg" in picked
    browser.evaluate("document.getElementById('trends').scrollIntoView()")
    browser.screenshot(ARTIFACTS / f"staff-charts-{size}.png", full_page=False)
