"""Population helpers: arrays in, the same engine out."""

from __future__ import annotations

import numpy as np
import pytest

from clinical import population as pop
from clinical.model import Readings
from tests.clinical.cases import NOW

NOW_S = int(NOW.timestamp())
H = 3600


def cohort(n: int, **kw):
    return pop.cohort_from_columns(
        age=np.full(n, 70), female=np.zeros(n, bool), height_cm=np.full(n, 170.0), **kw
    )


def test_labels_are_converted_and_unknown_labels_raise():
    tbl = pop.bp_table([0], [NOW_S - H], [120], [80], setting=["centre"])
    assert tbl.setting.tolist() == [1]
    with pytest.raises(ValueError, match="unknown setting 'clinic'"):
        pop.bp_table([0], [NOW_S - H], [120], [80], setting=["clinic"])
    with pytest.raises(ValueError, match="unknown meal"):
        pop.glucose_table([0], [NOW_S - H], [100], meal=["lunch"])
    with pytest.raises(TypeError, match="unknown cohort fields"):
        cohort(1, diabetic=np.ones(1, bool))


def test_datetime64_and_unsorted_input():
    t = np.array(["2026-03-10T09:00:00", "2026-03-10T08:00:00"], dtype="datetime64[s]")
    tbl = pop.bp_table([1, 0], t, [185, 120], [100, 80])
    assert tbl.resident.tolist() == [0, 1]
    assert tbl.sys.tolist() == [120.0, 185.0]


def test_raised_per_resident_and_single_windows():
    readings = Readings(
        bp=pop.bp_table([0, 1], [NOW_S - 40 * 24 * H, NOW_S - H], [190, 125], [100, 80]),
        glucose=pop.glucose_table([2], [NOW_S - H], [50], meal=["fasting"]),
    )
    ev = pop.evaluate_population(cohort(3), readings, NOW_S)
    ever = pop.raised(ev)
    assert ever.mask("BP-CRISIS").tolist() == [True, False, False]
    assert ever.mask("GLU-HYPO-L2").tolist() == [False, False, True]
    recent = pop.raised(ev, single_since=NOW_S - 30 * 24 * H)
    assert recent.mask("BP-CRISIS").tolist() == [False, False, False]
    assert pop.counts(ever)["GLU-HYPO-L2"] == 1


def test_visiting_groups_for_everyone():
    readings = Readings(glucose=pop.glucose_table([0], [NOW_S - H], [50], meal=["fasting"]))
    ev = pop.evaluate_population(
        cohort(3, hypertension=np.array([False, True, False])), readings, NOW_S
    )
    # 0: critical flag today → intensive; 1: diagnosed hypertension → regular; 2: none
    assert pop.visiting_groups(ev).tolist() == [0, 1, 3]
