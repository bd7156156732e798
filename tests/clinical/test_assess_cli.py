"""``daon assess`` through the CLI entry point, against specs/cli-assess.md."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest

from daon.cli import main
from tests.clinical.cases import NOW, ago, bp, case, glu, home_week, iso, profile, reading

SPEC_EXAMPLE = {
    "profile": {
        "age": 74,
        "sex": "M",
        "height_cm": 166.0,
        "diagnoses": ["hypertension"],
        "medications": ["antihypertensive"],
        "older_adult_health": "healthy",
        "home_monitoring": True,
        "lives_alone": False,
        "smoker": False,
        "intentional_weight_loss": False,
    },
    "evaluated_at": "2026-03-03T08:00:00+09:00",
    "readings": [
        {
            "t": "2026-03-02T07:05:00+09:00",
            "type": "bp",
            "setting": "home",
            "position": "sitting",
            "sys": 134,
            "dia": 82,
            "pulse": 72,
            "unit": "mmHg",
        },
    ],
}


def run_case(tmp_path, capsys, obj) -> tuple[int, Any, str]:
    path = tmp_path / "case.json"
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    code = main(["assess", str(path)])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def test_spec_example(tmp_path, capsys):
    code, out, _ = run_case(tmp_path, capsys, SPEC_EXAMPLE)
    assert code == 0
    assert set(out) == {"flags", "rejected_readings", "visiting_group"}
    assert set(out["visiting_group"]) == {"group", "visits", "reason"}
    # one normal-ish home reading: no flag for it; a diagnosed hypertensive is "regular"
    assert not {f["rule"] for f in out["flags"]} & {"BP-HOME-HTN", "BP-CRISIS", "BP-RECHECK"}
    assert out["rejected_readings"] == []
    assert out["visiting_group"]["group"] == "regular"


def test_output_fields_of_a_flag(tmp_path, capsys):
    code, out, _ = run_case(tmp_path, capsys, case([bp(ago(hours=2), 185, 100)]))
    assert code == 0
    crisis = next(f for f in out["flags"] if f["rule"] == "BP-CRISIS")
    assert set(crisis) == {
        "rule",
        "severity",
        "recipients",
        "reading_indices",
        "summary",
        "rule_set",
    }
    assert crisis["severity"] == "critical"
    assert crisis["recipients"] == ["nurse"]
    assert crisis["reading_indices"] == [0]
    assert crisis["rule_set"]
    assert out["visiting_group"]["group"] == "intensive"  # acute flag in the last 30 days


def test_each_rule_once_with_its_highest_severity(tmp_path, capsys):
    t = ago(days=3)
    readings = [
        reading(t, "fall", injury=False),
        reading(t + timedelta(hours=5), "fall", injury=True),
    ]
    code, out, _ = run_case(tmp_path, capsys, case(readings))
    assert code == 0
    falls = [f for f in out["flags"] if f["rule"] == "FR-FALL"]
    assert len(falls) == 1
    assert falls[0]["severity"] == "urgent"
    assert falls[0]["reading_indices"] == [0, 1]


def test_aggregates_are_judged_at_evaluated_at(tmp_path, capsys):
    # a hypertensive week 40 days before evaluation: no valid home mean now (> 14 days)
    readings = home_week(150, 95, end_days_ago=40)
    code, out, _ = run_case(tmp_path, capsys, case(readings))
    assert code == 0
    assert "BP-HOME-HTN" not in {f["rule"] for f in out["flags"]}
    code, out, _ = run_case(tmp_path, capsys, case(home_week(150, 95)))
    assert code == 0
    assert "BP-HOME-HTN" in {f["rule"] for f in out["flags"]}


def test_single_rules_count_if_they_fired_at_any_time(tmp_path, capsys):
    code, out, _ = run_case(tmp_path, capsys, case([glu(ago(days=200), 45)]))
    assert code == 0
    assert "GLU-HYPO-L2" in {f["rule"] for f in out["flags"]}


def test_rejected_readings_by_index(tmp_path, capsys):
    readings = [bp(ago(hours=3), 128, 80), bp(ago(hours=2), 120, 125), glu(ago(hours=1), 5)]
    code, out, _ = run_case(tmp_path, capsys, case(readings))
    assert code == 0
    assert [(r["index"], r["rule"]) for r in out["rejected_readings"]] == [(1, "Q-02"), (2, "Q-05")]
    assert all(r["reason"] for r in out["rejected_readings"])


def test_readings_after_evaluated_at_are_ignored(tmp_path, capsys):
    later = {**bp(ago(hours=-2), 200, 110)}
    code, out, _ = run_case(tmp_path, capsys, case([bp(ago(hours=1), 128, 80), later]))
    assert code == 0
    assert "BP-CRISIS" not in {f["rule"] for f in out["flags"]}
    assert out["rejected_readings"] == []


def test_hysteresis_keeps_the_group_intensive(tmp_path, capsys):
    # hypertensive home week 20 days ago, then a week in the hysteresis band (132/80): the
    # running service keeps BP-HOME-HTN open (not below 130/82), so the resident stays intensive
    readings = home_week(150, 95, end_days_ago=9) + home_week(132, 80, dates=7)
    code, out, _ = run_case(tmp_path, capsys, case(readings, profile(diagnoses=[])))
    assert code == 0
    assert "BP-HOME-HTN" not in {f["rule"] for f in out["flags"]}  # not met at evaluated_at
    assert out["visiting_group"]["group"] == "intensive"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda c: c.pop("profile"), "profile"),
        (lambda c: c["profile"].pop("age"), "profile.age"),
        (lambda c: c["profile"].update(sex="X"), "profile.sex"),
        (lambda c: c["profile"].update(age="seventy"), "profile.age"),
        (lambda c: c["profile"].update(home_monitoring="yes"), "profile.home_monitoring"),
        (lambda c: c["profile"].update(older_adult_health="frail"), "profile.older_adult_health"),
        (lambda c: c.update(evaluated_at="2026-03-03T08:00:00"), "evaluated_at"),
        (lambda c: c["readings"][0].update(t="yesterday"), "readings[0].t"),
        (lambda c: c["readings"][0].update(t="2026-03-02T07:05:00"), "readings[0].t"),
        (lambda c: c["readings"][0].update(type="temperature"), "readings[0].type"),
        (lambda c: c["readings"][0].update(sys="134"), "readings[0].sys"),
        (lambda c: c["readings"][0].pop("dia"), "readings[0].dia"),
        (lambda c: c["readings"][0].update(setting="clinic"), "readings[0].setting"),
        (lambda c: c["readings"][0].update(position="lying"), "readings[0].position"),
        (lambda c: c.update(readings={"0": 1}), "readings"),
    ],
)
def test_invalid_case_exits_2_naming_the_field(tmp_path, capsys, mutate, field):
    obj = json.loads(json.dumps(SPEC_EXAMPLE))
    mutate(obj)
    code, out, err = run_case(tmp_path, capsys, obj)
    assert code == 2
    assert out is None
    assert field in err


def test_not_json_exits_2(tmp_path, capsys):
    path = tmp_path / "case.json"
    path.write_text("{not json", encoding="utf-8")
    assert main(["assess", str(path)]) == 2
    assert "JSON" in capsys.readouterr().err


def test_missing_file_exits_2(tmp_path, capsys):
    assert main(["assess", str(tmp_path / "absent.json")]) == 2


def test_jsonl_from_a_file(tmp_path, capsys):
    lines = [case([bp(ago(hours=2), 185, 100)]), case([glu(ago(hours=2), 60, "fasting")])]
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in lines) + "\n", encoding="utf-8")
    assert main(["assess", "--jsonl", str(path)]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(out) == 2
    assert "BP-CRISIS" in {f["rule"] for f in out[0]["flags"]}
    assert "GLU-HYPO-L1" in {f["rule"] for f in out[1]["flags"]}


def test_jsonl_from_stdin_reports_a_bad_line_and_goes_on(monkeypatch, capsys):
    good = json.dumps(case([bp(ago(hours=2), 185, 100)]))
    bad = json.dumps({"profile": {"sex": "F"}, "evaluated_at": iso(NOW), "readings": []})
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{good}\n{bad}\n\n{good}\n"))
    assert main(["assess", "--jsonl"]) == 2
    captured = capsys.readouterr()
    out = [json.loads(line) for line in captured.out.splitlines()]
    assert len(out) == 3
    assert out[1] == {"error": {"line": 2, "field": "profile.age", "message": "is required"}}
    assert "line 2" in captured.err
    assert "profile.age" in captured.err
    assert out[0] == out[2]
