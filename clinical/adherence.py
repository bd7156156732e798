"""Adherence and data gaps (clinical-rules.md §8, clarification 8)."""

from __future__ import annotations

import numpy as np

from clinical import _seg
from clinical._seg import DAY, HOUR
from clinical.evaluation import Evaluation, state_from
from clinical.quality import COUNTS_FOR_ADH_QUALITY


def evaluate(ev: Evaluation) -> None:
    a = ev.thresholds.adherence
    c = ev.cohort
    n = ev.n
    latest = np.full(n, -1, dtype=np.int64)
    for kind in ("bp_home", "glucose_home", "weight_home"):
        latest = np.maximum(latest, ev.latest_valid.get(kind, latest))
    hours = np.where(latest >= 0, (ev.now - latest) / HOUR, np.inf)
    limit = np.where(c.lives_alone, a.no_data_hours_alone, a.no_data_hours)
    gap = c.home_monitoring & (hours >= limit)
    # ADH-NO-DATA clears by itself when valid home data resume (§10.2.6)
    ev.agg(
        "ADH-NO-DATA",
        state_from(gap, clear=~gap),
        details={"hours": np.where(np.isinf(hours), np.nan, hours)},
    )

    counts = np.zeros(n, dtype=np.int64)
    bad = np.array(sorted(COUNTS_FOR_ADH_QUALITY))
    for name, tbl in ev.readings.tables().items():
        codes = ev.codes[name]
        now_row = ev.now[tbl.resident]
        m = np.isin(codes, bad) & (tbl.t > now_row - a.quality_days * DAY) & (tbl.t <= now_row)
        ev.evidence_set(f"rejected-{name}", name, m)
        counts += _seg.count(tbl.resident, m, n)
    ev.agg(
        "ADH-QUALITY",
        state_from(counts >= a.quality_rejects),
        details={"rejects": counts.astype(np.float64)},
        evidence=[f"rejected-{name}" for name in ev.readings.tables()],
    )
