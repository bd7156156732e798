"""What one evaluation produces: per-rule hits over a cohort, and per-resident findings.

Single-reading rules produce :class:`SingleHits`, one entry per qualifying reading (or reading
and event pair). Aggregate rules produce an :class:`AggregateOutcome`: one :class:`State` per
resident, the state of the window ending at that resident's evaluation time (§0):

* ``MET``: the condition holds; a flag opens (or stays open).
* ``HOLD``: inside the hysteresis band or without enough data to judge; an open flag stays
  open, a closed one does not open (§10.2.5).
* ``GONE``: the premise is false (e.g. a valid home mean now exists, so BP-OFFICE-HTN no longer
  applies); an open flag is closed as *superseded* when newer data caused it (§0).
* ``CLEAR``: the governing quantity is back below threshold − margin, or the data that were
  missing have arrived; an open flag resolves by itself.

:func:`resident_results` turns the arrays into :class:`Finding` values for chosen residents,
the form the lifecycle, ``daon assess`` and the FHIR output work with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum

import numpy as np

from clinical._seg import BoolArray, FloatArray, IntArray
from clinical.flags import Recipient, Severity
from clinical.model import Cohort, Readings
from clinical.quality import OK, REASONS
from clinical.ruleset import RuleSet, Thresholds, Timing


class State(IntEnum):
    CLEAR = 0
    GONE = 1
    HOLD = 2
    MET = 3


@dataclass(frozen=True, slots=True, eq=False)
class SingleHits:
    """Hits of one single-reading rule; arrays are aligned, one entry per hit."""

    rule: str
    resident: IntArray
    t: IntArray  # when the rule fired (the later of a reading/event pair; +30 min when pending)
    severity: IntArray  # Severity.rank
    evidence: tuple[tuple[str, IntArray], ...]  # (table, row position or -1) per hit
    value: FloatArray  # the value worsening is judged on (SBP, mg/dL, kg), NaN if none
    symptom: BoolArray  # a symptom event is part of the evidence
    details: Mapping[str, FloatArray] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, eq=False)
class AggregateOutcome:
    rule: str
    state: IntArray  # State per resident
    severity: IntArray  # Severity.rank per resident (meaningful where MET)
    details: Mapping[str, FloatArray]
    evidence: tuple[str, ...]  # names of evidence sets in Evaluation.evidence_sets


@dataclass(eq=False)
class Evaluation:
    """Everything one evaluation computed, for ``n`` residents at their ``now``."""

    ruleset: RuleSet
    cohort: Cohort
    readings: Readings
    now: IntArray
    codes: dict[str, IntArray]
    single: dict[str, SingleHits] = field(default_factory=dict)
    aggregate: dict[str, AggregateOutcome] = field(default_factory=dict)
    evidence_sets: dict[str, tuple[str, BoolArray]] = field(default_factory=dict)
    latest_valid: dict[str, IntArray] = field(default_factory=dict)  # epoch s, -1 if none
    frailty: FloatArray = field(default_factory=lambda: np.zeros(0))

    @property
    def n(self) -> int:
        return int(self.now.size)

    @property
    def thresholds(self) -> Thresholds:
        return self.ruleset.thresholds

    # -- recording, used by the rule modules -------------------------------------------

    def hit(
        self,
        rule: str,
        resident: IntArray,
        t: IntArray,
        severity: Severity | IntArray,
        evidence: Sequence[tuple[str, IntArray]],
        value: FloatArray | None = None,
        symptom: BoolArray | None = None,
        details: Mapping[str, FloatArray] | None = None,
    ) -> None:
        k = resident.size
        sev = (
            np.full(k, severity.rank, dtype=np.int64)
            if isinstance(severity, Severity)
            else severity.astype(np.int64)
        )
        hits = SingleHits(
            rule=rule,
            resident=resident.astype(np.int64),
            t=t.astype(np.int64),
            severity=sev,
            evidence=tuple((name, rows.astype(np.int64)) for name, rows in evidence),
            value=np.full(k, np.nan) if value is None else value.astype(np.float64),
            symptom=np.zeros(k, dtype=bool) if symptom is None else symptom,
            details=dict(details or {}),
        )
        previous = self.single.get(rule)
        if previous is not None:
            hits = _concat_hits(previous, hits)
        self.single[rule] = hits

    def agg(
        self,
        rule: str,
        state: IntArray,
        *,
        severity: IntArray | None = None,
        details: Mapping[str, FloatArray] | None = None,
        evidence: Sequence[str] = (),
    ) -> None:
        base = self.ruleset.rule(rule).severity.rank
        self.aggregate[rule] = AggregateOutcome(
            rule=rule,
            state=state.astype(np.int64),
            severity=np.full(self.n, base, np.int64) if severity is None else severity,
            details=dict(details or {}),
            evidence=tuple(evidence),
        )

    def evidence_set(self, name: str, table: str, rows: BoolArray) -> None:
        self.evidence_sets[name] = (table, rows)


def state_from(
    met: BoolArray, clear: BoolArray | None = None, hold: BoolArray | None = None
) -> IntArray:
    """MET where ``met``; else HOLD where ``hold``; else CLEAR where ``clear``; else GONE."""
    st = np.full(met.shape, int(State.GONE), dtype=np.int64)
    if clear is not None:
        st[clear] = int(State.CLEAR)
    if hold is not None:
        st[hold] = int(State.HOLD)
    st[met] = int(State.MET)
    return st


def _concat_hits(a: SingleHits, b: SingleHits) -> SingleHits:
    names = [n for n, _ in a.evidence] + [n for n, _ in b.evidence if n not in dict(a.evidence)]
    ka, kb = a.resident.size, b.resident.size

    def col(h: SingleHits, name: str, k: int) -> IntArray:
        return dict(h.evidence).get(name, np.full(k, -1, dtype=np.int64))

    keys = set(a.details) | set(b.details)
    return SingleHits(
        rule=a.rule,
        resident=np.concatenate([a.resident, b.resident]),
        t=np.concatenate([a.t, b.t]),
        severity=np.concatenate([a.severity, b.severity]),
        evidence=tuple(
            (name, np.concatenate([col(a, name, ka), col(b, name, kb)])) for name in names
        ),
        value=np.concatenate([a.value, b.value]),
        symptom=np.concatenate([a.symptom, b.symptom]),
        details={
            k: np.concatenate(
                [a.details.get(k, np.full(ka, np.nan)), b.details.get(k, np.full(kb, np.nan))]
            )
            for k in keys
        },
    )


# --------------------------------------------------------------------------- per resident


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule's result for one resident in one evaluation."""

    rule: str
    severity: Severity
    recipients: tuple[Recipient, ...]
    timing: Timing
    at: datetime  # when it fired (single) or the evaluation time (aggregate)
    evidence: tuple[int, ...]  # reading indices (caller ids), sorted
    summary: str
    value: float | None = None
    details: tuple[tuple[str, float], ...] = ()
    fresh: bool = True  # involves data that arrived since the previous evaluation
    symptom: bool = False


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int
    rule: str  # "Q-01" … "Q-09"
    reason: str
    table: str
    at: datetime
    code: int  # clinical.quality code (rule number × 10 + sub-reason)
    fresh: bool = True


@dataclass(frozen=True, slots=True)
class ResidentResult:
    """A resident's evaluation: findings, the aggregate states, rejected readings."""

    resident: int
    now: datetime
    rule_set: str
    findings: tuple[Finding, ...]  # single hits (all of them) and MET aggregates
    states: Mapping[str, State]  # every aggregate rule
    rejected: tuple[Rejected, ...]
    latest_valid: Mapping[str, datetime | None]
    frailty: float | None


def to_datetime(t: int) -> datetime:
    return datetime.fromtimestamp(int(t), tz=UTC)


_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("sys", "dia", "{:.0f}/{:.0f} mmHg"),
    ("mean_sys", "mean_dia", "mean {:.1f}/{:.1f} mmHg"),
    ("office_sys", "office_dia", "office mean {:.1f}/{:.1f} mmHg"),
    ("drop_sys", "drop_dia", "drop {:.0f}/{:.0f} mmHg"),
)
_DETAIL_FORMAT: dict[str, str] = {
    "mg_dl": "{:.0f} mg/dL",
    "mean_mg_dl": "mean {:.1f} mg/dL",
    "n": "n={:.0f}",
    "dates": "{:.0f} days",
    "pct": "{:.2f} %",
    "target": "target {:.1f} %",
    "bmi": "BMI {:.1f}",
    "class": "class {:.0f}",
    "gain_kg": "+{:.1f} kg",
    "loss_pct": "-{:.1f} %",
    "kg": "{:.1f} kg",
    "waist_cm": "waist {:.1f} cm",
    "fat_pct": "body fat {:.1f} %",
    "asmi": "ASMI {:.2f} kg/m2",
    "grip_kg": "grip {:.1f} kg",
    "score": "score {:.0f}",
    "item9": "item 9 = {:.0f}",
    "t_score": "T {:.1f}",
    "hours": "{:.0f} h since the last reading",
    "rejects": "{:.0f} rejected",
    "present": "{:.0f} present",
    "unknown": "{:.0f} unknown",
}


def summary_for(title_ko: str, title_en: str, details: Sequence[tuple[str, float]]) -> str:
    """Korean title (values) / English title (values): for clinical staff only."""
    values = {k: v for k, v in details if v == v}  # drop NaN
    parts = []
    for a, b, fmt in _PAIRS:
        if a in values and b in values:
            parts.append(fmt.format(values.pop(a), values.pop(b)))
    for k, v in values.items():
        if k in _DETAIL_FORMAT:
            parts.append(_DETAIL_FORMAT[k].format(v))
    tail = f" ({', '.join(parts)})" if parts else ""
    return f"{title_ko}{tail} / {title_en}{tail}"


def resident_results(
    ev: Evaluation,
    residents: Iterable[int] | None = None,
    *,
    since: Mapping[int, int] | None = None,
) -> dict[int, ResidentResult]:
    """Per-resident findings. ``since[r]`` (epoch s) marks single hits that fired after the
    previous evaluation as fresh even when all their readings are old (pending rules)."""
    wanted = list(range(ev.n)) if residents is None else list(residents)
    tables = ev.readings.tables()
    hits_by: dict[int, list[Finding]] = {r: [] for r in wanted}
    want = np.zeros(ev.n, dtype=bool)
    want[wanted] = True
    for rule, hits in ev.single.items():
        spec = ev.ruleset.rule(rule)
        sel = np.flatnonzero(want[hits.resident])
        for h in sel.tolist():
            r = int(hits.resident[h])
            idx: list[int] = []
            fresh = False
            for name, rows in hits.evidence:
                row = int(rows[h])
                if row >= 0:
                    tbl = tables[name.split(":")[0]]
                    idx.append(int(tbl.index[row]))
                    fresh |= bool(tbl.fresh[row])
            t_fire = int(hits.t[h])
            if since is not None and r in since and t_fire > since[r]:
                fresh = True
            details = tuple((k, float(v[h])) for k, v in hits.details.items() if not np.isnan(v[h]))
            value = float(hits.value[h])
            hits_by[r].append(
                Finding(
                    rule=rule,
                    severity=Severity.from_rank(int(hits.severity[h])),
                    recipients=spec.recipients,
                    timing=Timing.SINGLE,
                    at=to_datetime(t_fire),
                    evidence=tuple(sorted(set(idx))),
                    summary=summary_for(spec.title_ko, spec.title_en, details),
                    value=None if np.isnan(value) else value,
                    details=details,
                    fresh=fresh,
                    symptom=bool(hits.symptom[h]),
                )
            )
    out: dict[int, ResidentResult] = {}
    for r in wanted:
        findings = list(hits_by[r])
        states: dict[str, State] = {}
        for rule, agg in ev.aggregate.items():
            st = State(int(agg.state[r]))
            states[rule] = st
            if st is not State.MET:
                continue
            spec = ev.ruleset.rule(rule)
            idx_set: set[int] = set()
            fresh = False
            for set_name in agg.evidence:
                table, mask = ev.evidence_sets[set_name]
                tbl = tables[table]
                rows = _rows_of(tbl.resident, mask, r)
                idx_set.update(int(i) for i in tbl.index[rows])
                fresh |= bool(tbl.fresh[rows].any())
            details = tuple((k, float(v[r])) for k, v in agg.details.items() if not np.isnan(v[r]))
            findings.append(
                Finding(
                    rule=rule,
                    severity=Severity.from_rank(int(agg.severity[r])),
                    recipients=spec.recipients,
                    timing=Timing.AGGREGATE,
                    at=to_datetime(int(ev.now[r])),
                    evidence=tuple(sorted(idx_set)),
                    summary=summary_for(spec.title_ko, spec.title_en, details),
                    details=details,
                    fresh=fresh,
                )
            )
        rejected: list[Rejected] = []
        for name, codes in ev.codes.items():
            tbl = tables[name]
            rows = _rows_of(tbl.resident, codes != OK, r)
            for row in rows.tolist():
                rule_id, reason = REASONS[int(codes[row])]
                rejected.append(
                    Rejected(
                        int(tbl.index[row]),
                        rule_id,
                        reason,
                        name,
                        to_datetime(int(tbl.t[row])),
                        int(codes[row]),
                        bool(tbl.fresh[row]),
                    )
                )
        rejected.sort(key=lambda x: x.index)
        latest = {
            name: (None if int(v[r]) < 0 else to_datetime(int(v[r])))
            for name, v in ev.latest_valid.items()
        }
        frailty = float(ev.frailty[r]) if ev.frailty.size else float("nan")
        out[r] = ResidentResult(
            resident=r,
            now=to_datetime(int(ev.now[r])),
            rule_set=ev.ruleset.version,
            findings=tuple(sorted(findings, key=lambda f: (f.at, f.rule))),
            states=states,
            rejected=tuple(rejected),
            latest_valid=latest,
            frailty=None if np.isnan(frailty) else frailty,
        )
    return out


def _rows_of(resident: IntArray, mask: BoolArray, r: int) -> IntArray:
    lo = int(np.searchsorted(resident, r, side="left"))
    hi = int(np.searchsorted(resident, r, side="right"))
    return (np.flatnonzero(mask[lo:hi]) + lo).astype(np.int64)
