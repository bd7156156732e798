"""Charts (issue 14.5): the 'no readings' state, values on hover and tap, bands that do not
sit behind another series' points, the short ranges, legends as lists."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from api.charts import STRIP, Band, Chart, Series, render
from tests.api.conftest import Api
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
