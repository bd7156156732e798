"""Charts (issue 14.5): the 'no readings' state, values on hover and tap, bands that do not
sit behind another series' points, the short ranges, legends as lists. Issue 15: a reading at
either end of the period (a single one measured just now) is drawn clear of the frame, and the
readings the quality filters keep out (clinical-rules.md §2, as the risk engine decides) are
open circles off the line, with a Korean legend entry, in the markup and in headless Chromium."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.charts import (
    EXCLUDED_LABEL,
    LEFT,
    PAD_X,
    RIGHT,
    STRIP,
    WIDTH,
    Band,
    Chart,
    Series,
    legend,
    render,
)
from tests.api import readings
from tests.api.cdp import Browser
from tests.api.conftest import Api, run_db
from tests.api.screens import SIZES, outside, screenshot_ink
from tests.api.test_browser import ARTIFACTS, browser, live, sign_in  # noqa: F401
from tests.api.world import IN_YAKSU

START = datetime(2026, 3, 1, tzinfo=UTC)


def chart(points: list[tuple[datetime, float]], band: Band) -> Chart:
    return Chart(
        title="혈압 / Blood pressure",
        unit="mmHg",
        series=[Series("수축기 / systolic", points, "#0b4f8a")],
        start=START,
        end=START + timedelta(days=7),
        bands=[band],
    )


def test_an_empty_chart_says_so() -> None:
    svg = render(chart([], Band(90, 120, "target")))
    assert "측정값 없음 / No readings" in svg
    assert "<circle" not in svg


def test_each_point_carries_its_value_for_hover_and_tap() -> None:
    svg = render(chart([(START + timedelta(days=2, hours=1), 128)], Band(90, 120, "t")))
    assert 'data-v="수축기 / systolic 128 mmHg · 03-03 10:00"' in svg  # Seoul time
    assert "<title>수축기 / systolic 128 mmHg · 03-03 10:00</title>" in svg


def test_a_strip_band_stays_beside_the_points() -> None:
    svg = render(chart([(START, 80)], Band(90, 120, "t", full_width=False)))
    widths = re.findall(
        r'<rect x="\d+" y="[\d.]+" width="([\d.]+)" height="[\d.]+" fill="#e3f1e6"', svg
    )
    assert widths == [str(STRIP)]


@pytest.mark.db
def test_resident_page_offers_short_ranges_and_list_legends(api: Api) -> None:
    api.login_as("N01")
    page = api.client.get(f"/residents/{IN_YAKSU}", params={"days": 7}).text
    for days in (7, 14, 30, 90, 180, 365):
        assert f"days={days}" in page
    assert '<ul class="legend">' in page
    assert page.count("측정값 없음 / No readings") == 4  # nothing measured yet


# --- issue 15: a single reading clear of the frame; quality-excluded readings apart ----------

FRAME_LEFT, FRAME_RIGHT = LEFT, WIDTH - RIGHT


def circles(svg: str) -> list[dict[str, str]]:
    return [
        dict(re.findall(r'([\w-]+)="([^"]*)"', attrs))
        for attrs in re.findall(r"<circle ([^>]*)>", svg)
    ]


@pytest.mark.parametrize("at", [START, START + timedelta(days=7)])
def test_a_single_reading_is_drawn_clear_of_the_frame(at: datetime) -> None:
    """A reading at the very start or end of the period (one measured just now) is drawn whole,
    inside the plot, never on its left or right edge."""
    svg = render(chart([(at, 128)], Band(90, 120, "t")))
    (point,) = circles(svg)
    cx, r = float(point["cx"]), float(point["r"])
    assert cx - r >= FRAME_LEFT + PAD_X / 2
    assert cx + r <= FRAME_RIGHT - PAD_X / 2
    # the period's ends are the svg's data-x0 and data-x1, inside the frame by PAD_X
    assert f'data-x0="{FRAME_LEFT + PAD_X}"' in svg
    assert f'data-x1="{FRAME_RIGHT - PAD_X}"' in svg


def test_excluded_readings_are_open_circles_off_the_line_with_a_legend() -> None:
    valid = [(START + timedelta(days=d), 130.0 + d) for d in (1, 3, 5)]
    why = "Q-04 움직임·커프·자세 오류 표시 / device reported movement, loose cuff or position"
    series = Series(
        "수축기 / systolic", valid, "#0b4f8a", excluded=[(START + timedelta(days=4), 190.0, why)]
    )
    c = Chart("혈압 / Blood pressure", "mmHg", [series], START, START + timedelta(days=7))
    svg = render(c)
    found = circles(svg)
    kept_out = [p for p in found if p.get("class") == "excluded"]
    assert len(kept_out) == 1
    assert [p.get("class") for p in found].count("valid") == 3
    assert kept_out[0]["fill"] == "#fff"  # open: the series' colour only as its outline
    assert kept_out[0]["stroke"] == "#0b4f8a"
    assert "제외 / excluded: Q-04 움직임" in kept_out[0]["data-v"]
    (line,) = re.findall(r'<polyline points="([^"]+)"', svg)
    assert f"{float(kept_out[0]['cx']):.1f}," not in line  # never joined to the valid readings
    assert len(line.split()) == 3
    assert "품질 기준 제외 1회" in svg  # the description says it too
    assert (EXCLUDED_LABEL, "#4a4a4a", "excluded") in legend(c)
    assert EXCLUDED_LABEL.startswith("품질 기준 제외")
    # nothing excluded: no legend entry
    assert all(kind != "excluded" for _, _, kind in legend(chart(valid, Band(90, 120, "t"))))


async def excluded_history(conn: Any) -> dict[str, str]:
    """Valid readings and two the quality filters keep out (clinical-rules.md §2): a cuff that
    reported body movement (Q-04) and a diastolic above the systolic (Q-02)."""
    now = datetime.now(UTC)
    for day in (1, 3, 5, 8):
        await readings.blood_pressure(conn, IN_YAKSU, now - timedelta(days=day), 132, 82)
    moved = await readings.blood_pressure(conn, IN_YAKSU, now - timedelta(days=2), 196, 124)
    await conn.execute(
        "UPDATE observation SET quality = ARRAY['body_movement'] WHERE id = %s", (moved.id,)
    )
    swapped = await readings.blood_pressure(conn, IN_YAKSU, now - timedelta(days=4), 80, 95)
    return {"Q-04": moved.id, "Q-02": swapped.id}


def excluded_marks(page: str) -> list[str]:
    return re.findall(r'<circle class="excluded"[^>]*data-v="([^"]*)"', page)


@pytest.mark.db
def test_resident_page_marks_quality_excluded_readings(api: Api) -> None:
    api.db(excluded_history)
    api.login_as("N01")
    page = api.client.get(f"/residents/{IN_YAKSU}", params={"days": 14}).text
    marks = excluded_marks(page)
    assert len(marks) == 4  # systolic and diastolic of each excluded reading
    assert sum("Q-04" in m for m in marks) == 2
    assert sum("Q-02" in m for m in marks) == 2
    assert any("196" in m for m in marks)  # the value is still shown, only kept apart
    legend_items = re.findall(r'<li class="excluded">(.*?)</li>', page, re.S)
    assert len(legend_items) == 1  # only the blood-pressure chart has excluded readings
    assert EXCLUDED_LABEL in legend_items[0]
    assert page.count("품질 기준 제외: ") == 2  # the readings table says which and why
    assert '<small class="rule-id">Q-04</small>' in page


@pytest.mark.db
@pytest.mark.browser
@pytest.mark.slow
def test_excluded_readings_and_a_single_reading_in_the_browser(
    live: str,  # noqa: F811
    browser: Browser,  # noqa: F811
    world_url: Any,
) -> None:
    """Drawn in headless Chromium: the open circles inside the plot, the legend in Korean, a
    lone weight reading clear of the frame, nothing off-screen, visible ink in the screenshot."""
    url = world_url[0]

    async def history(conn: Any) -> None:
        await excluded_history(conn)
        await readings.simple(conn, IN_YAKSU, datetime.now(UTC), "weight", 61.5)

    run_db(url, history)
    problems = []
    for size, (width, height) in SIZES.items():
        browser.set_viewport(width, height)
        if size == "desktop":
            sign_in(browser, live, "n01")
        browser.goto(f"{live}/residents/{IN_YAKSU}?days=14")
        boxes = browser.evaluate(PLOT_BOXES)
        bp, weight = boxes[0], boxes[2]
        assert len(bp["excluded"]) == 4, bp
        for plot in boxes:
            for point in plot["excluded"] + plot["valid"]:
                inside = (
                    plot["frame"]["left"] - 0.5 <= point["left"]
                    and point["right"] <= plot["frame"]["right"] + 0.5
                    and plot["frame"]["top"] - 0.5 <= point["top"]
                    and point["bottom"] <= plot["frame"]["bottom"] + 0.5
                )
                if not inside:
                    problems.append(f"{size}: a point outside its plot {point} {plot['frame']}")
        (lone,) = weight["valid"]
        scale = weight["frame"]["width"] / (WIDTH - LEFT - RIGHT)
        if weight["frame"]["right"] - lone["right"] < PAD_X / 2 * scale:
            problems.append(f"{size}: the single weight reading sits on the edge {weight}")
        legend_text = browser.evaluate(
            "document.querySelector('figure.chart li.excluded').innerText"
        )
        assert legend_text.strip().startswith("품질 기준 제외")
        off = outside(browser)
        if off:
            problems.append(f"{size}: off-screen {off}")
        browser.evaluate("document.querySelector('figure.chart').scrollIntoView()")
        ink = screenshot_ink(browser, ARTIFACTS / f"chart-excluded-{size}.png")
        if not 0.005 < ink < 0.6:
            problems.append(f"{size}: screenshot ink {ink:.3f}")
    assert problems == []


#: For each chart: the plot frame and the screen boxes of its valid and excluded points.
PLOT_BOXES = """[...document.querySelectorAll("figure.chart > svg")].map(svg => {
  const box = (e) => { const r = e.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width}; };
  const frame = [...svg.querySelectorAll("rect")].pop();
  return {frame: box(frame),
          valid: [...svg.querySelectorAll("circle.valid")].map(box),
          excluded: [...svg.querySelectorAll("circle.excluded")].map(box)};
})"""
