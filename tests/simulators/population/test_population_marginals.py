"""The generated district matches its published marginals.

Expected values are copied from the sources, not from the generator: the neighbourhood table
from ../shared/reference/junggu-district.md (as of 2014-10-31), prevalence from the KNHANES
publications cited in simulators/population.py (approximate, rounded values).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from simulators.population import Population

# 동: (residents, basic livelihood 기초수급, near-poor 차상위, staff), junggu-district.md.
DISTRICT_TABLE = {
    "소공동": (658, 8, 1, 12),
    "회현동": (3559, 415, 69, 13),
    "명동": (1518, 46, 21, 11),
    "필동": (2422, 71, 34, 12),
    "장충동": (2904, 50, 34, 12),
    "광희동": (2890, 85, 44, 12),
    "을지로동": (1280, 68, 32, 13),
    "신당동": (3880, 158, 131, 13),
    "다산동": (7033, 182, 208, 13),
    "약수동": (7922, 383, 298, 14),
    "청구동": (6480, 301, 176, 13),
    "신당5동": (4677, 197, 136, 13),
    "동화동": (4335, 79, 65, 12),
    "황학동": (6054, 238, 137, 13),
    "중림동": (4537, 287, 136, 13),
}

# Percent, (men, women) for 20-29, 30-39, 40-49, 50-59, 60-69, 70+ (KNHANES, approximate:
# Korea Health Statistics 2021; Hypertension Fact Sheet 2023; Diabetes Fact Sheet 2021;
# Dyslipidemia Fact Sheet 2022). The 20-29 diabetes band is the generator's stated extrapolation.
TARGETS = {
    "hypertension": ((8.0, 14.0, 27.0, 40.0, 53.0, 64.0), (2.0, 4.0, 11.0, 25.0, 45.0, 69.0)),
    "diabetes": ((1.5, 4.0, 11.0, 20.0, 29.0, 31.0), (1.0, 2.0, 5.0, 11.0, 20.0, 30.0)),
    "obesity": ((39.0, 56.0, 53.0, 48.0, 44.0, 37.0), (19.0, 27.0, 27.0, 30.0, 35.0, 38.0)),
    "dyslipidemia": ((22.0, 42.0, 52.0, 56.0, 55.0, 48.0), (8.0, 12.0, 20.0, 40.0, 56.0, 58.0)),
}
BANDS = ((20, 29), (30, 39), (40, 49), (50, 59), (60, 69), (70, 200))
TOLERANCE_PP = 1.0  # exact counts per cell, so only rounding separates us from the target


def test_total_is_the_district_total(district: Population) -> None:
    assert len(district.residents) == 60_149


def test_counts_per_neighbourhood_are_exact(district: Population) -> None:
    counts = Counter(district.residents.neighbourhood.tolist())
    assert counts == {name: row[0] for name, row in DISTRICT_TABLE.items()}


def test_benefit_totals_are_exact(district: Population) -> None:
    benefit = Counter(district.residents.benefit.tolist())
    assert (benefit["basic"], benefit["near_poor"]) == (2568, 1522)
    assert benefit["general"] == 60_149 - 2568 - 1522


@pytest.mark.parametrize("name", list(DISTRICT_TABLE))
def test_benefit_counts_per_neighbourhood_are_exact(district: Population, name: str) -> None:
    r = district.residents
    here = r.neighbourhood == name
    _, basic, near_poor, _ = DISTRICT_TABLE[name]
    assert int((here & (r.benefit == "basic")).sum()) == basic
    assert int((here & (r.benefit == "near_poor")).sum()) == near_poor


@pytest.mark.parametrize("condition", list(TARGETS))
@pytest.mark.parametrize("sex", ["M", "F"])
@pytest.mark.parametrize("band", range(len(BANDS)))
def test_prevalence_by_age_band_and_sex(
    district: Population, condition: str, sex: str, band: int
) -> None:
    r = district.residents
    lo, hi = BANDS[band]
    cell = (r.sex == sex) & (r.age >= lo) & (r.age <= hi)
    assert cell.sum() > 500  # every cell is large enough for the tolerance to mean something
    target = TARGETS[condition][0 if sex == "M" else 1][band]
    observed = 100.0 * getattr(r, condition)[cell].mean()
    assert observed == pytest.approx(target, abs=TOLERANCE_PP)


def test_uncontrolled_shares_follow_the_fact_sheets(district: Population) -> None:
    r = district.residents
    assert not (r.uncontrolled_hypertension & ~r.hypertension).any()
    assert not (r.uncontrolled_diabetes & ~r.diabetes).any()
    # Hypertension Fact Sheet 2023: control rate 56 % → 44 % uncontrolled.
    assert r.uncontrolled_hypertension.sum() / r.hypertension.sum() == pytest.approx(0.44, abs=0.01)
    # Diabetes Fact Sheet 2021: about half reach HbA1c <7.0 % → 45 % uncontrolled (stated).
    assert r.uncontrolled_diabetes.sum() / r.diabetes.sum() == pytest.approx(0.45, abs=0.01)


def test_age_structure_is_older_than_seoul(district: Population) -> None:
    r = district.residents
    assert r.age.min() >= 20
    assert r.age.max() <= 99
    # Stated assumption: ≈26 % of adults aged 65+ (Jung-gu ≈22 % of all residents, Seoul ≈18 %).
    assert (r.age >= 65).mean() == pytest.approx(0.26, abs=0.02)
    old = r.age >= 80
    assert (r.sex[old] == "F").mean() == pytest.approx(0.66, abs=0.03)


def test_conditions_cluster(district: Population) -> None:
    """Obesity raises the odds of hypertension and diabetes (shared latent risk)."""
    r = district.residents
    for condition in (r.hypertension, r.diabetes):
        assert condition[r.obesity].mean() > condition[~r.obesity].mean()


def test_obesity_ground_truth_is_bmi_25(district: Population) -> None:
    r = district.residents
    np.testing.assert_array_equal(r.obesity, r.bmi >= 25.0)


def test_twelve_nurses_cover_every_neighbourhood(district: Population) -> None:
    nurses = district.nurses
    assert len(nurses) == 12
    covered = {nb for nurse in nurses for nb in nurse.neighbourhoods}
    assert covered == set(DISTRICT_TABLE)
    r = district.residents
    by_id = {nurse.id: nurse for nurse in nurses}
    for nurse_id, neighbourhood in set(
        zip(r.nurse.tolist(), r.neighbourhood.tolist(), strict=True)
    ):
        assert neighbourhood in by_id[nurse_id].neighbourhoods
    caseload = Counter(r.nurse.tolist())
    assert max(caseload.values()) - min(caseload.values()) <= 0.05 * 60_149 / 12


def test_liaison_officers_look_after_30_to_50_residents(district: Population) -> None:
    r = district.residents
    caseload = Counter(r.liaison[r.liaison != ""].tolist())
    assert caseload
    assert all(30 <= count <= 50 for count in caseload.values())
    listed = {officer.id: officer for officer in district.liaisons}
    assert set(caseload) == set(listed)
    for officer_id, count in caseload.items():
        assert listed[officer_id].residents == count


def test_liaison_officers_work_in_their_own_neighbourhood(district: Population) -> None:
    r = district.residents
    listed = {officer.id: officer for officer in district.liaisons}
    with_officer = r.liaison != ""
    for officer_id, neighbourhood in set(
        zip(
            r.liaison[with_officer].tolist(),
            r.neighbourhood[with_officer].tolist(),
            strict=True,
        )
    ):
        assert listed[officer_id].neighbourhood == neighbourhood
    per_nb = Counter(officer.neighbourhood for officer in district.liaisons)
    for neighbourhood, officers in per_nb.items():
        assert officers <= DISTRICT_TABLE[neighbourhood][3]  # no more than the centre's staff


def test_liaison_officers_start_with_benefit_recipients(district: Population) -> None:
    r = district.residents
    recipients = r.benefit != "general"
    assert (r.liaison[recipients] != "").mean() > 0.9
    assert (r.liaison[(~recipients) & (r.age < 65)] == "").all()


def _luhn_ok(number: str) -> bool:
    """Independent Luhn check (ISO/IEC 7812-1 Annex B)."""
    total = 0
    for i, char in enumerate(reversed(number)):
        digit = int(char)
        if i % 2 == 1:
            digit = digit * 2 - 9 if digit * 2 > 9 else digit * 2
        total += digit
    return total % 10 == 0


def test_luhn_reference_vector() -> None:
    assert _luhn_ok("79927398713")  # the standard worked example (valid)
    assert not _luhn_ok("79927398710")


def test_card_numbers_are_unique_and_valid(district: Population) -> None:
    cards = district.residents.card_number.tolist()
    assert len(set(cards)) == len(cards)
    assert all(re.fullmatch(r"9410\d{8}", card) for card in cards)
    assert all(_luhn_ok(card) for card in cards[:5000])


def test_resident_ids_are_sequential(district: Population) -> None:
    r = district.residents
    assert r.id[0] == "R0000001"
    assert r.id[-1] == "R0060149"
    assert r.index_of("R0000042") == 41
    with pytest.raises(KeyError):
        r.index_of("R9999999")


def test_names_are_three_syllable_hangul(district: Population) -> None:
    names = district.residents.name[:2000].tolist()
    assert all(re.fullmatch(r"[가-힣]{3}", name) for name in names)
    staff = [n.name for n in district.nurses] + [o.name for o in district.liaisons]
    assert all(re.fullmatch(r"[가-힣]{3}", name) for name in staff)


def test_consent_is_more_common_among_liaison_clients(district: Population) -> None:
    r = district.residents
    has = r.liaison != ""
    assert r.consent[has].mean() == pytest.approx(0.75, abs=0.03)
    assert r.consent[~has].mean() == pytest.approx(0.40, abs=0.02)


def test_device_ownership_follows_conditions(district: Population) -> None:
    r = district.residents
    assert r.home_bp[r.hypertension].mean() > 3 * r.home_bp[~r.hypertension].mean()
    assert r.home_glucose[r.diabetes].mean() > 10 * r.home_glucose[~r.diabetes].mean()
    assert 0.1 < r.home_scale.mean() < 0.35
