"""The engine's input model: resident profiles and readings as typed columnar numpy series.

One evaluation covers *n* residents at once (a population, or a single resident with n = 1):
:class:`Cohort` holds one row per resident, and each reading type has a table with one row per
reading, sorted by (resident, time). ``resident`` is the row number in the cohort; ``t`` is UTC
epoch seconds; ``index`` is the caller's id for the reading (the input position for
``daon assess``, a store row id for the runner) and is what flags cite as evidence; ``fresh``
marks readings that arrived since the last evaluation (the runner uses it so that nothing is
raised twice for the same data).

Values are already in the clinical units of clinical-rules.md §1 (mmHg, plasma-equivalent
mg/dL, kg, cm, NGSP %): :class:`ReadingsBuilder` converts and rounds once, and records an
unknown unit as ``unit_ok = False`` for quality rule Q-09 rather than guessing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Self

import numpy as np

from clinical import units
from clinical._seg import BoolArray, FloatArray, IntArray
from clinical.limits import GLUCOSE_HI, GLUCOSE_LO
from clinical.ruleset import (
    ANTIHYPERTENSIVES,
    BP_HIGH_RISK_CONDITIONS,
    CHRONIC_CONDITIONS,
    DIABETES,
    DYSLIPIDEMIA,
    GLUCOSE_LOWERING,
    HF_OR_CKD,
    HYPERTENSION,
    HYPO_RISK_DRUGS,
    LIPID_LOWERING,
    TG_LOWERING,
)

NAN = float("nan")


class Sex(StrEnum):
    MALE = "M"
    FEMALE = "F"


class OlderAdultHealth(IntEnum):
    """ADA Table 13.1 category, set by the clinician (§4.2)."""

    HEALTHY = 0
    COMPLEX = 1
    VERY_COMPLEX = 2


class Setting(IntEnum):
    HOME = 0
    CENTRE = 1
    VISIT = 2


class Position(IntEnum):
    SITTING = 0
    SUPINE = 1
    STANDING = 2


class Meal(IntEnum):
    """BLE Glucose Measurement Context meal codes; 0 = no context (treated as random, §1)."""

    MISSING = 0
    PREPRANDIAL = 1
    POSTPRANDIAL = 2
    FASTING = 3
    CASUAL = 4
    BEDTIME = 5


class Instrument(IntEnum):
    PHQ9 = 1
    CIST = 2
    BMD = 3
    FRAILTY = 4


#: BLE Blood Pressure Measurement Status bits (cli-decode.md vocabulary).
BP_STATUS_BITS: dict[str, int] = {
    "body_movement": 1 << 0,
    "cuff_too_loose": 1 << 1,
    "irregular_pulse": 1 << 2,
    "pulse_rate_exceeds_upper_limit": 1 << 3,
    "pulse_rate_below_lower_limit": 1 << 4,
    "pulse_rate_range_reserved": (1 << 3) | (1 << 4),
    "improper_measurement_position": 1 << 5,
}
BP_Q04_MASK = (
    BP_STATUS_BITS["body_movement"]
    | BP_STATUS_BITS["cuff_too_loose"]
    | (BP_STATUS_BITS["improper_measurement_position"])
)
BP_IRREGULAR = BP_STATUS_BITS["irregular_pulse"]

#: Glucose sensor-status names that make a reading faulty (Q-06). Battery-low is not a fault;
#: result high/low are the meter's HI/LO and are kept (Q-05).
GLUCOSE_FAULTS = frozenset(
    {
        "sensor_malfunction",
        "sample_size_insufficient",
        "strip_insertion_error",
        "strip_type_incorrect",
        "sensor_temperature_too_high",
        "sensor_temperature_too_low",
        "sensor_read_interrupted",
        "general_device_fault",
        "time_fault",
    }
)
CONTROL_SOLUTION_TYPE = 10  # BLE glucose sample type 10
CONTROL_SOLUTION_LOCATION = 4  # BLE sample location 4

#: Symptom vocabulary → bit (clarification 9 plus the §1 events). Unknown names are ignored.
SYMPTOMS: tuple[str, ...] = (
    "dizziness",
    "light_headedness",
    "lightheadedness",
    "syncope",
    "fainting",
    "fall",
    "blurred_vision",
    "nausea",
    "vomiting",
    "abdominal_pain",
    "confusion",
    "rapid_breathing",
    "drowsiness",
    "polyuria",
    "polydipsia",
    "weight_loss",
    "unexplained_weight_loss",
    "hypoglycemia_needed_assistance",
    "chest_pain",
    "dyspnoea",
    "dyspnea",
    "neuro_deficit",
    "headache",
)
SYMPTOM_BIT: dict[str, int] = {name: 1 << i for i, name in enumerate(SYMPTOMS)}


def symptom_mask(names: Iterable[str]) -> int:
    bits = 0
    for name in names:
        bits |= SYMPTOM_BIT.get(name, 0)
    return bits


@dataclass(frozen=True, slots=True)
class Profile:
    """A resident's registration profile (cli-assess.md; clinical-rules.md §1 "Profile")."""

    age: int
    sex: Sex
    height_cm: float | None = None
    diagnoses: frozenset[str] = frozenset()
    medications: frozenset[str] = frozenset()
    older_adult_health: OlderAdultHealth = OlderAdultHealth.HEALTHY
    home_monitoring: bool = False
    lives_alone: bool = False
    smoker: bool = False
    high_risk_drinking: bool = False
    inactive: bool = False
    intentional_weight_loss: bool = False
    a1c_target: float | None = None  # clinician override of the §4.2 default
    bp_high_risk: bool | None = None  # clinician override of the KSH 2022 high-risk derivation
    long_term_care_grade: int | None = None  # grades 1-5 are excluded from visiting (§9)


def _arr(values: Iterable[Any], dtype: Any) -> Any:
    return np.fromiter(values, dtype=dtype)


@dataclass(frozen=True, slots=True, eq=False)
class Cohort:
    """One row per resident: the profile facts rules need, as arrays."""

    age: IntArray
    female: BoolArray
    height_cm: FloatArray
    diabetes: BoolArray
    hypertension: BoolArray
    dyslipidemia: BoolArray
    hf_or_ckd: BoolArray
    chronic: BoolArray
    bp_high_risk: BoolArray
    antihypertensive: BoolArray
    glucose_lowering: BoolArray
    hypo_risk_drug: BoolArray
    tg_lowering: BoolArray
    lipid_lowering: BoolArray
    older_health: IntArray
    home_monitoring: BoolArray
    lives_alone: BoolArray
    risk_factor: BoolArray  # smoking, high-risk drinking or inactivity (§9 self-management)
    intentional_weight_loss: BoolArray
    a1c_target: FloatArray  # NaN: default of §4.2
    excluded: BoolArray  # long-term-care grade 1-5 (§9)

    @property
    def n(self) -> int:
        return int(self.age.size)

    @classmethod
    def from_profiles(cls, profiles: Sequence[Profile]) -> Self:
        def has(group: frozenset[str], attr: str) -> BoolArray:
            out: BoolArray = _arr((bool(getattr(p, attr) & group) for p in profiles), bool)
            return out

        def high_risk(p: Profile) -> bool:
            if p.bp_high_risk is not None:
                return p.bp_high_risk
            if p.diagnoses & BP_HIGH_RISK_CONDITIONS:
                return True
            # KSH risk factors: age (M ≥ 45, F ≥ 55), smoking, obesity, dyslipidaemia
            factors = sum(
                (
                    p.age >= (55 if p.sex is Sex.FEMALE else 45),
                    p.smoker,
                    "obesity" in p.diagnoses,
                    bool(p.diagnoses & DYSLIPIDEMIA),
                )
            )
            if p.diagnoses & DIABETES:
                return factors >= 1
            return factors >= 3

        return cls(
            age=_arr((p.age for p in profiles), np.int64),
            female=_arr((p.sex is Sex.FEMALE for p in profiles), bool),
            height_cm=_arr(
                (NAN if p.height_cm is None else p.height_cm for p in profiles), np.float64
            ),
            diabetes=has(DIABETES, "diagnoses"),
            hypertension=has(HYPERTENSION, "diagnoses"),
            dyslipidemia=has(DYSLIPIDEMIA, "diagnoses"),
            hf_or_ckd=has(HF_OR_CKD, "diagnoses"),
            chronic=has(CHRONIC_CONDITIONS, "diagnoses"),
            bp_high_risk=_arr((high_risk(p) for p in profiles), bool),
            antihypertensive=has(ANTIHYPERTENSIVES, "medications"),
            glucose_lowering=has(GLUCOSE_LOWERING, "medications"),
            hypo_risk_drug=has(HYPO_RISK_DRUGS, "medications"),
            tg_lowering=has(TG_LOWERING, "medications"),
            lipid_lowering=has(LIPID_LOWERING, "medications"),
            older_health=_arr((int(p.older_adult_health) for p in profiles), np.int64),
            home_monitoring=_arr((p.home_monitoring for p in profiles), bool),
            lives_alone=_arr((p.lives_alone for p in profiles), bool),
            risk_factor=_arr(
                (p.smoker or p.high_risk_drinking or p.inactive for p in profiles), bool
            ),
            intentional_weight_loss=_arr((p.intentional_weight_loss for p in profiles), bool),
            a1c_target=_arr(
                (NAN if p.a1c_target is None else p.a1c_target for p in profiles), np.float64
            ),
            excluded=_arr(
                (
                    p.long_term_care_grade is not None and 1 <= p.long_term_care_grade <= 5
                    for p in profiles
                ),
                bool,
            ),
        )

    def repeat(self, times: int) -> Self:
        """The cohort repeated ``times`` over (used to evaluate one resident at many instants)."""
        return dataclasses.replace(
            self,
            **{f.name: np.tile(getattr(self, f.name), times) for f in dataclasses.fields(self)},
        )


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True, slots=True, eq=False)
class Table:
    """Columns shared by every reading table. Subclasses add their own columns."""

    resident: IntArray
    t: IntArray
    index: IntArray
    fresh: BoolArray
    received: IntArray  # when the server received it (epoch s), -1 if unknown

    @property
    def size(self) -> int:
        return int(self.t.size)

    def take(self, rows: IntArray | BoolArray) -> Self:
        return dataclasses.replace(
            self, **{f.name: getattr(self, f.name)[rows] for f in dataclasses.fields(self)}
        )

    def sorted(self) -> Self:
        order = np.lexsort((self.index, self.t, self.resident))
        return self.take(order)

    @classmethod
    def empty(cls) -> Self:
        cols: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            cols[f.name] = np.zeros(0, dtype=_COLUMN_DTYPES.get(f.name, np.float64))
        return cls(**cols)

    @classmethod
    def from_rows(cls, rows: Sequence[dict[str, Any]]) -> Self:
        if not rows:
            return cls.empty()
        cols: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            dtype = _COLUMN_DTYPES.get(f.name, np.float64)
            default = _COLUMN_DEFAULTS.get(f.name, NAN)
            cols[f.name] = np.array([r.get(f.name, default) for r in rows], dtype=dtype)
        return cls(**cols).sorted()


_COLUMN_DTYPES: dict[str, Any] = {
    "resident": np.int64,
    "t": np.int64,
    "index": np.int64,
    "fresh": bool,
    "received": np.int64,
    "unit_ok": bool,
    "setting": np.int64,
    "position": np.int64,
    "status": np.int64,
    "meal": np.int64,
    "hi": bool,
    "lo": bool,
    "control": bool,
    "fault": bool,
    "home": bool,
    "dxa": bool,
    "instrument": np.int64,
    "decline": bool,
    "symptoms": np.int64,
    "fall": bool,
    "injury": bool,
}
_COLUMN_DEFAULTS: dict[str, Any] = {
    "fresh": True,
    "received": -1,
    "unit_ok": True,
    "setting": int(Setting.HOME),
    "position": int(Position.SITTING),
    "status": 0,
    "meal": int(Meal.MISSING),
    "hi": False,
    "lo": False,
    "control": False,
    "fault": False,
    "home": True,
    "dxa": False,
    "instrument": 0,
    "decline": False,
    "symptoms": 0,
    "fall": False,
    "injury": False,
}


@dataclass(frozen=True, slots=True, eq=False)
class BpTable(Table):
    sys: FloatArray  # mmHg (NaN: failed measurement)
    dia: FloatArray
    pulse: FloatArray  # NaN when absent
    unit_ok: BoolArray
    setting: IntArray  # Setting
    position: IntArray  # Position
    minutes_standing: FloatArray  # NaN when not given
    status: IntArray  # BP_STATUS_BITS


@dataclass(frozen=True, slots=True, eq=False)
class GlucoseTable(Table):
    mg_dl: FloatArray  # plasma-equivalent, rounded; HI → ≥ 600, LO → 20
    meal: IntArray  # Meal
    hi: BoolArray
    lo: BoolArray
    control: BoolArray
    fault: BoolArray
    unit_ok: BoolArray
    home: BoolArray


@dataclass(frozen=True, slots=True, eq=False)
class A1cTable(Table):
    pct: FloatArray  # NGSP %
    unit_ok: BoolArray


@dataclass(frozen=True, slots=True, eq=False)
class LipidTable(Table):
    tg: FloatArray  # mg/dL, NaN when not measured
    hdl: FloatArray
    unit_ok: BoolArray


@dataclass(frozen=True, slots=True, eq=False)
class WeightTable(Table):
    kg: FloatArray  # 0.1 kg
    unit_ok: BoolArray
    home: BoolArray


@dataclass(frozen=True, slots=True, eq=False)
class WaistTable(Table):
    cm: FloatArray
    unit_ok: BoolArray


@dataclass(frozen=True, slots=True, eq=False)
class BodyCompTable(Table):
    fat_pct: FloatArray
    asm_kg: FloatArray  # appendicular skeletal muscle mass
    dxa: BoolArray  # method: DXA (else BIA)


@dataclass(frozen=True, slots=True, eq=False)
class FunctionTable(Table):
    """One test per row (rehab therapist entry); the other columns are NaN."""

    grip_kg: FloatArray
    gait_m_s: FloatArray
    chair_s: FloatArray
    sppb: FloatArray


@dataclass(frozen=True, slots=True, eq=False)
class ScreenTable(Table):
    instrument: IntArray  # Instrument
    score: FloatArray  # PHQ-9 total or frailty score
    item9: FloatArray  # PHQ-9 item 9
    decline: BoolArray  # CIST "decline"
    t_score: FloatArray  # BMD


@dataclass(frozen=True, slots=True, eq=False)
class EventTable(Table):
    symptoms: IntArray  # SYMPTOM_BIT mask
    fall: BoolArray
    injury: BoolArray  # fall with injury or head strike


@dataclass(frozen=True, slots=True, eq=False)
class Readings:
    """All readings of a cohort, one sorted table per type."""

    bp: BpTable = field(default_factory=BpTable.empty)
    glucose: GlucoseTable = field(default_factory=GlucoseTable.empty)
    a1c: A1cTable = field(default_factory=A1cTable.empty)
    lipid: LipidTable = field(default_factory=LipidTable.empty)
    weight: WeightTable = field(default_factory=WeightTable.empty)
    waist: WaistTable = field(default_factory=WaistTable.empty)
    body_comp: BodyCompTable = field(default_factory=BodyCompTable.empty)
    function: FunctionTable = field(default_factory=FunctionTable.empty)
    screen: ScreenTable = field(default_factory=ScreenTable.empty)
    event: EventTable = field(default_factory=EventTable.empty)

    def tables(self) -> dict[str, Table]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replicate(self, nows: IntArray) -> Readings:
        """Copy ``k`` holds the readings of resident 0 up to ``nows[k]`` (one resident only),
        marked not fresh: a replay decides freshness by firing time instead."""
        out: dict[str, Table] = {}
        for name, tbl in self.tables().items():
            parts = []
            for k, now in enumerate(nows.tolist()):
                part = tbl.take(tbl.t <= now)
                parts.append(
                    dataclasses.replace(
                        part,
                        resident=np.full(part.size, k, np.int64),
                        fresh=np.zeros(part.size, dtype=bool),
                    )
                )
            cols = {
                f.name: np.concatenate([getattr(p, f.name) for p in parts])
                for f in dataclasses.fields(tbl)
            }
            out[name] = type(tbl)(**cols)
        return Readings(**out)  # type: ignore[arg-type]


class ReadingsBuilder:
    """Collects readings one at a time (assess cases, store rows) and builds sorted tables.

    Each ``add_*`` takes values in the units the device or person gave, converts once as §1
    says, and keeps an unknown unit as ``unit_ok=False`` so Q-09 rejects it visibly.
    """

    def __init__(self) -> None:
        #: receipt time (epoch s) stamped on the rows added next; -1 = unknown. The runner
        #: sets it from the store so that Q-09 judges a device clock against the server's.
        self.received = -1
        self._rows: dict[str, list[dict[str, Any]]] = {
            f.name: [] for f in dataclasses.fields(Readings)
        }

    def _add(self, table: str, resident: int, t: int, index: int, fresh: bool, **cols: Any) -> None:
        row = {"resident": resident, "t": t, "index": index, "fresh": fresh}
        row["received"] = self.received
        row.update(cols)
        self._rows[table].append(row)

    def add_bp(
        self,
        resident: int,
        t: int,
        index: int,
        *,
        sys: float | None,
        dia: float | None,
        pulse: float | None = None,
        unit: str = "mmHg",
        setting: Setting = Setting.HOME,
        position: Position = Position.SITTING,
        minutes_standing: float | None = None,
        status: Iterable[str] = (),
        fresh: bool = True,
    ) -> None:
        unit_ok = unit in ("mmHg", "mm[Hg]", "kPa")
        s = NAN if sys is None else float(sys)
        d = NAN if dia is None else float(dia)
        if unit == "kPa":
            s, d = float(units.kpa_to_mmhg(s)), float(units.kpa_to_mmhg(d))
        bits = 0
        for name in status:
            bits |= BP_STATUS_BITS.get(name, 0)
        self._add(
            "bp",
            resident,
            t,
            index,
            fresh,
            sys=s,
            dia=d,
            pulse=NAN if pulse is None else float(pulse),
            unit_ok=unit_ok,
            setting=int(setting),
            position=int(position),
            minutes_standing=NAN if minutes_standing is None else float(minutes_standing),
            status=bits,
        )

    def add_glucose(
        self,
        resident: int,
        t: int,
        index: int,
        *,
        value: float | None,
        unit: str = "mg/dL",
        meal: Meal = Meal.MISSING,
        whole_blood: bool = False,
        status: Iterable[str] = (),
        sample_type: int | None = None,
        sample_location: int | None = None,
        control: bool = False,
        home: bool = True,
        fresh: bool = True,
    ) -> None:
        names = set(status)
        unit_ok = unit in units.GLUCOSE_UNITS
        mg = NAN
        if value is not None and unit_ok:
            mg = float(units.glucose_to_mg_dl(value, unit, whole_blood=whole_blood))
        self._add(
            "glucose",
            resident,
            t,
            index,
            fresh,
            mg_dl=mg,
            meal=int(meal),
            hi=bool(names & GLUCOSE_HI),
            lo=bool(names & GLUCOSE_LO),
            control=control
            or sample_type == CONTROL_SOLUTION_TYPE
            or sample_location == CONTROL_SOLUTION_LOCATION
            or "control_solution" in names,
            fault=bool(names & GLUCOSE_FAULTS),
            unit_ok=unit_ok,
            home=home,
        )

    def add_a1c(
        self,
        resident: int,
        t: int,
        index: int,
        *,
        value: float,
        unit: str = "%",
        fresh: bool = True,
    ) -> None:
        unit_ok = unit in ("%", "mmol/mol")
        pct = float(units.a1c_ifcc_to_ngsp(value)) if unit == "mmol/mol" else float(value)
        self._add("a1c", resident, t, index, fresh, pct=pct, unit_ok=unit_ok)

    def add_lipid(
        self,
        resident: int,
        t: int,
        index: int,
        *,
        tg: float | None,
        hdl: float | None,
        unit: str = "mg/dL",
        fresh: bool = True,
    ) -> None:
        unit_ok = unit in ("mg/dL", "mmol/L")
        tg_v = NAN if tg is None else float(tg)
        hdl_v = NAN if hdl is None else float(hdl)
        if unit == "mmol/L":
            tg_v *= units.TG_MG_DL_PER_MMOL_L
            hdl_v *= units.HDL_MG_DL_PER_MMOL_L
        self._add("lipid", resident, t, index, fresh, tg=tg_v, hdl=hdl_v, unit_ok=unit_ok)

    def add_weight(
        self,
        resident: int,
        t: int,
        index: int,
        *,
        value: float,
        unit: str = "kg",
        home: bool = True,
        fresh: bool = True,
    ) -> None:
        unit_ok = unit in ("kg", "lb", "[lb_av]")
        kg = float(units.lb_to_kg(value)) if unit in ("lb", "[lb_av]") else float(value)
        if unit == "kg":
            kg = float(units.round_half_up(kg, 1))
        self._add("weight", resident, t, index, fresh, kg=kg, unit_ok=unit_ok, home=home)

    def add_waist(
        self,
        resident: int,
        t: int,
        index: int,
        *,
        cm: float,
        unit: str = "cm",
        fresh: bool = True,
    ) -> None:
        self._add("waist", resident, t, index, fresh, cm=float(cm), unit_ok=unit == "cm")

    def add_body_comp(
        self,
        resident: int,
        t: int,
        index: int,
        *,
        fat_pct: float | None,
        asm_kg: float | None,
        dxa: bool = False,
        fresh: bool = True,
    ) -> None:
        self._add(
            "body_comp",
            resident,
            t,
            index,
            fresh,
            fat_pct=NAN if fat_pct is None else float(fat_pct),
            asm_kg=NAN if asm_kg is None else float(asm_kg),
            dxa=dxa,
        )

    def add_function(
        self,
        resident: int,
        t: int,
        index: int,
        *,
        grip_kg: float | None = None,
        gait_m_s: float | None = None,
        chair_s: float | None = None,
        sppb: float | None = None,
        fresh: bool = True,
    ) -> None:
        def f(v: float | None) -> float:
            return NAN if v is None else float(v)

        self._add(
            "function",
            resident,
            t,
            index,
            fresh,
            grip_kg=f(grip_kg),
            gait_m_s=f(gait_m_s),
            chair_s=f(chair_s),
            sppb=f(sppb),
        )

    def add_screen(
        self,
        resident: int,
        t: int,
        index: int,
        *,
        instrument: Instrument,
        score: float | None = None,
        item9: float | None = None,
        decline: bool = False,
        t_score: float | None = None,
        fresh: bool = True,
    ) -> None:
        def f(v: float | None) -> float:
            return NAN if v is None else float(v)

        self._add(
            "screen",
            resident,
            t,
            index,
            fresh,
            instrument=int(instrument),
            score=f(score),
            item9=f(item9),
            decline=decline,
            t_score=f(t_score),
        )

    def add_event(
        self,
        resident: int,
        t: int,
        index: int,
        *,
        symptoms: Iterable[str] = (),
        fall: bool = False,
        injury: bool = False,
        fresh: bool = True,
    ) -> None:
        self._add(
            "event",
            resident,
            t,
            index,
            fresh,
            symptoms=symptom_mask(symptoms),
            fall=fall,
            injury=injury,
        )

    def build(self) -> Readings:
        tables: dict[str, Table] = {}
        for f in dataclasses.fields(Readings):
            cls = _TABLE_TYPES[f.name]
            tables[f.name] = cls.from_rows(self._rows[f.name])
        return Readings(**tables)  # type: ignore[arg-type]


_TABLE_TYPES: dict[str, type[Table]] = {
    "bp": BpTable,
    "glucose": GlucoseTable,
    "a1c": A1cTable,
    "lipid": LipidTable,
    "weight": WeightTable,
    "waist": WaistTable,
    "body_comp": BodyCompTable,
    "function": FunctionTable,
    "screen": ScreenTable,
    "event": EventTable,
}
