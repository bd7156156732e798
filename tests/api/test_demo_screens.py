"""Every role sees a populated screen on a fresh demo (issue 15.3), proved in headless Chromium.

The whole ``daon demo`` starts on an empty database (``demo_stack``: seed, 90-day history through
ingest, every service). Then, signed in as each member of staff the demo seeds (every nurse, the
team leads among them, the therapist, every liaison officer, the administrator) and as a station:

- each one's main screens hold real rows, not the empty state: the worklist (flags and a caseload
  count), the visit plan, a resident page whose charts carry points across the last 90 days, the
  therapist's rehabilitation list, the liaison officer's residents and visits, the admin pages;
- one user of each kind is drawn at 1280×900, 800×1280 and 390×844: nothing falls off the side,
  the Korean headings are drawn with a Korean font, and each screenshot holds visible text
  (test-artifacts/browser/demo-<role>-<page>-<size>.png).

The login form is used once per kind of user; the other members of staff get their session from
the store (as the form does after the password check), which keeps 30 sign-ins of the demo's
scrypt cost out of the suite.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import AsyncConnection

from api.security import SESSION_COOKIE
from daon.demo import demo_roster
from simulators.demo_data import demo_world
from tests.api.cdp import Browser
from tests.api.conftest import DemoStack, run_db
from tests.api.screens import SIZES, korean_font, outside, screenshot_ink
from tests.api.test_browser import ARTIFACTS, CHROMIUM

pytestmark = [
    pytest.mark.db,
    pytest.mark.mqtt,
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.xdist_group("demo"),
]

PASSWORD = "daon-demo-2026"

#: Rows of the page's tables that hold content (an empty table has one row with a colspan cell).
ROWS = """[...document.querySelectorAll("main tbody tr")]
  .filter(tr => !tr.querySelector("td[colspan]")).length"""

#: Per chart on a resident page: number of points and, in days before now, the oldest and the
#: newest point (the period runs from the svg's data-x0 to data-x1 over ``days`` days).
CHART_SPAN = """((days) => [...document.querySelectorAll("figure.chart > svg")].map(svg => {
  const xs = [...svg.querySelectorAll("circle")].map(c => parseFloat(c.getAttribute("cx")));
  if (!xs.length) return [0, null, null];
  const x0 = parseFloat(svg.dataset.x0), x1 = parseFloat(svg.dataset.x1);
  const ago = (x) => days * (1 - (x - x0) / (x1 - x0));
  return [xs.length, ago(Math.min(...xs)), ago(Math.max(...xs))];
}))"""


@pytest.fixture(scope="module")
def demo_browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip(
            "Chromium is not installed (apt-get install chromium; see scripts/system-deps.sh)"
        )
    b = Browser(CHROMIUM, *SIZES["desktop"])
    try:
        yield b
    finally:
        b.close()


def use_session(b: Browser, demo: DemoStack, user_id: str) -> None:
    b.call("Storage.clearCookies", {})
    b.send(
        "Network.setCookie",
        {"name": SESSION_COOKIE, "value": demo.session(user_id), "url": demo.base},
    )


def sign_in_with_form(b: Browser, demo: DemoStack, username: str) -> str:
    b.call("Storage.clearCookies", {})
    b.goto(f"{demo.base}/login")
    b.fill("#username", username)
    b.fill("#password", PASSWORD)
    b.click_and_wait("form button[type=submit]")
    path: str = b.evaluate("location.pathname")
    return path


def rows(b: Browser, demo: DemoStack, path: str) -> int:
    b.goto(f"{demo.base}{path}")
    assert b.evaluate("document.title").find("오류") < 0, path
    count: int = b.evaluate(ROWS)
    return count


def resident_links(b: Browser) -> list[str]:
    links: list[str] = b.evaluate(
        """[...new Set([...document.querySelectorAll("main a[href^='/residents/R']")]
          .map(a => new URL(a.href).pathname))]"""
    )
    return [link for link in links if re.fullmatch(r"/residents/R\d+", link)]


def has_90_days(b: Browser, demo: DemoStack, links: list[str]) -> tuple[str, list[Any]]:
    """The first of ``links`` whose resident page draws a chart with points from the start
    of the last 90 days to its end; returns that page and its charts' spans."""
    spans: list[Any] = []
    for link in links[:6]:
        b.goto(f"{demo.base}{link}?days=90")
        spans = b.evaluate(f"{CHART_SPAN}(90)")
        if any(n >= 10 and oldest >= 75 and newest <= 10 for n, oldest, newest in spans):
            return link, spans
    where = b.evaluate("location.href")
    raise AssertionError(f"{where}: no resident of {links[:6]} has a chart over 90 days: {spans}")


def first_pass(demo: DemoStack) -> float:
    """Wait for the clinical runner's first pass over every resident (flags, visiting groups,
    visit plans come from it) with readings; the issue allows a minute from the start. Returns
    the seconds waited after the banner."""

    async def evaluated(conn: AsyncConnection[Any]) -> tuple[int, int]:
        row = await (
            await conn.execute(
                "SELECT (SELECT count(DISTINCT resident_id) FROM observation), "
                "(SELECT count(*) FROM clinical_cursor)"
            )
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    started = time.monotonic()
    while True:
        residents, done = run_db(demo.database_url, evaluated)
        if residents and done >= residents:
            return time.monotonic() - started
        assert time.monotonic() - started < 60, f"{done} of {residents} evaluated after 60 s"
        time.sleep(0.5)


def test_every_role_sees_a_populated_screen(demo_stack: DemoStack, demo_browser: Browser) -> None:
    demo, b = demo_stack, demo_browser
    world = demo_world()
    leads = {duty["team_lead"] for duty in demo_roster()["neighbourhood"].values()}
    assert leads
    empty: list[str] = []
    first_pass(demo)

    # every nurse: flags in the worklist, a caseload, a visit plan, a resident with 90 days
    for nurse in world.nurses:
        use_session(b, demo, nurse.id)
        if rows(b, demo, "/worklist") == 0:
            empty.append(f"{nurse.id} worklist")
        caseload = re.search(r"담당 주민 (\d+)명", b.text())
        if caseload is None or int(caseload.group(1)) == 0:
            empty.append(f"{nurse.id} caseload")
        links = resident_links(b)
        if rows(b, demo, "/visits") == 0:
            empty.append(f"{nurse.id} visits")
        links += [link for link in resident_links(b) if link not in links]
        has_90_days(b, demo, links)
    # every liaison officer: consented residents and the month's visits
    for liaison in world.liaisons:
        use_session(b, demo, liaison.id)
        if rows(b, demo, "/liaison") == 0:
            empty.append(f"{liaison.id} residents")
        if rows(b, demo, "/visits") == 0:
            empty.append(f"{liaison.id} visits")
    # the therapist: rehabilitation-room residents with body composition drawn
    for therapist in world.therapists:
        use_session(b, demo, therapist.id)
        if rows(b, demo, "/rehab") == 0:
            empty.append(f"{therapist.id} rehab")
        link, spans = has_90_days(b, demo, resident_links_of(b, demo, "/rehab"))
        assert spans[3][0] > 0, f"{link}: no body composition points"
    # the administrator: every list of the admin pages has rows
    use_session(b, demo, "admin")
    for path in ("/worklist", "/visits", "/rehab", "/admin/users", "/admin/tokens", "/admin/audit"):
        if rows(b, demo, path) == 0:
            empty.append(f"admin {path}")
    if rows(b, demo, "/admin/delivery") == 0:
        empty.append("admin /admin/delivery")
    assert empty == []


def resident_links_of(b: Browser, demo: DemoStack, path: str) -> list[str]:
    b.goto(f"{demo.base}{path}")
    return resident_links(b)


#: One user of each kind, signed in with the form, and the pages drawn at the three sizes.
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "nurse": ("", ("/worklist", "/visits", "resident")),  # the first team lead
    "therapist": ("t01", ("/rehab", "resident")),
    "liaison": ("l01-01", ("/liaison", "/visits")),
    "admin": ("admin", ("/worklist", "/admin/users", "/admin/audit", "/admin/registry")),
    "station": ("kiosk-pil-station-1", ("/station",)),
}


def test_each_kind_of_user_at_three_sizes(demo_stack: DemoStack, demo_browser: Browser) -> None:
    demo, b = demo_stack, demo_browser
    first_pass(demo)
    lead = sorted({d["team_lead"] for d in demo_roster()["neighbourhood"].values()})[0]
    problems: list[str] = []
    for kind, (username, pages) in KINDS.items():
        b.set_viewport(*SIZES["desktop"])
        home = sign_in_with_form(b, demo, username or lead.lower())
        assert home == pages[0], f"{kind} signed in to {home}"
        targets = []
        for page in pages:
            if page == "resident":
                b.goto(f"{demo.base}{pages[0]}")
                links = resident_links(b)
                assert links, f"{kind}: no resident on {pages[0]}"
                targets.append(("resident", links[0]))
            else:
                targets.append((page.strip("/").replace("/", "-"), page))
        for size, (width, height) in SIZES.items():
            b.set_viewport(width, height)
            for name, path in targets:
                b.goto(f"{demo.base}{path}")
                label = f"{kind} {path} {size}"
                if b.evaluate("document.title").find("오류") >= 0:
                    problems.append(f"{label}: error page")
                off = outside(b)
                if off:
                    problems.append(f"{label}: off-screen {off}")
                fonts = korean_font(b, "main h1, main h2, .welcome h1")
                if not any("CJK" in f or "Nanum" in f or "Noto Sans KR" in f for f in fonts):
                    problems.append(f"{label}: Korean drawn with {fonts}")
                ink = screenshot_ink(b, ARTIFACTS / f"demo-{kind}-{name}-{size}.png")
                if not 0.005 < ink < 0.6:
                    problems.append(f"{label}: screenshot ink {ink:.3f}")
    assert problems == [], "\n".join(problems)
