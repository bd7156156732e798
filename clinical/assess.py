"""``daon assess``: run the engine on one resident's history (specs/cli-assess.md).

The case is parsed strictly (a field that cannot be interpreted raises
:class:`~clinical.errors.InvalidCaseError` naming it), converted with the same
:class:`~clinical.model.ReadingsBuilder` the runner uses, and evaluated by the same
:func:`clinical.engine.evaluate`. Quality problems are not errors: they come back as
``rejected_readings``.

The visiting group is decided the way the running service would: the service evaluates daily
and keeps flags open through the hysteresis band, so the group is the result of replaying the
last 90 days as daily evaluations through the same :func:`clinical.lifecycle.step` (with no
staff actions), then :func:`clinical.visiting.decide` on the flags that replay leaves.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from clinical import engine
from clinical._seg import DAY
from clinical.errors import InvalidCaseError
from clinical.evaluation import Finding, ResidentResult, resident_results
from clinical.lifecycle import FlagState, flag_facts, step
from clinical.model import (
    Cohort,
    Instrument,
    Meal,
    OlderAdultHealth,
    Position,
    Profile,
    Readings,
    ReadingsBuilder,
    Setting,
    Sex,
)
from clinical.ruleset import DEFAULT_RULESET, RuleSet
from clinical.visiting import GroupDecision, decide

REPLAY_DAYS = 90


@dataclasses.dataclass(frozen=True, slots=True)
class Case:
    profile: Profile
    evaluated_at: datetime
    readings: Readings
    count: int


# --------------------------------------------------------------------------- parsing


def _get(obj: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> Any:
    if key not in obj:
        if required:
            raise InvalidCaseError(f"{path}.{key}" if path else key, "is required")
        return None
    return obj[key]


def _number(value: Any, path: str, *, nullable: bool = False) -> float | None:
    if value is None:
        if nullable:
            return None
        raise InvalidCaseError(path, "must be a number")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidCaseError(path, f"must be a number, not {type(value).__name__}")
    f = float(value)
    if not math.isfinite(f):
        raise InvalidCaseError(path, "must be finite")
    return f


def _opt_number(obj: Mapping[str, Any], key: str, path: str) -> float | None:
    return _number(obj.get(key), f"{path}.{key}", nullable=True)


def _req_number(
    obj: Mapping[str, Any], key: str, path: str, *, nullable: bool = False
) -> float | None:
    if key not in obj:
        raise InvalidCaseError(f"{path}.{key}", "is required")
    return _number(obj[key], f"{path}.{key}", nullable=nullable)


def _bool(obj: Mapping[str, Any], key: str, path: str, default: bool = False) -> bool:
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidCaseError(f"{path}.{key}", "must be true or false")
    return value


def _str(obj: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str | None:
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidCaseError(f"{path}.{key}", "must be a string")
    return value


def _choice(
    obj: Mapping[str, Any], key: str, path: str, choices: Mapping[str, Any], default: Any
) -> Any:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or value not in choices:
        raise InvalidCaseError(f"{path}.{key}", f"must be one of {sorted(choices)}")
    return choices[value]


def _names(obj: Mapping[str, Any], key: str, path: str) -> list[str]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidCaseError(f"{path}.{key}", "must be a list of strings")
    return [v.strip().lower() for v in value]


def parse_time(value: Any, path: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidCaseError(path, "must be an ISO 8601 timestamp string")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidCaseError(path, f"is not an ISO 8601 timestamp: {value!r}") from None
    if when.tzinfo is None:
        raise InvalidCaseError(path, "needs a UTC offset (e.g. +09:00)")
    return when


def parse_profile(obj: Any) -> Profile:
    path = "profile"
    if not isinstance(obj, dict):
        raise InvalidCaseError(path, "must be an object")
    age = obj.get("age")
    if age is None:
        raise InvalidCaseError("profile.age", "is required")
    if (
        isinstance(age, bool)
        or not isinstance(age, int | float)
        or age != int(age)
        or not 0 <= age <= 130
    ):
        raise InvalidCaseError("profile.age", "must be a whole number of years (0-130)")
    if "sex" not in obj:
        raise InvalidCaseError("profile.sex", "is required")
    sex = _choice(obj, "sex", path, {"M": Sex.MALE, "F": Sex.FEMALE}, None)
    height = _opt_number(obj, "height_cm", path)
    if height is not None and not 100.0 <= height <= 220.0:  # Q-07 limits applied to the profile
        raise InvalidCaseError("profile.height_cm", "must be 100-220 cm")
    a1c_target = _opt_number(obj, "a1c_target", path)
    ltc = obj.get("long_term_care_grade")
    if ltc is not None and (isinstance(ltc, bool) or not isinstance(ltc, int)):
        raise InvalidCaseError("profile.long_term_care_grade", "must be a whole number")
    bp_high_risk = obj.get("bp_high_risk")
    if bp_high_risk is not None and not isinstance(bp_high_risk, bool):
        raise InvalidCaseError("profile.bp_high_risk", "must be true or false")
    return Profile(
        age=int(age),
        sex=sex,
        height_cm=height,
        diagnoses=frozenset(_names(obj, "diagnoses", path)),
        medications=frozenset(_names(obj, "medications", path)),
        older_adult_health=_choice(
            obj,
            "older_adult_health",
            path,
            {
                "healthy": OlderAdultHealth.HEALTHY,
                "complex": OlderAdultHealth.COMPLEX,
                "very_complex": OlderAdultHealth.VERY_COMPLEX,
            },
            OlderAdultHealth.HEALTHY,
        ),
        home_monitoring=_bool(obj, "home_monitoring", path),
        lives_alone=_bool(obj, "lives_alone", path),
        smoker=_bool(obj, "smoker", path),
        high_risk_drinking=_bool(obj, "high_risk_drinking", path),
        inactive=_bool(obj, "inactive", path) or _bool(obj, "physical_inactivity", path),
        intentional_weight_loss=_bool(obj, "intentional_weight_loss", path),
        a1c_target=a1c_target,
        bp_high_risk=bp_high_risk,
        long_term_care_grade=ltc,
    )


_SETTINGS = {
    "home": Setting.HOME,
    "centre": Setting.CENTRE,
    "center": Setting.CENTRE,
    "visit": Setting.VISIT,
}
_POSITIONS = {"sitting": Position.SITTING, "supine": Position.SUPINE, "standing": Position.STANDING}
_MEALS = {
    "fasting": Meal.FASTING,
    "preprandial": Meal.PREPRANDIAL,
    "postprandial": Meal.POSTPRANDIAL,
    "casual": Meal.CASUAL,
    "bedtime": Meal.BEDTIME,
}
_INSTRUMENTS = {
    "PHQ-9": Instrument.PHQ9,
    "CIST": Instrument.CIST,
    "BMD": Instrument.BMD,
    "frailty_kr": Instrument.FRAILTY,
}
READING_TYPES = frozenset(
    {
        "bp",
        "glucose",
        "a1c",
        "lipid",
        "weight",
        "waist",
        "body_comp",
        "grip",
        "gait_speed",
        "chair_stand",
        "sppb",
        "screen",
        "symptom",
        "fall",
    }
)


def add_reading(
    b: ReadingsBuilder, obj: Any, i: int, resident: int = 0, *, fresh: bool = True
) -> None:
    """Validate reading ``i`` of a case and add it to ``b`` (index = input position)."""
    path = f"readings[{i}]"
    if not isinstance(obj, dict):
        raise InvalidCaseError(path, "must be an object")
    kind = obj.get("type")
    if kind not in READING_TYPES:
        raise InvalidCaseError(f"{path}.type", f"must be one of {sorted(READING_TYPES)}")
    t = int(parse_time(obj.get("t"), f"{path}.t").timestamp())
    common: dict[str, Any] = {"fresh": fresh}
    if kind == "bp":
        status = _names(obj, "device_status", path)
        b.add_bp(
            resident,
            t,
            i,
            sys=_req_number(obj, "sys", path, nullable=True),
            dia=_req_number(obj, "dia", path, nullable=True),
            pulse=_opt_number(obj, "pulse", path),
            unit=_str(obj, "unit", path, "mmHg") or "mmHg",
            setting=_choice(obj, "setting", path, _SETTINGS, Setting.HOME),
            position=_choice(obj, "position", path, _POSITIONS, Position.SITTING),
            minutes_standing=_opt_number(obj, "minutes_after_standing", path),
            status=status,
            **common,
        )
    elif kind == "glucose":
        status = _names(obj, "status", path)
        sample = obj.get("sample")
        sample_type = sample if isinstance(sample, int) and not isinstance(sample, bool) else None
        control = isinstance(sample, str) and sample.lower() in ("control", "control_solution")
        location = obj.get("sample_location")
        value = _req_number(obj, "value", path, nullable=True) if "value" in obj else None
        if (
            value is None
            and not (
                {
                    "result_high",
                    "result_low",
                    "result_higher_than_device_can_process",
                    "result_lower_than_device_can_process",
                }
                & set(status)
            )
            and "value" not in obj
        ):
            raise InvalidCaseError(
                f"{path}.value", "is required (or a result_high/result_low status)"
            )
        b.add_glucose(
            resident,
            t,
            i,
            value=value,
            unit=_str(obj, "unit", path, "mg/dL") or "mg/dL",
            meal=_choice(obj, "meal", path, _MEALS, Meal.MISSING),
            whole_blood=_choice(
                obj, "calibration", path, {"plasma": False, "whole_blood": True}, False
            ),
            status=status,
            sample_type=sample_type,
            sample_location=location
            if isinstance(location, int) and not isinstance(location, bool)
            else None,
            control=control,
            home=_choice(obj, "setting", path, _SETTINGS, Setting.HOME) is Setting.HOME,
            **common,
        )
    elif kind == "a1c":
        b.add_a1c(
            resident,
            t,
            i,
            value=_req_number(obj, "value", path) or 0.0,
            unit=_str(obj, "unit", path, "%") or "%",
            **common,
        )
    elif kind == "lipid":
        tg, hdl = _opt_number(obj, "tg", path), _opt_number(obj, "hdl", path)
        if tg is None and hdl is None:
            raise InvalidCaseError(f"{path}.tg", "a lipid panel needs tg or hdl")
        b.add_lipid(
            resident,
            t,
            i,
            tg=tg,
            hdl=hdl,
            unit=_str(obj, "unit", path, "mg/dL") or "mg/dL",
            **common,
        )
    elif kind == "weight":
        b.add_weight(
            resident,
            t,
            i,
            value=_req_number(obj, "value", path) or 0.0,
            unit=_str(obj, "unit", path, "kg") or "kg",
            home=_choice(obj, "setting", path, _SETTINGS, Setting.HOME) is Setting.HOME,
            **common,
        )
    elif kind == "waist":
        b.add_waist(resident, t, i, cm=_req_number(obj, "cm", path) or 0.0, **common)
    elif kind == "body_comp":
        fat, asm = _opt_number(obj, "fat_pct", path), _opt_number(obj, "asm_kg", path)
        if fat is None and asm is None:
            raise InvalidCaseError(f"{path}.fat_pct", "body_comp needs fat_pct or asm_kg")
        method = _str(obj, "method", path, "BIA") or "BIA"
        if method.upper() not in ("BIA", "DXA"):
            raise InvalidCaseError(f"{path}.method", "must be BIA or DXA")
        b.add_body_comp(
            resident, t, i, fat_pct=fat, asm_kg=asm, dxa=method.upper() == "DXA", **common
        )
    elif kind == "grip":
        b.add_function(resident, t, i, grip_kg=_req_number(obj, "kg", path), **common)
    elif kind == "gait_speed":
        b.add_function(resident, t, i, gait_m_s=_req_number(obj, "m_per_s", path), **common)
    elif kind == "chair_stand":
        b.add_function(resident, t, i, chair_s=_req_number(obj, "seconds", path), **common)
    elif kind == "sppb":
        b.add_function(resident, t, i, sppb=_req_number(obj, "score", path), **common)
    elif kind == "screen":
        _add_screen(b, obj, path, resident, t, i, fresh)
    elif kind == "symptom":
        symptoms = _names(obj, "symptoms", path)
        if not symptoms:
            raise InvalidCaseError(f"{path}.symptoms", "must list at least one symptom")
        b.add_event(resident, t, i, symptoms=symptoms, **common)
    else:  # fall
        b.add_event(
            resident,
            t,
            i,
            fall=True,
            injury=_bool(obj, "injury", path) or _bool(obj, "head_strike", path),
            **common,
        )


def _add_screen(
    b: ReadingsBuilder, obj: dict[str, Any], path: str, resident: int, t: int, i: int, fresh: bool
) -> None:
    instrument = _choice(obj, "instrument", path, _INSTRUMENTS, None)
    if instrument is None:
        raise InvalidCaseError(f"{path}.instrument", f"must be one of {sorted(_INSTRUMENTS)}")
    if instrument is Instrument.PHQ9:
        total = _opt_number(obj, "total", path)
        score = total if total is not None else _opt_number(obj, "score", path)
        item9 = _opt_number(obj, "item9", path)
        if score is None and item9 is None:
            raise InvalidCaseError(f"{path}.total", "PHQ-9 needs total (or score) or item9")
        b.add_screen(resident, t, i, instrument=instrument, score=score, item9=item9, fresh=fresh)
    elif instrument is Instrument.CIST:
        result = _str(obj, "result", path)
        if result not in ("normal", "decline"):
            raise InvalidCaseError(f"{path}.result", "CIST result must be normal or decline")
        b.add_screen(
            resident,
            t,
            i,
            instrument=instrument,
            score=_opt_number(obj, "score", path),
            decline=result == "decline",
            fresh=fresh,
        )
    elif instrument is Instrument.BMD:
        b.add_screen(
            resident,
            t,
            i,
            instrument=instrument,
            t_score=_req_number(obj, "t_score", path),
            fresh=fresh,
        )
    else:
        b.add_screen(
            resident,
            t,
            i,
            instrument=instrument,
            score=_req_number(obj, "score", path),
            fresh=fresh,
        )


def parse_case(obj: Any) -> Case:
    if not isinstance(obj, dict):
        raise InvalidCaseError("(case)", "must be a JSON object")
    profile = parse_profile(_get(obj, "profile", "", required=True))
    evaluated_at = parse_time(_get(obj, "evaluated_at", "", required=True), "evaluated_at")
    readings = obj.get("readings", [])
    if not isinstance(readings, list):
        raise InvalidCaseError("readings", "must be a list")
    b = ReadingsBuilder()
    for i, r in enumerate(readings):
        add_reading(b, r, i)
    built = b.build()
    # cli-assess.md: readings after evaluated_at are ignored (they have not happened yet)
    cutoff = int(evaluated_at.timestamp())
    kept = {name: tbl.take(tbl.t <= cutoff) for name, tbl in built.tables().items()}
    return Case(profile, evaluated_at, Readings(**kept), len(readings))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- assessment


def _flags_out(result: ResidentResult, ruleset: RuleSet) -> list[dict[str, Any]]:
    by_rule: dict[str, list[Finding]] = {}
    for f in result.findings:
        if f.rule.startswith("Q-"):
            continue  # quality prompts are reported as rejected_readings
        by_rule.setdefault(f.rule, []).append(f)
    out = []
    for rule, found in by_rule.items():
        best = max(found, key=lambda f: (f.severity.rank, f.at))
        indices = sorted({i for f in found for i in f.evidence})
        out.append(
            {
                "rule": rule,
                "severity": best.severity.value,
                "recipients": [r.value for r in ruleset.rule(rule).recipients],
                "reading_indices": indices,
                "summary": best.summary,
                "rule_set": result.rule_set,
            }
        )
    out.sort(key=lambda d: (-_RANK[str(d["severity"])], str(d["rule"])))
    return out


_RANK = {"critical": 3, "urgent": 2, "routine": 1, "info": 0}


def replay_group(
    profile: Profile,
    readings: Readings,
    now: datetime,
    ruleset: RuleSet = DEFAULT_RULESET,
    days: int = REPLAY_DAYS,
) -> GroupDecision:
    """The visiting group the service would hold at ``now``: daily evaluations over the last
    ``days`` days through the lifecycle (no staff actions), then :func:`visiting.decide`."""
    now_s = engine.epoch(now)
    ticks = np.array([now_s - k * DAY for k in range(days, -1, -1)], dtype=np.int64)
    cohort1 = Cohort.from_profiles([profile])
    replica = readings.replicate(ticks)
    ev = engine.evaluate(cohort1.repeat(ticks.size), replica, ticks, ruleset)
    since = {k: int(ticks[k - 1]) if k else int(ticks[0]) for k in range(ticks.size)}
    results = resident_results(ev, since=since)
    history: dict[tuple[str, datetime], FlagState] = {}
    for k in range(ticks.size):
        current = _latest_per_rule(history.values())
        tick_at = results[k].now
        transition = step("case", current, results[k], tick_at, ruleset)
        for f in transition.states:
            history[(f.rule, f.opened_at)] = f
    facts = flag_facts(history.values(), ruleset)
    return decide(cohort1, facts, results[ticks.size - 1].frailty, now, ruleset)


def _latest_per_rule(flags: Any) -> list[FlagState]:
    best: dict[str, FlagState] = {}
    for f in flags:
        cur = best.get(f.rule)
        if cur is None or f.is_open or (not cur.is_open and f.opened_at > cur.opened_at):
            best[f.rule] = f
    return list(best.values())


def assess(obj: Any, ruleset: RuleSet = DEFAULT_RULESET) -> dict[str, Any]:
    """Evaluate one case (parsed JSON) → the output object of cli-assess.md."""
    case = parse_case(obj)
    result = engine.evaluate_one(case.profile, case.readings, case.evaluated_at, ruleset)
    group = replay_group(case.profile, case.readings, case.evaluated_at, ruleset)
    return {
        "flags": _flags_out(result, ruleset),
        "rejected_readings": [
            {"index": r.index, "rule": r.rule, "reason": r.reason} for r in result.rejected
        ],
        "visiting_group": {
            "group": group.group.value,
            "visits": group.visits,
            "reason": group.reason,
        },
    }
