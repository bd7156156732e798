"""Domain values shared by every layer: what a device measured, normalised but not interpreted.

This module is the contract between ``devices/`` (which produces these values from bytes or
station JSON), ``gateway/`` (which binds them to a resident and ships them), ``ingest/``
(which turns them into FHIR) and ``api/``. It is pure: standard library only.

Precision is kept: a value is a :class:`~decimal.Decimal` carrying the exponent the device
sent (``Decimal("36.50")`` stays ``36.50``, HL7 PHD FLOATS.md). IEEE-11073 special values are
never numbers: they are a :class:`Special` and the value is ``None``.

Times: ``device_time`` is the device's wall clock as sent (naive, no zone: devices carry none);
the gateway attaches Asia/Seoul and the clock offset later (fhir-mapping-and-anchors.md §2.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class Kind(StrEnum):
    """What one record measures; one record can carry several quantities (components)."""

    BLOOD_PRESSURE = "blood-pressure"  # systolic, diastolic, mean (+ pulse, status)
    CUFF_PRESSURE = "cuff-pressure"  # live intermediate cuff pressure: never a result
    GLUCOSE = "glucose"
    BODY_WEIGHT = "body-weight"  # weight (+ height, bmi as the scale reports them)
    BODY_COMPOSITION = "body-composition"
    BODY_TEMPERATURE = "body-temperature"
    CGM = "cgm"


class Special(StrEnum):
    """IEEE-11073 special values (exponent 0 only). The strings are those of cli-decode.md."""

    NAN = "NaN"
    NRES = "NRes"
    POSITIVE_INFINITY = "+INF"
    NEGATIVE_INFINITY = "-INF"
    RESERVED = "reserved"


@dataclass(frozen=True, slots=True)
class Component:
    """One measured quantity of a record.

    ``code`` is our stable key for the quantity (see :data:`COMPONENT_CODES`); ``unit`` is UCUM
    as the device sent it (``mm[Hg]``, ``kPa``, ``mg/dL``, ``mmol/L``, ``kg``, ``[lb_av]``, ``%``,
    ``/min``, ``kJ``, ``Ohm``, ``m``, ``[in_i]``, ``Cel``, ``[degF]``). Conversion to display or
    clinical units happens downstream, never here.
    """

    code: str
    value: Decimal | None
    unit: str
    special: Special | None = None

    def __post_init__(self) -> None:
        if (self.value is None) == (self.special is None):
            raise ValueError(f"component {self.code}: exactly one of value and special must be set")


#: Component codes and their meaning. Decoders must use these keys and no others.
COMPONENT_CODES: dict[str, str] = {
    "systolic": "systolic blood pressure",
    "diastolic": "diastolic blood pressure",
    "mean": "mean arterial pressure",
    "pulse": "pulse rate",
    "cuff": "intermediate cuff pressure",
    "glucose": "glucose concentration (mg/dL or mmol/L after the kg/L, mol/L rescaling)",
    "weight": "body weight",
    "height": "body height",
    "bmi": "body-mass index as reported by the device",
    "body_fat": "body fat percentage",
    "basal_metabolism": "basal metabolism (kJ as sent)",
    "muscle_pct": "muscle percentage",
    "muscle_mass": "muscle mass",
    "fat_free_mass": "fat-free mass",
    "soft_lean_mass": "soft lean mass",
    "body_water_mass": "body water mass",
    "impedance": "bio-electrical impedance (Ohm)",
    "temperature": "body temperature",
    "ketone": "blood ketone in mmol/L, from meters that report it in the glucose field (quirk)",
}


@dataclass(frozen=True, slots=True)
class Measurement:
    """One decoded device record, normalised: the output of the Normalize stage.

    ``status`` holds the status vocabulary names of cli-decode.md (BP measurement status,
    glucose sensor status) plus quality markers added by quirks (for example
    ``"control_solution"``). ``context`` holds small coded facts that travel with the record
    (``meal``, ``sample_type``, ``sample_location``, ``tester``, ``health``, ``calibration``),
    as strings. ``sequence_number`` is the device's record number where the profile has one
    (GLS); ``user_index`` is the device's user slot (255 = unknown), never a person.
    """

    kind: Kind
    components: tuple[Component, ...]
    device_time: datetime | None
    user_index: int | None = None
    sequence_number: int | None = None
    status: tuple[str, ...] = ()
    context: tuple[tuple[str, str], ...] = ()
    characteristic: str = ""  # 128-bit lowercase UUID of the characteristic that carried it
    raw: bytes = field(default=b"", repr=False)

    def component(self, code: str) -> Component | None:
        """The component with ``code``, or None."""
        for comp in self.components:
            if comp.code == code:
                return comp
        return None

    def context_value(self, key: str) -> str | None:
        """A context fact by key, or None."""
        for k, v in self.context:
            if k == key:
                return v
        return None
