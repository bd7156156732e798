"""Clearly synthetic Korean names, built from syllable lists (never real personal data).

A name is a common surname followed by two given-name syllables drawn independently, so the
generator knows no real person; it only sounds plausible on a demo screen. Vectorised: one call
names a whole population.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: Family names: the commonest Korean surnames (a list of surnames, not of people).
SURNAMES: tuple[str, ...] = (
    "김", "이", "박", "최", "정", "강", "조", "윤", "장", "임",
    "한", "오", "서", "신", "권", "황", "안", "송", "류", "홍",
)  # fmt: skip

#: Given-name syllables; any two form a name.
GIVEN_SYLLABLES: tuple[str, ...] = (
    "가", "경", "광", "다", "도", "동", "명", "민", "보", "상",
    "서", "선", "성", "수", "숙", "순", "아", "연", "영", "옥",
    "용", "우", "원", "윤", "은", "자", "재", "정", "종", "주",
    "준", "지", "진", "철", "춘", "태", "하", "현", "혜", "희",
)  # fmt: skip

_SURNAME_ARRAY = np.array(SURNAMES)
_GIVEN_ARRAY = np.array(GIVEN_SYLLABLES)


def synthetic_names(rng: np.random.Generator, count: int) -> npt.NDArray[np.str_]:
    """``count`` synthetic three-syllable names (``'<U3'``), e.g. ``'박서윤'``."""
    family = _SURNAME_ARRAY[rng.integers(0, len(SURNAMES), count)]
    first = _GIVEN_ARRAY[rng.integers(0, len(GIVEN_SYLLABLES), count)]
    second = _GIVEN_ARRAY[rng.integers(0, len(GIVEN_SYLLABLES), count)]
    names: npt.NDArray[np.str_] = np.char.add(np.char.add(family, first), second)
    return names


def synthetic_name(rng: np.random.Generator) -> str:
    """One synthetic name, for small fixed worlds (staff lists, demo data)."""
    return str(synthetic_names(rng, 1)[0])
