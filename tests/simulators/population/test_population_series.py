"""The readings behave like real residents' readings, and the generator is deterministic.

Ranges come from the literature cited in simulators/population_physiology.py (day-by-day home
SBP SD 6-11 mmHg, Ohasama; a morning-evening home difference of several mmHg, J-HOME; a
positive white-coat effect; low hypoglycaemia rates) and from the district rules (centre visits
on weekdays in opening hours), never from a run of the generator.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulators.population import MEAL_CONTEXTS, Population, generate

SEOUL_S = 9 * 3600


def _local_hour(t: np.ndarray) -> np.ndarray:
    return ((t.astype(np.int64) + SEOUL_S) % 86400) / 3600.0


def _per_resident_mean(
    resident: np.ndarray, value: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    count = np.bincount(resident, minlength=n)
    total = np.bincount(resident, value.astype(np.float64), minlength=n)
    return total / np.maximum(count, 1), count


def test_within_person_home_sbp_sd_is_realistic(year: Population) -> None:
    bp, n = year.bp, len(year.residents)
    home = bp.setting == "home"
    mean, count = _per_resident_mean(bp.resident[home], bp.sys[home], n)
    sq, _ = _per_resident_mean(bp.resident[home], bp.sys[home].astype(np.float64) ** 2, n)
    sd = np.sqrt(np.maximum(sq - mean**2, 0.0))
    regular = count >= 30
    assert regular.sum() > 200
    assert 6.0 <= np.median(sd[regular]) <= 11.0
    assert np.percentile(sd[regular], 95) < 16.0


def test_morning_surge_is_present(year: Population) -> None:
    bp, n = year.bp, len(year.residents)
    home = bp.setting == "home"
    hour = _local_hour(bp.t)
    morning = home & (hour < 11)
    evening = home & (hour >= 17)
    m_mean, m_count = _per_resident_mean(bp.resident[morning], bp.sys[morning], n)
    e_mean, e_count = _per_resident_mean(bp.resident[evening], bp.sys[evening], n)
    both = (m_count >= 10) & (e_count >= 10)
    assert both.sum() > 200
    surge = m_mean[both] - e_mean[both]
    assert 3.0 < surge.mean() < 12.0
    assert (surge > 0).mean() > 0.6


def test_white_coat_effect_is_present(year: Population) -> None:
    bp, n = year.bp, len(year.residents)
    home = bp.setting == "home"
    centre = bp.setting == "centre"
    h_mean, h_count = _per_resident_mean(bp.resident[home], bp.sys[home], n)
    c_mean, c_count = _per_resident_mean(bp.resident[centre], bp.sys[centre], n)
    both = (h_count >= 10) & (c_count >= 3)
    assert both.sum() > 100
    assert (c_mean[both] - h_mean[both]).mean() > 2.0
    r = year.residents
    assert r.white_coat.any()
    assert r.masked.any()


def test_home_means_agree_with_ground_truth(year: Population) -> None:
    """Uncontrolled hypertension shows as a home mean ≥135/85 (KSH); the rest stay below."""
    bp, r = year.bp, year.residents
    home = bp.setting == "home"
    sys_mean, count = _per_resident_mean(bp.resident[home], bp.sys[home], len(r))
    dia_mean, _ = _per_resident_mean(bp.resident[home], bp.dia[home], len(r))
    valid = count >= 12
    high = (sys_mean >= 135) | (dia_mean >= 85)
    assert high[valid & r.uncontrolled_hypertension].mean() > 0.95
    assert high[valid & ~r.uncontrolled_hypertension].mean() < 0.05


def test_hypoglycaemia_occurs_at_a_low_rate(year: Population) -> None:
    g, r = year.glucose, year.residents
    diabetic = r.diabetes[g.resident]
    low = g.mg_dl < 70
    assert low.any()
    assert 0.003 < low[diabetic].mean() < 0.05
    assert low[~diabetic].mean() < low[diabetic].mean()
    prone = r.hypo_prone[g.resident]
    assert low[prone].mean() > 3 * low[diabetic & ~prone].mean()


def test_glucose_has_every_meal_context_and_postprandial_rise(year: Population) -> None:
    g, r = year.glucose, year.residents
    assert set(np.unique(g.meal).tolist()) == set(MEAL_CONTEXTS)
    diabetic = r.diabetes[g.resident]
    fasting = g.mg_dl[diabetic & (g.meal == "fasting")].mean()
    post = g.mg_dl[diabetic & (g.meal == "postprandial")].mean()
    assert post > fasting + 20
    uncontrolled = r.uncontrolled_diabetes[g.resident] & (g.meal == "fasting")
    controlled = diabetic & ~r.uncontrolled_diabetes[g.resident] & (g.meal == "fasting")
    assert g.mg_dl[uncontrolled].mean() > 126 > g.mg_dl[controlled].mean() - 10


def test_missed_days_and_absences_occur(year: Population) -> None:
    bp, r = year.bp, year.residents
    home = bp.setting == "home"
    day = (bp.t[home].astype(np.int64) + SEOUL_S) // 86400
    res = bp.resident[home]
    days_used = {(int(a), int(b)) for a, b in zip(res, day, strict=True)}
    owners = np.flatnonzero(r.home_bp)
    used_per_owner = np.bincount([a for a, _ in days_used], minlength=len(r))[owners]
    assert (used_per_owner < 365).all()
    assert np.median(used_per_owner) < 330
    order = np.lexsort((day, res))
    gaps = np.diff(day[order])[np.diff(res[order]) == 0]
    assert (gaps >= 7).sum() > 50  # week-long absences exist


def test_centre_readings_are_on_weekdays_in_opening_hours(year: Population) -> None:
    bp = year.bp
    centre = bp.setting == "centre"
    local = bp.t[centre].astype(np.int64) + SEOUL_S
    weekday = (local // 86400 + 3) % 7  # 1970-01-01 was a Thursday
    assert (weekday < 5).all()
    hour = (local % 86400) / 3600.0
    assert hour.min() >= 9.0
    assert hour.max() < 18.5


def test_readings_fall_inside_the_period(year: Population) -> None:
    start = np.datetime64(year.start, "s") - np.timedelta64(SEOUL_S, "s")
    stop = np.datetime64(year.end + dt.timedelta(days=1), "s") - np.timedelta64(SEOUL_S, "s")
    for table in (year.bp, year.glucose, year.weight, year.body_comp):
        assert len(table) > 0
        assert table.t.min() >= start
        assert table.t.max() < stop


def test_values_are_plausible(year: Population) -> None:
    bp = year.bp
    assert (bp.dia < bp.sys).all()
    assert (bp.sys - bp.dia >= 15).all()
    assert bp.pulse.min() >= 40
    assert bp.pulse.max() <= 140
    assert year.glucose.mg_dl.min() >= 20
    assert year.glucose.mg_dl.max() <= 600
    assert year.weight.kg.min() >= 25
    assert year.weight.kg.max() <= 250
    assert np.allclose(year.weight.kg * 10, np.rint(year.weight.kg * 10))
    assert year.body_comp.fat_pct.min() >= 3
    assert year.body_comp.fat_pct.max() <= 65


def test_weight_matches_bmi_and_height(year: Population) -> None:
    w, r = year.weight, year.residents
    mean_kg, count = _per_resident_mean(w.resident, w.kg, len(r))
    some = count >= 20
    implied_bmi = mean_kg[some] / (r.height_cm[some] / 100) ** 2
    assert np.median(np.abs(implied_bmi - r.bmi[some])) < 0.8


def test_unintentional_weight_loss_shows_in_the_series(year: Population) -> None:
    w, r = year.weight, year.residents
    losers = np.flatnonzero(r.weight_loss & r.home_scale)
    if len(losers) == 0:
        pytest.skip("no weight-loss resident owns a scale in this sample")
    checked = 0
    for i in losers[:10]:
        kg = w.kg[w.resident == i]
        if len(kg) < 20:
            continue
        first, last = kg[: len(kg) // 5].mean(), kg[-len(kg) // 5 :].mean()
        assert (first - last) / first > 0.03
        checked += 1
    if checked == 0:
        pytest.skip("no weight-loss resident weighed often enough in this sample")


def test_tables_are_sorted_by_resident_then_time(year: Population) -> None:
    for table in (year.bp, year.glucose, year.weight, year.body_comp):
        key = table.resident.astype(np.int64) * 10**10 + table.t.astype(np.int64)
        assert (np.diff(key) >= 0).all()


def test_arrays_are_read_only(year: Population) -> None:
    with pytest.raises(ValueError, match="read-only"):
        year.bp.sys[0] = 1
    with pytest.raises(ValueError, match="read-only"):
        year.residents.age[0] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        year.bp.sys = year.bp.sys  # type: ignore[misc]


def _assert_same(a: Population, b: Population) -> None:
    for table in ("residents", "bp", "glucose", "weight", "body_comp"):
        left, right = getattr(a, table), getattr(b, table)
        for field in dataclasses.fields(left):
            np.testing.assert_array_equal(
                getattr(left, field.name),
                getattr(right, field.name),
                err_msg=f"{table}.{field.name}",
            )
    assert a.nurses == b.nurses
    assert a.liaisons == b.liaisons


def test_same_seed_gives_identical_arrays() -> None:
    end = dt.date(2026, 1, 10)
    _assert_same(
        generate(11, n_residents=1500, days=60, end=end),
        generate(11, n_residents=1500, days=60, end=end),
    )


def test_different_seed_gives_different_data() -> None:
    end = dt.date(2026, 1, 10)
    a = generate(11, n_residents=1500, days=60, end=end)
    b = generate(12, n_residents=1500, days=60, end=end)
    assert not np.array_equal(a.residents.age, b.residents.age)
    assert not np.array_equal(a.residents.card_number, b.residents.card_number)
    assert len(a.bp) != len(b.bp) or not np.array_equal(a.bp.sys, b.bp.sys)


def test_moving_end_by_whole_weeks_moves_the_readings() -> None:
    a = generate(5, n_residents=800, days=30, end=dt.date(2026, 1, 31))
    b = generate(5, n_residents=800, days=30, end=dt.date(2026, 2, 28))  # 4 weeks later
    np.testing.assert_array_equal(a.residents.true_home_sys, b.residents.true_home_sys)
    for before, after in ((a.bp, b.bp), (a.glucose, b.glucose), (a.weight, b.weight)):
        assert len(before) == len(after)
        np.testing.assert_array_equal(after.resident, before.resident)
        np.testing.assert_array_equal(after.t - before.t, np.full(len(before), 28 * 86400, "m8[s]"))


def test_rejects_empty_requests() -> None:
    with pytest.raises(ValueError, match="n_residents"):
        generate(1, n_residents=0)
    with pytest.raises(ValueError, match="days"):
        generate(1, days=0)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 400), days=st.integers(1, 21), seed=st.integers(0, 2**32 - 1))
def test_any_size_is_consistent(n: int, days: int, seed: int) -> None:
    population = generate(seed, n_residents=n, days=days, end=dt.date(2026, 6, 30))
    r = population.residents
    assert len(r) == n
    assert len(set(r.id.tolist())) == n
    assert len(set(r.card_number.tolist())) == n
    assert set(r.benefit.tolist()) <= {"basic", "near_poor", "general"}
    assert set(r.sex.tolist()) <= {"M", "F"}
    for table in (population.bp, population.glucose, population.weight, population.body_comp):
        assert ((table.resident >= 0) & (table.resident < n)).all()
    assert set(np.unique(population.bp.setting).tolist()) <= {"home", "centre"}
