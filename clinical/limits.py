"""The §2 physiological bounds (Q-01, Q-05, Q-07): one home for the risk engine and ingest.

The engine's quality filters (:mod:`clinical.quality`) read these limits per table; ingest
checks every value at the door with :func:`violation` (clinical-rules.md §2: such readings are
rejected and never feed a rule). Values are compared in the engine's units after the §1
conversions of :mod:`clinical.units` (mmHg, /min, plasma-equivalent mg/dL, kg, cm, %), and the
limits are inclusive: ``v < min`` or ``v > max`` is rejected, as §2 writes them.

Pure: ingest may import this module (and what it imports) but nothing else of ``clinical``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from clinical import units


@dataclass(frozen=True, slots=True)
class QualityLimits:
    """§2 measurement-quality filters (all OPERATIONAL, §12.4)."""

    sys_min: float = 50.0
    sys_max: float = 300.0
    dia_min: float = 20.0
    dia_max: float = 200.0
    pulse_min: float = 25.0
    pulse_max: float = 250.0
    min_pulse_pressure: float = 10.0  # SBP − DBP < 10 rejected
    glucose_min: float = 10.0  # Q-05 (numeric values without HI/LO status)
    glucose_max: float = 700.0
    glucose_hi_value: float = 600.0  # meter "HI" kept as ≥ the meter maximum
    glucose_lo_value: float = 20.0  # meter "LO" kept as < 20
    weight_min: float = 20.0
    weight_max: float = 300.0
    height_min: float = 100.0
    height_max: float = 220.0
    waist_min: float = 40.0
    waist_max: float = 200.0
    a1c_min: float = 3.0
    a1c_max: float = 20.0
    weight_jump_kg: float = 5.0  # > 5 kg from the previous valid weight …
    weight_jump_hours: float = 24.0  # … taken ≤ 24 h earlier
    duplicate_seconds: int = 60
    future_tolerance_s: int = 300  # a device clock ahead of the server by more than this


#: The limits of the current rule set (``RuleSet.quality`` defaults to these).
DEFAULT_LIMITS: Final = QualityLimits()

#: Glucose sensor-status names for the meter's HI and LO: such values are kept (Q-05).
GLUCOSE_HI: Final = frozenset({"result_high", "result_higher_than_device_can_process"})
GLUCOSE_LO: Final = frozenset({"result_low", "result_lower_than_device_can_process"})

#: quantity → (rule, engine unit, min field, max field)
_BOUNDS: Final[dict[str, tuple[str, str, str, str]]] = {
    "systolic": ("Q-01", "mmHg", "sys_min", "sys_max"),
    "diastolic": ("Q-01", "mmHg", "dia_min", "dia_max"),
    "pulse": ("Q-01", "/min", "pulse_min", "pulse_max"),
    "glucose": ("Q-05", "mg/dL", "glucose_min", "glucose_max"),
    "weight": ("Q-07", "kg", "weight_min", "weight_max"),
    "height": ("Q-07", "cm", "height_min", "height_max"),
    "waist": ("Q-07", "cm", "waist_min", "waist_max"),
    "a1c": ("Q-07", "%", "a1c_min", "a1c_max"),
}
BOUNDED: Final = frozenset(_BOUNDS)


@dataclass(frozen=True, slots=True)
class Violation:
    """A value outside its §2 bounds: which rule, the value and the limits in engine units."""

    rule: str
    quantity: str
    value: float
    low: float
    high: float
    unit: str

    def describe(self, as_sent: str | None = None) -> str:
        """Korean first, English second; ``as_sent`` is the value as the device sent it."""
        shown = f"{self.value:g} {self.unit}"
        if as_sent is not None and as_sent != shown:
            shown = f"{as_sent} (= {shown})"
        return (
            f"{self.rule}: {self.quantity} {shown}, 생리적 범위 {self.low:g}–{self.high:g} "
            f"{self.unit} 밖 (outside the physiological bounds of clinical-rules.md §2)"
        )


def violation(
    quantity: str, value: float, limits: QualityLimits = DEFAULT_LIMITS
) -> Violation | None:
    """The §2 rule ``value`` (in the engine's unit) breaks, or None; NaN breaks every bound."""
    bounds = _BOUNDS.get(quantity)
    if bounds is None:
        return None
    rule, unit, low_name, high_name = bounds
    low, high = getattr(limits, low_name), getattr(limits, high_name)
    if low <= value <= high:
        return None
    return Violation(rule, quantity, value, low, high, unit)


_LENGTH_TO_CM: Final = {"cm": 1.0, "m": 100.0, "[in_i]": 2.54}
_MMHG: Final = frozenset({"mm[Hg]", "mmHg"})


def _half_up(x: float, decimals: int = 0) -> float:
    """Scalar :func:`clinical.units.round_half_up` (the same formula, without numpy's cost:
    ingest calls this for every value)."""
    scale = 10.0**decimals
    return math.floor(x * scale + 0.5 + units.HALF_UP_EPS) / scale


def engine_value(
    quantity: str, value: float, unit: str, *, whole_blood: bool = False
) -> float | None:
    """``value`` in ``unit`` converted as the engine converts it (§1, :mod:`clinical.units`), or
    None for a unit the engine does not take (Q-09 there; ingest rejects such units itself)."""
    if quantity in ("systolic", "diastolic"):
        if unit in _MMHG:
            return value
        return _half_up(value * units.MMHG_PER_KPA) if unit == "kPa" else None
    if quantity == "pulse":
        return value if unit == "/min" else None
    if quantity == "glucose":
        factor = units.GLUCOSE_FACTORS.get(unit)
        if factor is None:
            return None
        mg_dl = value * factor
        return _half_up(mg_dl * units.WHOLE_BLOOD_TO_PLASMA if whole_blood else mg_dl)
    if quantity == "weight":
        if unit == "kg":
            return value
        return _half_up(value * units.KG_PER_LB, 1) if unit == "[lb_av]" else None
    if quantity in ("height", "waist"):
        factor = _LENGTH_TO_CM.get(unit)
        return None if factor is None else value * factor
    if quantity == "a1c":
        if unit == "%":
            return value
        if unit == "mmol/mol":
            return value * units.A1C_IFCC_SLOPE + units.A1C_IFCC_INTERCEPT
    return None
