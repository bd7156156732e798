"""No user-facing string lacks Korean (issue 15.2), checked on every page the web app serves,
for every role, rendered by the real app against a real database with populated data.

The whole ``daon demo`` (``demo_stack``: seed, 90-day history through ingest, every service)
serves the pages; headless Chromium walks them as each kind of user: a nurse, a team lead, the
therapist, a liaison officer, the administrator, the resident station (welcome, a wrong card,
a visit with results) and nobody (the sign-in page). From each user's home page it follows every
link of the app (one page per route and query shape; two resident pages), submits the search
box, opens the error pages and each page's message after an action. Every GET page of the app
must be reached by some user, so a new page is checked as soon as it exists.

On each page every text node (hidden ones too: a closed ``<details>``, the SVG charts' titles,
``<option>``\\s) and every ``title``, ``aria-label``, ``placeholder`` and ``alt`` attribute is a
chunk of user-facing text, judged by :func:`problem`:

- a chunk with Hangul reads Korean first: no English word or rule id before the first Korean,
  and in "Korean / English" none in the Korean part either (a flag's "(mean 142/91 mmHg)");
- a chunk without Hangul that holds an English word, a rule id (BP-CRISIS, Q-04) or a FHIR code
  (85354-9) is allowed only as the *second, smaller* part of a Korean text: in its text block
  (the nearest ancestor that is not inline) Korean comes before it, and the last Korean before
  it is drawn in a larger font. Attributes have no smaller part: they carry Korean themselves;
- numbers, dates, ids of residents and staff, units and the acronyms Korean clinical writing
  uses as they are (BMI, HbA1c, PHQ-9, FHIR ...) are neutral; so are machine identifiers in
  ``<code>``/``<kbd>`` and proper names marked ``translate="no"`` (device models).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from api import glossary
from api.main import create_app
from daon.demo import PEOPLE_STATION, demo_roster
from simulators.demo_data import demo_world
from tests.api import readings
from tests.api.cdp import Browser
from tests.api.conftest import DemoStack, make_config, run_db
from tests.api.screens import CHUNKS, problem
from tests.api.test_access_matrix import app_routes
from tests.api.test_browser import CHROMIUM
from tests.api.test_demo_screens import first_pass, use_session

pytestmark = [
    pytest.mark.db,
    pytest.mark.mqtt,
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.xdist_group("demo"),
]


@dataclass(frozen=True)
class Found:
    who: str
    url: str
    where: str
    text: str
    why: str

    def line(self) -> str:
        return f"{self.who} {self.url} [{self.where}] {self.why}: {self.text[:120]!r}"


#: Route patterns whose pages are not HTML for people or are not pages at all.
NOT_PAGES = re.compile(r"^/(?:fhir|static|docs|redoc|openapi\.json|alerts/stream)(?:/|$)")


def route_of(path: str, patterns: list[tuple[str, re.Pattern[str]]]) -> str | None:
    for route, pattern in patterns:
        if pattern.fullmatch(path):
            return route
    return None


def shape(url: str) -> str:
    """One key per route and query shape: /residents/R0001?days=7 → /residents/*?days."""
    parts = urlsplit(url)
    path = re.sub(r"/(?:R\d+|\d+|[0-9a-f]{8}-[0-9a-f-]{27,})(?=/|$)", "/*", parts.path)
    names = sorted({k for k, _ in parse_qsl(parts.query, keep_blank_values=True)})
    return path + ("?" + "&".join(names) if names else "")


LINKS = """[...new Set([...document.querySelectorAll("a[href]")]
  .map(a => a.href).filter(h => h.startsWith(location.origin))
  .map(h => h.split("#")[0]))]"""


class Crawl:
    def __init__(self, b: Browser, demo: DemoStack, patterns: list[tuple[str, re.Pattern[str]]]):
        self.b, self.demo, self.patterns = b, demo, patterns
        self.found: list[Found] = []
        self.routes: set[str] = set()
        self.pages = 0

    def check(self, who: str) -> None:
        """Judge the page the browser shows now."""
        url = self.b.evaluate("location.pathname + location.search")
        route = route_of(urlsplit(url).path, self.patterns)
        if route:
            self.routes.add(route)
        self.pages += 1
        if "?m=" in url and not self.b.evaluate("!!document.querySelector('.okbox')"):
            self.found.append(Found(who, url, "main", "", "the message after an action is missing"))
        seen: set[tuple[str, str]] = set()
        for chunk in self.b.evaluate(CHUNKS):
            why = problem(chunk)
            if why and (chunk["text"], chunk["where"]) not in seen:
                seen.add((chunk["text"], chunk["where"]))
                self.found.append(Found(who, url, chunk["where"], chunk["text"], why))

    def walk(self, who: str, start: str, extra: tuple[str, ...] = (), limit: int = 60) -> None:
        """Every page reachable by links from ``start``, one per shape (two resident pages)."""
        queue = [start, *extra]
        taken: dict[str, int] = {}
        visited: set[str] = set()
        while queue and len(visited) < limit:
            url = queue.pop(0)
            full = url if url.startswith("http") else self.demo.base + url
            key = shape(full)
            if full in visited or taken.get(key, 0) >= (2 if key.startswith("/residents/") else 1):
                continue
            path = urlsplit(full).path
            if NOT_PAGES.match(path):
                continue
            visited.add(full)
            taken[key] = taken.get(key, 0) + 1
            self.b.goto(full)
            requested = route_of(path, self.patterns)  # "/" answers with a redirect
            if requested:
                self.routes.add(requested)
            self.check(who)
            queue += [link for link in self.b.evaluate(LINKS) if link not in visited]


def page_patterns(database_url: str) -> list[tuple[str, re.Pattern[str]]]:
    """The app's GET pages (from its own routes) as (route, regular expression)."""
    app = create_app(make_config(database_url))
    out = []
    for method, route in app_routes(app.routes):  # type: ignore[arg-type]
        if method != "GET" or NOT_PAGES.match(route):
            continue
        out.append((route, re.compile(re.sub(r"\{[^}]+\}", r"[^/]+", route))))
    return out


@pytest.fixture(scope="module")
def crawl_browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip(
            "Chromium is not installed (apt-get install chromium; see scripts/system-deps.sh)"
        )
    b = Browser(CHROMIUM, 1280, 900)
    try:
        yield b
    finally:
        b.close()


def station_visit(crawl: Crawl, demo: DemoStack) -> None:
    """The resident station as a resident uses it: welcome, a wrong card, a visit with three
    results (stored as ingest stores them, after the check-in), two of them urgent."""
    b, who = crawl.b, "station"
    use_session(b, demo, f"kiosk-{PEOPLE_STATION}")
    b.goto(f"{demo.base}/station")
    crawl.check(who)
    b.evaluate("document.getElementById('card_number').value = '0000-0000'")
    b.click_and_wait(".go")
    crawl.check(who)
    resident = next(r for r in demo_world().residents if r.centre == "pil")
    b.evaluate("document.getElementById('card_number').value = ''")
    b.fill("#card_number", resident.card_number)
    b.click_and_wait(".go")
    now = datetime.now(UTC)

    async def measure(conn: Any) -> None:  # a crisis, a low sugar: the longest instructions
        await readings.blood_pressure(conn, resident.id, now, 186, 121)
        await readings.simple(conn, resident.id, now, "glucose", 52)
        await readings.simple(conn, resident.id, now, "weight", 61.5)

    run_db(demo.database_url, measure)
    b.goto(f"{demo.base}/station")
    assert b.evaluate("document.querySelectorAll('article.reading').length") == 3
    crawl.check(who)
    b.click_and_wait("form.finish button")


def test_every_page_speaks_korean_first_for_every_role(
    demo_stack: DemoStack, crawl_browser: Browser
) -> None:
    demo, b = demo_stack, crawl_browser
    first_pass(demo)
    world = demo_world()
    leads = sorted({d["team_lead"] for d in demo_roster()["neighbourhood"].values()})
    nurse = next(n.id for n in world.nurses if n.id not in leads)
    patterns = page_patterns(demo.database_url)
    crawl = Crawl(b, demo, patterns)

    b.call("Storage.clearCookies", {})
    b.goto(f"{demo.base}/login")
    crawl.check("nobody")
    b.fill("#username", "nobody")
    b.fill("#password", "wrong")
    b.click_and_wait("form button[type=submit]")
    crawl.check("nobody")

    # each page's message after an action (?m=key), once per page
    said = {}
    for key in glossary.MESSAGES:
        page, _, what = key.partition(".")
        said.setdefault(page, what)
    paths = {
        "worklist": "/worklist",
        "unbound": "/unbound",
        "registry": "/admin/registry",
        "users": "/admin/users",
        "account": "/account",
        "dead-letters": "/admin/dead-letters",
        "tokens": "/admin/tokens",
        "stations": "/stations",
    }
    messages = tuple(f"{path}?m={said[page]}" for page, path in paths.items())

    name = world.residents[0].name
    for who, user in (
        ("nurse", nurse),
        ("lead", leads[0]),
        ("therapist", world.therapists[0].id),
        ("liaison", world.liaisons[0].id),
        ("admin", "admin"),
    ):
        use_session(b, demo, user)
        searches = () if who == "liaison" else (f"/search?q={name[:2]}", "/search?q=없는사람")
        # error pages: not theirs or none, no such page, a form's address opened (405)
        extra = (*searches, "/residents/R9999999", "/no-such-page", "/logout")
        if who == "admin":
            extra += messages
        if who == "liaison":
            extra += (f"/liaison?m={said['liaison']}",)
        crawl.walk(who, "/", extra=extra)
    station_visit(crawl, demo)

    unreached = sorted({route for route, _ in patterns} - crawl.routes - {"/logout"})
    assert unreached == [], f"pages no user reached: {unreached}"
    assert crawl.pages >= 40, crawl.pages
    assert crawl.found == [], f"{len(crawl.found)} chunks:\n" + "\n".join(
        f.line() for f in crawl.found
    )


@pytest.mark.parametrize(
    ("text", "secondary", "attr", "bad"),
    [
        ("확인 / Acknowledge", False, "", False),
        ("Critical: contact within 1 hour", False, "", True),
        ("Critical: contact within 1 hour", True, "", False),
        ("BP-CRISIS", False, "", True),
        ("BP-CRISIS", True, "", False),
        ("85354-9", False, "", True),
        ("HOPERAT", False, "", True),
        ("search-type", False, "", True),
        ("R0001", False, "", False),
        ("2026-12-07 14:00", False, "", False),
        ("128/82 mmHg", False, "", False),
        ("BMI 24.1", False, "", False),
        ("Daon 다온", False, "", True),
        ("BP-CRISIS 고혈압 위기", False, "", True),
        ("R0001 김*늘", False, "", False),
        ("My account", False, "title", True),
        ("My account", True, "title", True),
        ("내 계정 / My account", False, "title", False),
        ("0분 전", False, "", False),
        (
            "고혈압 의심 (mean 142/91 mmHg) / suspected hypertension (mean 142/91 mmHg)",
            False,
            "",
            True,
        ),
        (
            "고혈압 의심 (평균 142/91 mmHg) / suspected hypertension (mean 142/91 mmHg)",
            False,
            "",
            False,
        ),
        ("병원 EMR 연동 / hospital EMR", False, "placeholder", False),
        ("n01", False, "", False),
    ],
)
def test_the_judge(text: str, secondary: bool, attr: str, bad: bool) -> None:
    chunk = {"text": text, "secondary": secondary and not attr, "attr": attr, "where": ""}
    assert (problem(chunk) is not None) is bad


#: A page with one of each case; the ids of the chunks the judge must report.
SAMPLE = """<!doctype html><html lang="ko"><head><style>
.en, small { font-size: .8em; } h2 { display: flex; gap: .5em; }</style></head><body><main>
<h2>위급 <span class="badge">1</span> <span class="en">Critical: within 1 hour</span></h2>
<h2>Critical <span class="en">위급</span></h2>
<p>Only English here</p>
<table><tr><td>고혈압 위기 수치<br><small class="rule-id">BP-CRISIS</small></td>
  <td>BP-CRISIS</td><td>R0000001</td><td>128/82 mmHg</td><td>85354-9</td></tr></table>
<p>확인 <span>Check</span></p>
<p><strong>다음 할 일</strong> <small>Next</small></p>
<button title="Close">닫기</button> <button title="닫기 / Close">X</button>
<input placeholder="이름 / name"> <input placeholder="name">
<p><code>yaksu-gw-1</code> <span translate="no">Omron HEM-7600T</span></p>
<details><summary>보기</summary><p>Hidden English sentence</p></details>
<svg><circle r="3"><title>systolic 128</title></circle></svg>
<select><option>blood-pressure</option><option>혈압계 / monitor</option></select>
</main></body></html>"""
FLAGGED = {
    "Critical",
    "Only English here",
    "BP-CRISIS",
    "85354-9",
    "Check",
    "Close",
    "name",
    "Hidden English sentence",
    "systolic 128",
    "blood-pressure",
}


def test_the_judge_in_the_browser(crawl_browser: Browser) -> None:
    """The page walker and the judge together, on markup with a known answer: what is English
    first, English alone, English as large as its Korean, an attribute without Korean, a rule
    id or code as the main text, hidden text, a chart's title; and what is not."""
    crawl_browser.goto("data:text/html;charset=utf-8," + quote(SAMPLE))
    chunks = crawl_browser.evaluate(CHUNKS)
    flagged = {c["text"] for c in chunks if problem(c)}
    assert flagged == FLAGGED
    texts = {c["text"] for c in chunks}
    assert {"Critical: within 1 hour", "Next", "R0000001", "닫기 / Close"} <= texts  # judged, fine
    assert not {"yaksu-gw-1", "Omron HEM-7600T"} & texts  # machine ids and names: not language
