"""Symptom and fall events near a reading (two-sided windows, clarification 5)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clinical import _seg
from clinical._seg import BoolArray, IntArray
from clinical.evaluation import Evaluation
from clinical.model import symptom_mask
from clinical.quality import OK


@dataclass(frozen=True, slots=True, eq=False)
class Near:
    found: BoolArray
    row: IntArray  # event table row of the first event in the window, or -1
    t: IntArray  # its time (0 when none)


def events_near(
    ev: Evaluation,
    resident: IntArray,
    t: IntArray,
    symptoms: frozenset[str],
    *,
    before_s: float,
    after_s: float,
    falls: bool = False,
    injury_only: bool = False,
) -> Near:
    """For each (resident, t): is there a valid event with one of ``symptoms`` (or a fall when
    ``falls``) within [t − before_s, t + after_s]? Events after the resident's evaluation time
    were already rejected (Q-09) and do not count."""
    tbl = ev.readings.event
    bits = symptom_mask(symptoms)
    sel = (ev.codes["event"] == OK) & ((tbl.symptoms & bits) != 0)
    if falls:
        sel |= (ev.codes["event"] == OK) & tbl.fall & (tbl.injury if injury_only else True)
    rows = np.flatnonzero(sel)
    k = resident.size
    if rows.size == 0 or k == 0:
        return Near(np.zeros(k, dtype=bool), np.full(k, -1, np.int64), np.zeros(k, np.int64))
    keys = _seg.key(tbl.resident[rows], tbl.t[rows])
    start, end = _seg.in_window(keys, _seg.key(resident, t), -int(before_s), int(after_s))
    found = end > start
    first = np.where(found, rows[np.minimum(start, rows.size - 1)], -1).astype(np.int64)
    ft = np.where(found, tbl.t[np.maximum(first, 0)], 0).astype(np.int64)
    return Near(found=found, row=first, t=ft)
