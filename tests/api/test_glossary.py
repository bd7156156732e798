"""Korean first everywhere (issue 15.2): the glossary covers every code the pages print, and
rendered pages show Korean where they used to show raw codes.

The coverage lists come from the code that produces the codes (the rule set, the worklist's
categories, ingest's reasons, devices' component codes, every audit subtype the app records),
so a new code without Korean fails here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from api import explain, glossary
from api.explain import RaisedFlag
from api.store.web_worklist import Category
from clinical.ruleset import DEFAULT_RULESET
from devices.model import COMPONENT_CODES
from ingest.errors import Reason
from tests.api.conftest import Api
from tests.api.test_unbound import queue_one
from tests.api.test_worklist import seed_flags

HANGUL = re.compile(r"[\uac00-\ud7a3]")
API = Path(__file__).resolve().parents[2] / "api"


def korean(text: str) -> bool:
    return HANGUL.search(text) is not None


def test_every_rule_has_a_korean_name() -> None:
    missing = [r for r in DEFAULT_RULESET.rules if not korean(glossary.rule_name(r))]
    assert missing == []


def test_every_worklist_section_has_a_korean_heading() -> None:
    for category in Category:
        badge, ko, en = glossary.category(category.value)
        assert korean(badge), category
        assert korean(ko), category
        assert en
        assert not korean(en)


def test_every_reason_and_component_has_korean() -> None:
    assert [r.value for r in Reason if not korean(glossary.reason(r.value))] == []
    assert [c for c in COMPONENT_CODES if not korean(glossary.COMPONENTS.get(c, ""))] == []


def test_every_audit_subtype_the_app_records_has_korean() -> None:
    recorded = {
        m
        for path in API.rglob("*.py")
        for m in re.findall(r'subtype="([a-z-]+)"', path.read_text(encoding="utf-8"))
    }
    assert recorded  # the scan found the audit calls
    assert sorted(s for s in recorded if not korean(glossary.audit_subtype(s))) == []
    assert glossary.audit_subtype("read, search-type") == "조회, 검색"


def test_every_audit_entity_the_app_records_has_korean() -> None:
    recorded = {
        m
        for path in API.rglob("*.py")
        for m in re.findall(r'entity="([^"]+)"', path.read_text(encoding="utf-8"))
    }
    assert recorded
    assert sorted(e for e in recorded if not korean(glossary.audit_entity(e))) == []
    assert glossary.audit_entity("page:worklist, Patient") == (
        "화면 (page:worklist), 주민 (Patient)"
    )


def test_stored_summaries_and_flag_texts_read_in_korean() -> None:
    # ingest.fhir.observations.unbound_record writes "<kind>: <code> <value> <UCUM unit>, ..."
    text = "체성분 (body composition): body_fat 31.2 %, fat_free_mass 40.1 kg, impedance 538 Ohm"
    assert glossary.summary(text) == (
        "체성분 (body composition): 체지방률 31.2 %, 제지방량 40.1 kg, 임피던스 538 Ω"
    )
    weight = glossary.summary("체중 (weight): bmi 24.1 kg/m2")
    assert weight == "체중 (weight): 체질량지수 24.1 kg/m²"
    assert glossary.flag_text("1 present, 4 unknown") == "1개 해당, 4개 미확인"
    assert glossary.flag_text("auto: resident prompted").startswith("자동 종료")
    assert glossary.station("yaksu-station-1") == "약수 1번 측정대"


def test_relative_times() -> None:
    now = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
    assert glossary.ago(now - timedelta(seconds=20), now).startswith("방금")
    assert glossary.ago(now - timedelta(minutes=5), now).startswith("5분 전")
    assert glossary.ago(now - timedelta(days=3), now).startswith("3일 전")


class _Text(HTMLParser):
    """Visible text nodes of a page (not script or style)."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.nodes.append(data.strip())


def visible(html: str) -> list[str]:
    parser = _Text()
    parser.feed(html)
    return parser.nodes


@pytest.mark.db
def test_worklist_and_unbound_pages_speak_korean_first(api: Api) -> None:
    api.db(seed_flags)
    api.db(queue_one)
    api.login_as("N01")
    page = api.client.get("/worklist").text
    headings = re.findall(r'<h2 id="cat-[^"]+">(.*?)</h2>', page, re.S)
    assert headings
    for heading in headings:
        assert korean(re.sub(r"<[^>]+>", " ", heading).split("(")[0]), heading
    assert "고혈압 위기 수치" in page  # BP-CRISIS by its name, the id a small label
    assert '<small class="rule-id">BP-CRISIS</small>' in page
    unbound = api.client.get("/unbound").text
    nodes = visible(unbound)
    assert "약수 1번 측정대" in nodes
    assert "yaksu-station-1" not in nodes
    assert any(n.startswith("체크인 없음") for n in nodes)


# --- sentences live in the glossary (issue 15.2) ------------------------------------------------

TEMPLATES = API / "templates"
SENTENCE_TABLES = {
    "EXPLAIN": glossary.EXPLAIN,
    "NOTES": glossary.NOTES,
    "MESSAGES": glossary.MESSAGES,
}


@pytest.mark.parametrize("table", sorted(SENTENCE_TABLES))
def test_every_sentence_is_korean_first_with_matching_english(table: str) -> None:
    """Each entry: Korean that starts with Korean (or a placeholder), English with no Korean,
    and no value in the English that the Korean does not say."""
    bad = []
    for key, said in SENTENCE_TABLES[table].items():
        first_letter = re.search(r"[A-Za-z\uac00-\ud7a3]", re.sub(r"\{\w+\}|BMI", "", said.ko))
        if first_letter is None or not korean(first_letter.group()):
            bad.append(f"{key}: not Korean first: {said.ko!r}")
        if not said.en or korean(said.en):
            bad.append(f"{key}: English part {said.en!r}")
        ko_values, en_values = (set(re.findall(r"\{(\w+)\}", t)) for t in (said.ko, said.en))
        if len(en_values) > len(ko_values):  # ("{when}" may read "30초" and "{seconds} s")
            bad.append(f"{key}: the English has a value the Korean lacks")
    assert bad == []


def test_no_template_writes_an_explanation_inline() -> None:
    """Explanations, notes and messages are the glossary's (``say``, ``okbox``): a template
    holds no English sentence of its own, neither as a smaller second part nor in a
    "Korean / English." string."""
    inline = []
    for path in sorted(TEMPLATES.glob("*.html")):
        text = path.read_text(encoding="utf-8")
        for english in re.findall(r'<span class="en">([^<{]*)</span>', text):
            if len(english.split()) >= 4 and english.rstrip().endswith("."):
                inline.append(f"{path.name}: {english}")
        for quoted in re.findall(r'"([^"]*[\uac00-\ud7a3][^"]*) / ([^"]+\.)"', text):
            inline.append(f"{path.name}: {quoted}")
    assert inline == []


def test_the_station_explanations_come_from_the_glossary() -> None:
    source = (API / "explain.py").read_text(encoding="utf-8")
    strings = re.findall(r'"([^"\n]*)"', source)
    assert [s for s in strings if korean(s) and s != "회/분"] == []


def test_a_critical_instruction_keeps_korean_and_english_apart() -> None:
    """The instruction and who was told are two sentences; on screen the Korean of both comes
    first and the English of both after it (never an English sentence inside the Korean)."""
    crisis = explain.blood_pressure(186, 121)
    told_later = datetime(2026, 3, 16, 0, 0, tzinfo=UTC)
    for flag in (
        RaisedFlag("BP-CRISIS", "critical"),
        RaisedFlag("GLU-HYPO-L2", "critical", told_later),
    ):
        shown = explain.with_flags(crisis, [flag], evaluated=True)
        ko, _, en = shown.next_step.partition(" / ")
        assert korean(ko)
        assert not korean(en)
        assert "119" in ko
        assert "119" in en
        assert "간호사" in ko
        assert "nurse" in en


def test_every_role_severity_and_alert_notice_has_korean() -> None:
    from api.store.access import Role
    from clinical.flags import Severity
    from clinical.lifecycle import Notice

    assert [r.value for r in Role if not korean(glossary.ROLE_LABELS.get(r.value, ""))] == []
    assert [
        s.value for s in Severity if not korean(glossary.SEVERITY_LABELS.get(s.value, ""))
    ] == []
    assert [n.value for n in Notice if not korean(glossary.ALERT_NOTICES.get(n.value, ""))] == []
    assert korean(glossary.WELFARE_CHECK.split(" / ")[0])
