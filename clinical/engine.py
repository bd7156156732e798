"""The rule engine: quality filters, then every rule of the rule set, over a cohort at once.

Pure: takes a cohort, its readings and each resident's evaluation time, returns an
:class:`~clinical.evaluation.Evaluation`; no I/O, no clock. The population benchmark, the
runner and ``daon assess`` all call :func:`evaluate`; a single resident is a cohort of one.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from clinical import _seg, adherence, body, bp, glucose, metabolic, quality, screening
from clinical._seg import IntArray
from clinical.errors import RuleSetError
from clinical.evaluation import Evaluation, ResidentResult, resident_results
from clinical.flags import Severity
from clinical.model import Cohort, Profile, Readings
from clinical.ruleset import DEFAULT_RULESET, RuleSet, Timing

_MODULES = (bp, glucose, body, metabolic, screening, adherence)


def epoch(when: datetime) -> int:
    """Epoch seconds of an aware datetime."""
    if when.tzinfo is None:
        raise ValueError("evaluation times must carry a UTC offset")
    return int(when.timestamp())


def evaluate(
    cohort: Cohort,
    readings: Readings,
    now: int | IntArray,
    ruleset: RuleSet = DEFAULT_RULESET,
) -> Evaluation:
    """Evaluate every rule for every resident of ``cohort`` at ``now`` (epoch seconds, one per
    resident or one for all). Readings after a resident's ``now`` are rejected by Q-09."""
    n = cohort.n
    now_arr = np.full(n, now, dtype=np.int64) if np.isscalar(now) else np.asarray(now, np.int64)
    if now_arr.shape != (n,):
        raise ValueError(f"now has shape {now_arr.shape}, expected ({n},)")
    for name, tbl in readings.tables().items():
        if tbl.size and (tbl.resident.max() >= n or tbl.resident.min() < 0):
            raise ValueError(f"{name} readings refer to residents outside the cohort")
    codes = quality.all_codes(readings, now_arr, ruleset.thresholds.quality)
    ev = Evaluation(ruleset=ruleset, cohort=cohort, readings=readings, now=now_arr, codes=codes)
    ev.frailty = np.full(n, np.nan)
    for name, tbl in readings.tables().items():  # per table, any setting (supersession)
        last = _seg.last_row(tbl.resident, codes[name] == quality.OK, n)
        ev.latest_valid[name] = np.where(
            last >= 0, tbl.t[np.maximum(last, 0)] if tbl.size else -1, -1
        )
    for name in ("bp", "glucose"):  # §2: Q-01…Q-06 prompt the resident to measure again
        tbl = readings.tables()[name]
        rows = np.flatnonzero(np.isin(codes[name], sorted(quality.REMEASURE)))
        ev.hit("Q-REMEASURE", tbl.resident[rows], tbl.t[rows], Severity.INFO, [(name, rows)])
    for module in _MODULES:
        module.evaluate(ev)
    produced = set(ev.single) | set(ev.aggregate)
    missing = (
        {r.id for r in ruleset.rules.values()}
        - produced
        - {r.id for r in ruleset.rules.values() if r.timing is Timing.SINGLE}
    )
    if missing:
        raise RuleSetError(f"rules without an implementation: {sorted(missing)}")
    return ev


def evaluate_one(
    profile: Profile, readings: Readings, now: datetime, ruleset: RuleSet = DEFAULT_RULESET
) -> ResidentResult:
    """Evaluate one resident (resident 0 of ``readings``) at ``now``."""
    ev = evaluate(Cohort.from_profiles([profile]), readings, epoch(now), ruleset)
    return resident_results(ev, [0])[0]
