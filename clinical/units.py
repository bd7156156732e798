"""Unit conversion and rounding exactly as clinical-rules.md §1 specifies.

Every conversion rounds *once*, half-up, at the precision the reference names, and only here:
rules compare the converted values and never round means (§0). Half-up is done with a tiny
epsilon so that a value like 24.95 kg/m², which is 24.949999… in binary floating point, still
rounds to 25.0 as it would on paper.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: §1 blood pressure: 1 kPa = 7.50062 mmHg.
MMHG_PER_KPA = 7.50062
#: §1 glucose: 1 mmol/L = 18.016 mg/dL.
MG_DL_PER_MMOL_L = 18.016
#: §1 glucose: BLE kg/L × 100000 = mg/dL; mol/L × 1000 = mmol/L.
MG_DL_PER_KG_L = 100000.0
MMOL_L_PER_MOL_L = 1000.0
#: §1 / §11 #19: whole-blood-calibrated meters read about 11 % low; × 1.11 → plasma-equivalent.
WHOLE_BLOOD_TO_PLASMA = 1.11
#: §1 weight: 1 lb = 0.45359237 kg (exact by definition).
KG_PER_LB = 0.45359237
#: §1 HbA1c: NGSP % = IFCC mmol/mol × 0.09148 + 2.152.
A1C_IFCC_SLOPE = 0.09148
A1C_IFCC_INTERCEPT = 2.152
#: §1 lipids: mmol/L → mg/dL.
TG_MG_DL_PER_MMOL_L = 88.57
HDL_MG_DL_PER_MMOL_L = 38.67

HALF_UP_EPS = 1e-9  # see the module docstring


def round_half_up(x: npt.ArrayLike, decimals: int = 0) -> FloatArray:
    """Round half away from zero for positives (half-up), at ``decimals`` places; NaN stays NaN."""
    arr = np.asarray(x, dtype=np.float64)
    scale = 10.0**decimals
    return np.asarray(np.floor(arr * scale + 0.5 + HALF_UP_EPS) / scale, dtype=np.float64)


def kpa_to_mmhg(kpa: npt.ArrayLike) -> FloatArray:
    """kPa → mmHg, rounded half-up to an integer (§1)."""
    return round_half_up(np.asarray(kpa, dtype=np.float64) * MMHG_PER_KPA)


def glucose_to_mg_dl(
    value: npt.ArrayLike, unit: str, *, whole_blood: npt.ArrayLike = False
) -> FloatArray:
    """A glucose concentration in ``unit`` → plasma-equivalent mg/dL, rounded once half-up (§1).

    ``unit`` is one of ``mg/dL``, ``mmol/L``, ``kg/L``, ``mol/L``; ``whole_blood`` marks meters
    the device registry lists as whole-blood-calibrated (× 1.11). Raises ``KeyError`` for an
    unknown unit: callers map that to Q-09.
    """
    factor = GLUCOSE_FACTORS[unit]
    raw = np.asarray(value, dtype=np.float64) * factor
    wb = np.asarray(whole_blood, dtype=bool)
    return round_half_up(np.where(wb, raw * WHOLE_BLOOD_TO_PLASMA, raw))


GLUCOSE_FACTORS = {
    "mg/dL": 1.0,
    "mmol/L": MG_DL_PER_MMOL_L,
    "kg/L": MG_DL_PER_KG_L,
    "mol/L": MMOL_L_PER_MOL_L * MG_DL_PER_MMOL_L,
}
GLUCOSE_UNITS = frozenset(GLUCOSE_FACTORS)


def lb_to_kg(lb: npt.ArrayLike) -> FloatArray:
    """lb → kg, rounded half-up to 0.1 kg (§1)."""
    return round_half_up(np.asarray(lb, dtype=np.float64) * KG_PER_LB, 1)


def a1c_ifcc_to_ngsp(mmol_mol: npt.ArrayLike) -> FloatArray:
    """IFCC mmol/mol → NGSP % (§1). Not rounded: 47 mmol/mol must stay below 6.5 %."""
    return np.asarray(mmol_mol, dtype=np.float64) * A1C_IFCC_SLOPE + A1C_IFCC_INTERCEPT


def bmi(weight_kg: npt.ArrayLike, height_cm: npt.ArrayLike) -> FloatArray:
    """BMI in kg/m², rounded half-up to one decimal before classification (§1)."""
    h = np.asarray(height_cm, dtype=np.float64) / 100.0
    return round_half_up(np.asarray(weight_kg, dtype=np.float64) / (h * h), 1)


def asmi(asm_kg: npt.ArrayLike, height_cm: npt.ArrayLike) -> FloatArray:
    """Appendicular skeletal muscle index, ASM / height(m)² (§1); not rounded."""
    h = np.asarray(height_cm, dtype=np.float64) / 100.0
    return np.asarray(np.asarray(asm_kg, dtype=np.float64) / (h * h), dtype=np.float64)
