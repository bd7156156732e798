"""Synthetic contact details for the population: phones, address, emergency contact, living alone.

Nothing here can reach or locate a real person:

- phone numbers are ``010-0000-xxxx`` (mobile) and ``02-0000-xxxx`` (Seoul landline); Korean
  subscriber numbers never start with 0000, so none of them is assigned to anyone;
- addresses are in the resident's real 동 (junggu-district.md) on an invented road named after
  it (``약수다온3길``), so a building number on it is not a real house number.

Shares (ASSUMPTION, rounded): living alone 22 % of residents aged 65+ and 12 % of younger adults
(Statistics Korea, 2023 고령자 통계: about one in five older people lives alone), doubled for
basic-livelihood recipients (capped at 60 %); a landline 55 % at 65+, 20 % below; an emergency
contact for 90 % (95 % of those living alone: the centres ask for one at enrolment). The
contact's relationship depends on age and household: a spouse only for residents who do not live
alone; children for older residents, parents or siblings for younger ones. The first contact of
a resident aged 75+ or living alone is marked as guardian (보호자).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulators.population_names import synthetic_names

__all__ = ["Contacts", "synthetic_contacts"]

BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.str_]
IntArray = npt.NDArray[np.int64]

#: Relationship codes (ingest.store.registry.RELATIONSHIPS) by age group, with weights.
_OLDER = (("son", 0.32), ("daughter", 0.32), ("spouse", 0.18), ("sibling", 0.06),
          ("grandchild", 0.04), ("neighbour", 0.05), ("friend", 0.03))  # fmt: skip
_YOUNGER = (("spouse", 0.40), ("parent", 0.25), ("sibling", 0.20), ("friend", 0.10),
            ("relative", 0.05))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Contacts:
    """One row per resident, aligned with :class:`simulators.population.Residents`.

    Empty strings mean "none": ``home_phone`` without a landline, ``contact_*`` without an
    emergency contact.
    """

    mobile_phone: StrArray
    home_phone: StrArray
    address_road: StrArray
    address_detail: StrArray
    lives_alone: BoolArray
    contact_name: StrArray
    contact_relationship: StrArray
    contact_phone: StrArray
    contact_guardian: BoolArray

    def __post_init__(self) -> None:
        for name in self.__slots__:
            getattr(self, name).flags.writeable = False

    def __len__(self) -> int:
        return len(self.mobile_phone)


def _numbers(prefix: str, rng: np.random.Generator, n: int) -> StrArray:
    digits = np.char.zfill(rng.integers(0, 10_000, n).astype("<U4"), 4)
    numbers: StrArray = np.char.add(prefix, digits)
    return numbers


def _choose(rng: np.random.Generator, table: tuple[tuple[str, float], ...], n: int) -> StrArray:
    codes = np.array([code for code, _ in table])
    weights = np.array([w for _, w in table])
    chosen: StrArray = codes[rng.choice(len(table), size=n, p=weights / weights.sum())]
    return chosen


def synthetic_contacts(
    rng: np.random.Generator,
    *,
    neighbourhood: StrArray,
    age: IntArray,
    benefit: StrArray,
) -> Contacts:
    """Contact details for residents given their 동, age and benefit status (vectorised)."""
    n = len(age)
    older = age >= 65
    p_alone = np.where(older, 0.22, 0.12) * np.where(benefit == "basic", 2.0, 1.0)
    lives_alone = rng.random(n) < np.minimum(p_alone, 0.60)
    landline = rng.random(n) < np.where(older, 0.55, 0.20)
    has_contact = rng.random(n) < np.where(lives_alone, 0.95, 0.90)

    # '약수동' → '약수', '신당5동' → '신당5', '동화동' → '동화' (only the final 동)
    stem = np.array([nb.removesuffix("동") for nb in np.unique(neighbourhood)])[
        np.unique(neighbourhood, return_inverse=True)[1]
    ]
    road = np.char.add(np.char.add(stem, "다온"), rng.integers(1, 10, n).astype("<U1"))
    road = np.char.add(road, "길")
    building = rng.integers(1, 120, n).astype("<U3")
    unit = np.char.add(
        rng.integers(1, 6, n).astype("<U1"), np.char.zfill(rng.integers(1, 10, n).astype("<U2"), 2)
    )
    detail = np.char.add(np.char.add(building, ", "), np.char.add(unit, "호"))

    relationship = np.where(older, _choose(rng, _OLDER, n), _choose(rng, _YOUNGER, n))
    # Someone who lives alone has no spouse at home to call: a child or sibling instead.
    relationship = np.where(
        lives_alone & (relationship == "spouse"),
        np.where(older, "daughter", "sibling"),
        relationship,
    )
    names = synthetic_names(rng, n)
    contact_phone = _numbers("010-0000-", rng, n)
    guardian = has_contact & ((age >= 75) | lives_alone)
    return Contacts(
        mobile_phone=_numbers("010-0000-", rng, n),
        home_phone=np.where(landline, _numbers("02-0000-", rng, n), ""),
        address_road=road,
        address_detail=detail,
        lives_alone=lives_alone,
        contact_name=np.where(has_contact, names, ""),
        contact_relationship=np.where(has_contact, relationship, ""),
        contact_phone=np.where(has_contact, contact_phone, ""),
        contact_guardian=guardian,
    )
