"""Screening, frailty and falls (clinical-rules.md §7)."""

from __future__ import annotations

import numpy as np

from clinical import _seg
from clinical._seg import DAY
from clinical.evaluation import Evaluation, state_from
from clinical.flags import Severity
from clinical.model import Instrument
from clinical.quality import OK


def evaluate(ev: Evaluation) -> None:
    s = ev.thresholds.screening
    tbl = ev.readings.screen
    valid = ev.codes["screen"] == OK

    def single(
        rule: str, mask: np.ndarray, severity: Severity, detail: str, values: np.ndarray
    ) -> None:
        rows = np.flatnonzero(mask)
        ev.hit(
            rule,
            tbl.resident[rows],
            tbl.t[rows],
            severity,
            [("screen", rows)],
            value=values[rows],
            details={detail: values[rows]},
        )

    phq = valid & (tbl.instrument == int(Instrument.PHQ9))
    bmd = valid & (tbl.instrument == int(Instrument.BMD))
    cist = valid & (tbl.instrument == int(Instrument.CIST))
    with np.errstate(invalid="ignore"):
        single(
            "SCR-DEP", phq & (tbl.score >= s.phq9_referral), Severity.ROUTINE, "score", tbl.score
        )
        single(
            "SCR-DEP-SUICIDE",
            phq & (tbl.item9 >= s.phq9_item9),
            Severity.URGENT,
            "item9",
            tbl.item9,
        )
        single(
            "SCR-BMD-OSTEO",
            bmd & (tbl.t_score <= s.bmd_osteo),
            Severity.ROUTINE,
            "t_score",
            tbl.t_score,
        )
        single(
            "SCR-BMD-OSTEOPENIA",
            bmd & (tbl.t_score > s.bmd_osteo) & (tbl.t_score < s.bmd_osteopenia),
            Severity.INFO,
            "t_score",
            tbl.t_score,
        )
    single("SCR-COG", cist & tbl.decline, Severity.ROUTINE, "score", tbl.score)

    # FR-FRAIL: the latest frailty score within 365 days
    frail = valid & (tbl.instrument == int(Instrument.FRAILTY)) & ~np.isnan(tbl.score)
    now_row = ev.now[tbl.resident]
    frail &= (tbl.t > now_row - s.frailty_window_days * DAY) & (tbl.t <= now_row)
    last = _seg.last_row(tbl.resident, frail, ev.n)
    score = _seg.gather(tbl.score, last, np.nan)
    ev.frailty = score
    mark = np.zeros(tbl.size, dtype=bool)
    mark[last[last >= 0]] = True
    ev.evidence_set("frailty-latest", "screen", mark)
    with np.errstate(invalid="ignore"):
        ev.agg(
            "FR-FRAIL",
            state_from(score >= s.frailty, hold=np.isnan(score)),
            details={"score": score},
            evidence=["frailty-latest"],
        )

    # FR-FALL: every fall event; urgent with injury or head strike (clarification 8)
    ev_tbl = ev.readings.event
    falls = np.flatnonzero((ev.codes["event"] == OK) & ev_tbl.fall)
    severity = np.where(ev_tbl.injury[falls], Severity.URGENT.rank, Severity.ROUTINE.rank)
    ev.hit(
        "FR-FALL",
        ev_tbl.resident[falls],
        ev_tbl.t[falls],
        severity.astype(np.int64),
        [("event", falls)],
        symptom=np.ones(falls.size, dtype=bool),
    )
