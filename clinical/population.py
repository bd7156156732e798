"""Population evaluation: every resident at once, from columnar arrays.

Used nightly and whenever a rule set changes (re-evaluate everyone), by ``bench/clinical.py``,
and to simulate a threshold change against stored data before it goes live (§10.2.9). The
work is :func:`clinical.engine.evaluate` over the whole cohort: the same code that evaluates one
resident, vectorized across residents.

Inputs are plain arrays (resident row number, UTC epoch seconds or ``datetime64``, values);
the helpers here only validate, convert codes and sort, so that callers (the benchmark's
synthetic population, a bulk export of the store) need no per-reading Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from clinical import engine
from clinical._seg import DAY, BoolArray, IntArray
from clinical.evaluation import Evaluation, State
from clinical.flags import Recipient, Severity
from clinical.model import (
    BodyCompTable,
    BpTable,
    Cohort,
    GlucoseTable,
    Meal,
    Position,
    Readings,
    Setting,
    Table,
    WeightTable,
)
from clinical.ruleset import DEFAULT_RULESET, RuleSet
from clinical.units import round_half_up
from clinical.visiting import GroupInputs, classify

_SETTING_CODES = {
    "home": Setting.HOME,
    "centre": Setting.CENTRE,
    "center": Setting.CENTRE,
    "visit": Setting.VISIT,
}
_MEAL_CODES = {
    "fasting": Meal.FASTING,
    "preprandial": Meal.PREPRANDIAL,
    "postprandial": Meal.POSTPRANDIAL,
    "casual": Meal.CASUAL,
    "bedtime": Meal.BEDTIME,
    "": Meal.MISSING,
}


def epoch_seconds(t: npt.ArrayLike) -> IntArray:
    """``datetime64`` (UTC) or integer epoch seconds → int64 epoch seconds."""
    arr = np.asarray(t)
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[s]").astype(np.int64)
    return arr.astype(np.int64)


def codes(values: npt.ArrayLike, table: Mapping[str, int], what: str) -> IntArray:
    """String labels → integer codes, raising on an unknown label (never a silent default)."""
    arr = np.asarray(values)
    labels, inverse = np.unique(arr, return_inverse=True)
    out = np.empty(labels.size, dtype=np.int64)
    for i, label in enumerate(labels.tolist()):
        if label not in table:
            raise ValueError(f"unknown {what} {label!r}")
        out[i] = int(table[label])
    return out[inverse.reshape(-1)]


def _bools(n: int, value: npt.ArrayLike | None) -> BoolArray:
    return np.zeros(n, dtype=bool) if value is None else np.asarray(value, dtype=bool)


def cohort_from_columns(
    *,
    age: npt.ArrayLike,
    female: npt.ArrayLike,
    height_cm: npt.ArrayLike,
    **facts: npt.ArrayLike | None,
) -> Cohort:
    """A cohort from per-resident arrays; any :class:`Cohort` field may be given by name
    (booleans default to False, ``older_health`` to healthy, ``a1c_target`` to the §4.2
    default). ``chronic`` defaults to any of the given diagnoses."""
    age_a = np.asarray(age, dtype=np.int64)
    n = age_a.size
    fields: dict[str, Any] = {}
    for name in Cohort.__dataclass_fields__:
        if name in ("age", "female", "height_cm", "older_health", "a1c_target", "chronic"):
            continue
        fields[name] = _bools(n, facts.pop(name, None))
    chronic = facts.pop("chronic", None)
    if chronic is None:
        chronic = (
            fields["diabetes"]
            | fields["hypertension"]
            | fields["dyslipidemia"]
            | fields["hf_or_ckd"]
        )
    older = facts.pop("older_health", None)
    a1c = facts.pop("a1c_target", None)
    if facts:
        raise TypeError(f"unknown cohort fields: {sorted(facts)}")
    return Cohort(
        age=age_a,
        female=np.asarray(female, dtype=bool),
        height_cm=np.asarray(height_cm, dtype=np.float64),
        chronic=np.asarray(chronic, dtype=bool),
        older_health=np.zeros(n, np.int64) if older is None else np.asarray(older, np.int64),
        a1c_target=np.full(n, np.nan) if a1c is None else np.asarray(a1c, np.float64),
        **fields,
    )


def _base(resident: npt.ArrayLike, t: npt.ArrayLike) -> dict[str, Any]:
    r = np.asarray(resident, dtype=np.int64)
    n = r.size
    return {
        "resident": r,
        "t": epoch_seconds(t),
        "index": np.arange(n, dtype=np.int64),
        "fresh": np.ones(n, dtype=bool),
        "received": np.full(n, -1, dtype=np.int64),
    }


_T = TypeVar("_T", bound=Table)


def _sorted(tbl: _T) -> _T:
    if tbl.size < 2:
        return tbl
    ordered = (np.diff(tbl.resident) > 0) | ((np.diff(tbl.resident) == 0) & (np.diff(tbl.t) >= 0))
    return tbl if bool(ordered.all()) else tbl.sorted()


def bp_table(
    resident: npt.ArrayLike,
    t: npt.ArrayLike,
    sys: npt.ArrayLike,
    dia: npt.ArrayLike,
    *,
    pulse: npt.ArrayLike | None = None,
    setting: npt.ArrayLike | None = None,
    position: npt.ArrayLike | None = None,
    status: npt.ArrayLike | None = None,
) -> BpTable:
    """Blood pressure in mmHg; ``setting`` as labels (home/centre/visit) or codes."""
    b = _base(resident, t)
    n = b["t"].size
    st = np.asarray(setting) if setting is not None else None
    setting_codes = (
        np.zeros(n, np.int64)
        if st is None
        else codes(st, _SETTING_CODES, "setting")
        if st.dtype.kind in "US"
        else st.astype(np.int64)
    )
    return _sorted(
        BpTable(
            **b,
            sys=np.asarray(sys, dtype=np.float64),
            dia=np.asarray(dia, dtype=np.float64),
            pulse=np.full(n, np.nan) if pulse is None else np.asarray(pulse, dtype=np.float64),
            unit_ok=np.ones(n, dtype=bool),
            setting=setting_codes,
            position=np.full(n, int(Position.SITTING), np.int64)
            if position is None
            else np.asarray(position, np.int64),
            minutes_standing=np.full(n, np.nan),
            status=np.zeros(n, np.int64) if status is None else np.asarray(status, np.int64),
        )
    )


def glucose_table(
    resident: npt.ArrayLike,
    t: npt.ArrayLike,
    mg_dl: npt.ArrayLike,
    *,
    meal: npt.ArrayLike | None = None,
    home: npt.ArrayLike | None = None,
) -> GlucoseTable:
    """Plasma-equivalent glucose in mg/dL (already rounded); ``meal`` as labels or codes."""
    b = _base(resident, t)
    n = b["t"].size
    m = np.asarray(meal) if meal is not None else None
    meal_codes = (
        np.zeros(n, np.int64)
        if m is None
        else codes(m, _MEAL_CODES, "meal")
        if m.dtype.kind in "US"
        else m.astype(np.int64)
    )
    z = np.zeros(n, dtype=bool)
    return _sorted(
        GlucoseTable(
            **b,
            mg_dl=np.asarray(mg_dl, dtype=np.float64),
            meal=meal_codes,
            hi=z,
            lo=z.copy(),
            control=z.copy(),
            fault=z.copy(),
            unit_ok=~z,
            home=np.ones(n, dtype=bool) if home is None else np.asarray(home, dtype=bool),
        )
    )


def weight_table(
    resident: npt.ArrayLike,
    t: npt.ArrayLike,
    kg: npt.ArrayLike,
    *,
    home: npt.ArrayLike | None = None,
) -> WeightTable:
    b = _base(resident, t)
    n = b["t"].size
    return _sorted(
        WeightTable(
            **b,
            kg=round_half_up(np.asarray(kg, dtype=np.float64), 1),
            unit_ok=np.ones(n, bool),
            home=np.ones(n, dtype=bool) if home is None else np.asarray(home, dtype=bool),
        )
    )


def body_comp_table(
    resident: npt.ArrayLike,
    t: npt.ArrayLike,
    *,
    fat_pct: npt.ArrayLike,
    asm_kg: npt.ArrayLike,
    dxa: npt.ArrayLike | None = None,
) -> BodyCompTable:
    b = _base(resident, t)
    n = b["t"].size
    return _sorted(
        BodyCompTable(
            **b,
            fat_pct=np.asarray(fat_pct, np.float64),
            asm_kg=np.asarray(asm_kg, np.float64),
            dxa=np.zeros(n, bool) if dxa is None else np.asarray(dxa, bool),
        )
    )


def evaluate_population(
    cohort: Cohort, readings: Readings, now: int | IntArray, ruleset: RuleSet = DEFAULT_RULESET
) -> Evaluation:
    """Every resident at ``now`` (the engine itself; named for the nightly job's call site)."""
    return engine.evaluate(cohort, readings, now, ruleset)


# --------------------------------------------------------------------------- summaries


@dataclass(frozen=True, slots=True, eq=False)
class Raised:
    """Per rule, which residents have it raised and at which severity (rank, -1 = not)."""

    severity: Mapping[str, IntArray]

    def mask(self, rule: str) -> BoolArray:
        return np.asarray(self.severity[rule] >= 0, dtype=bool)

    def any_of(self, rules: frozenset[str] | set[str]) -> BoolArray:
        n = next(iter(self.severity.values())).size
        out = np.zeros(n, dtype=bool)
        for r in rules:
            if r in self.severity:
                out |= self.severity[r] >= 0
        return out


def raised(
    ev: Evaluation,
    *,
    single_since: int | IntArray | None = None,
    single_until: int | IntArray | None = None,
) -> Raised:
    """Rules raised per resident: aggregates MET at ``now``; single-reading rules that fired in
    (``single_since``, ``single_until``] (default: ever, up to ``now``)."""
    n = ev.n
    since = (
        np.full(n, np.iinfo(np.int64).min)
        if single_since is None
        else np.broadcast_to(np.asarray(single_since, np.int64), (n,))
    )
    until = (
        ev.now
        if single_until is None
        else np.broadcast_to(np.asarray(single_until, np.int64), (n,))
    )
    out: dict[str, IntArray] = {}
    for rule, agg in ev.aggregate.items():
        out[rule] = np.where(agg.state == int(State.MET), agg.severity, -1).astype(np.int64)
    for rule, hits in ev.single.items():
        sev = out.get(rule, np.full(n, -1, np.int64)).copy()
        ok = (hits.t > since[hits.resident]) & (hits.t <= until[hits.resident])
        np.maximum.at(sev, hits.resident[ok], hits.severity[ok])
        out[rule] = sev
    for rule in ev.ruleset.rules:
        out.setdefault(rule, np.full(n, -1, np.int64))
    return Raised(out)


def visiting_groups(ev: Evaluation, *, open_days: int = 90) -> IntArray:
    """Stateless groups for the whole population (index into intensive, regular,
    self_management, none). Without stored flag history, a single-reading flag counts as open
    for ``open_days`` after it fired and hysteresis cannot be applied; the runner, which keeps
    the history, uses :func:`clinical.visiting.decide` instead."""
    rules = ev.ruleset.thresholds.visiting
    open_ = raised(ev, single_since=ev.now - open_days * DAY)
    acute_window = raised(ev, single_since=ev.now - rules.acute_days * DAY)
    acute = np.zeros(ev.n, dtype=bool)
    for sev in acute_window.severity.values():  # aggregates MET now count as raised now
        acute |= sev >= Severity.URGENT.rank
    inputs = GroupInputs(
        open_rules={r: open_.mask(r) for r in ev.ruleset.rules if ev.ruleset.rule(r).clinical},
        open_severity_rules={
            r: open_.severity[r] for r in ev.ruleset.rules if ev.ruleset.rule(r).clinical
        },
        acute=acute,
        recent_intensive=np.zeros(ev.n, dtype=bool),
        frailty=ev.frailty,
    )
    group, _ = classify(ev.cohort, inputs, rules, explain=False)
    return group


def staff_rules(ruleset: RuleSet, recipient: Recipient = Recipient.NURSE) -> frozenset[str]:
    """Rules whose flags reach ``recipient`` as tasks (severity routine or above)."""
    return frozenset(r.id for r in ruleset.rules.values() if recipient in r.recipients)


def counts(
    r: Raised, *, min_rank: int = Severity.ROUTINE.rank, rules: frozenset[str] | None = None
) -> dict[str, int]:
    """Residents per rule raised at ``min_rank`` or above."""
    return {
        rule: int(np.count_nonzero(sev >= min_rank))
        for rule, sev in sorted(r.severity.items())
        if rules is None or rule in rules
    }


__all__ = [
    "Raised",
    "body_comp_table",
    "bp_table",
    "cohort_from_columns",
    "counts",
    "epoch_seconds",
    "evaluate_population",
    "glucose_table",
    "raised",
    "staff_rules",
    "visiting_groups",
    "weight_table",
]
