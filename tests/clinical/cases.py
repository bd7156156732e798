"""Small builders for test cases in the ``daon assess`` input format (specs/cli-assess.md).

Tests describe readings the way a person writes a case file, then evaluate them through the
same parsing and engine the CLI and the runner use. Expected outcomes in the tests come from the
wording of reference/clinical-rules.md, never from running the engine.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from clinical import engine
from clinical.assess import parse_case
from clinical.evaluation import ResidentResult

KST = timezone(timedelta(hours=9))
#: Evaluation time used by default: Tuesday 10 March 2026, 20:00 in Seoul.
NOW = datetime(2026, 3, 10, 20, 0, tzinfo=KST)


def ago(days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
    return NOW - timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def iso(when: datetime) -> str:
    return when.isoformat()


def profile(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"age": 70, "sex": "M", "height_cm": 170.0}
    base.update(kw)
    return base


def bp(when: datetime, sys: float | None, dia: float | None, **kw: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "t": iso(when),
        "type": "bp",
        "sys": sys,
        "dia": dia,
        "pulse": 70,
        "unit": "mmHg",
        "setting": "home",
        "position": "sitting",
    }
    r.update(kw)
    return r


def glu(
    when: datetime, value: float | None, meal: str | None = "casual", **kw: Any
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "t": iso(when),
        "type": "glucose",
        "value": value,
        "unit": "mg/dL",
        "meal": meal,
    }
    r.update(kw)
    return r


def weight(when: datetime, kg: float, **kw: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"t": iso(when), "type": "weight", "value": kg, "unit": "kg"}
    r.update(kw)
    return r


def reading(when: datetime, kind: str, **kw: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"t": iso(when), "type": kind}
    r.update(kw)
    return r


def home_week(
    sys: float,
    dia: float,
    *,
    end_days_ago: float = 0,
    dates: int = 7,
    per_day: int = 2,
    first_day: tuple[float, float] | None = None,
) -> list[dict[str, Any]]:
    """A home protocol: ``dates`` consecutive days ending ``end_days_ago``, ``per_day``
    sitting home readings each morning. The first date is an episode's first day and is
    discarded from the mean (§3.2); ``first_day`` gives it different values."""
    out = []
    for d in range(dates):
        day = end_days_ago + (dates - 1 - d)
        s, di = first_day if (d == 0 and first_day) else (sys, dia)
        for k in range(per_day):
            out.append(bp(ago(days=day, hours=12, minutes=-5 * k), s, di))
    return out


def case(
    readings: list[dict[str, Any]], prof: dict[str, Any] | None = None, now: datetime = NOW
) -> dict[str, Any]:
    return {"profile": prof or profile(), "evaluated_at": iso(now), "readings": readings}


def evaluate(
    readings: list[dict[str, Any]], prof: dict[str, Any] | None = None, now: datetime = NOW
) -> ResidentResult:
    c = parse_case(case(readings, prof, now))
    return engine.evaluate_one(c.profile, c.readings, c.evaluated_at)


def raised(result: ResidentResult) -> dict[str, str]:
    """Rule id → highest severity raised (single rules over the history, aggregates now)."""
    out: dict[str, str] = {}
    rank = {"info": 0, "routine": 1, "urgent": 2, "critical": 3}
    for f in result.findings:
        if f.rule not in out or rank[f.severity.value] > rank[out[f.rule]]:
            out[f.rule] = f.severity.value
    return out


def rejected(result: ResidentResult) -> dict[int, str]:
    return {r.index: r.rule for r in result.rejected}


def evidence(result: ResidentResult, rule: str) -> set[int]:
    return {i for f in result.findings if f.rule == rule for i in f.evidence}
