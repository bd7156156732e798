"""What devices do not measure, entered by staff: screenings, events, labs and tape measures.

The risk engine reads these (clinical-rules.md §1 "Screening", "Events", "HbA1c", "Lipids",
"Weight, height, waist"); :mod:`clinical.runner` names the codes it reads. Each entry kind here
says which Observations it becomes: LOINC where the engine reads LOINC (PHQ-9 total 44261-6 and
item 9 44260-8, BMD T-score 38263-0, HbA1c 4548-4, TG 2571-8, HDL 2085-9, height 8302-2, waist
8280-0), the runner's local ``daon-*`` codes otherwise (CIST, frailty, symptoms, falls), with the
context the engine reads (``symptoms``, ``injury``/``head_strike``, CIST ``result``).

Values are checked against §2's bounds (Q-07: height, waist, HbA1c, from
:mod:`clinical.limits`, the engine's own) and, for instruments, against their scale (PHQ-9
total 0-27, item 0-3; CIST 0-30; the district frailty tool 0-12); lipids and BMD T-scores have
no §2 bound, so a wide plausibility range (OPERATIONAL) catches typing errors only.

Pure: :func:`observations` takes an entry and returns the rows to store; the store function
(:func:`api.store.web_readings.enter_clinical`) checks scope, stores, audits and evaluates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clinical.limits import DEFAULT_LIMITS
from ingest.fhir import KST, MANUAL_NOTE, StoredObservation, resource_id
from ingest.fhir.encoding import dumps

LOINC = "http://loinc.org"
LOCAL_SYSTEM = "https://daon.junggu.seoul.kr/fhir/CodeSystem/local"
SYMPTOM_SYSTEM = "https://daon.junggu.seoul.kr/fhir/CodeSystem/symptom"
STAFF_ENTRY_SYSTEM = "https://daon.junggu.seoul.kr/fhir/sid/staff-entry"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
UCUM = "http://unitsofmeasure.org"


class EntryError(ValueError):
    """An entry that cannot be stored; the message is Korean first, English second."""


@dataclass(frozen=True, slots=True)
class Quantity:
    """One numeric Observation an entry kind produces."""

    name: str  # the form field
    code: str
    system: str
    display: str
    unit: str  # UCUM
    low: float
    high: float
    category: str
    integer: bool = False


@dataclass(frozen=True, slots=True)
class EntryKind:
    name: str
    label: str  # Korean first, English second
    quantities: tuple[Quantity, ...] = ()
    roles: tuple[str, ...] = ("nurse", "admin")  # who enters it (the therapist: falls, frailty)


_L = DEFAULT_LIMITS


def _q(
    name: str, code: str, display: str, unit: str, low: float, high: float, **kw: Any
) -> Quantity:
    system = kw.pop("system", LOINC)
    category = kw.pop("category", "survey")
    return Quantity(name, code, system, display, unit, low, high, category, **kw)


KINDS: dict[str, EntryKind] = {
    k.name: k
    for k in (
        EntryKind(
            "phq9",
            "우울 선별 PHQ-9 / depression screen",
            (
                _q(
                    "phq9_total",
                    "44261-6",
                    "PHQ-9 총점 / total score",
                    "{score}",
                    0,
                    27,
                    integer=True,
                ),
                _q(
                    "phq9_item9",
                    "44260-8",
                    "PHQ-9 9번 문항 (자해·죽음 생각) / item 9 (thoughts of death or self-harm)",
                    "{score}",
                    0,
                    3,
                    integer=True,
                ),
            ),
        ),
        EntryKind(
            "cist",
            "인지 선별 CIST / cognitive screen",
            (
                _q(
                    "cist_score",
                    "daon-cist",
                    "CIST 점수 / CIST score",
                    "{score}",
                    0,
                    30,
                    integer=True,
                    system=LOCAL_SYSTEM,
                ),
            ),
        ),
        EntryKind(
            "bmd",
            "골밀도 T-점수 / bone density T-score",
            (
                _q(
                    "bmd_t",
                    "38263-0",
                    "골밀도 T-점수 / DXA T-score",
                    "{T-score}",
                    -8,
                    6,
                    category="imaging",
                ),
            ),
        ),
        EntryKind(
            "frailty",
            "허약노인 판정 / frailty score",
            (
                _q(
                    "frailty_score",
                    "daon-frailty-kr",
                    "허약 점수 (0-12) / frailty score",
                    "{score}",
                    0,
                    12,
                    integer=True,
                    system=LOCAL_SYSTEM,
                ),
            ),
            roles=("nurse", "therapist", "admin"),
        ),
        EntryKind("fall", "낙상 / fall", roles=("nurse", "therapist", "admin")),
        EntryKind("symptom", "증상 / symptoms"),
        EntryKind(
            "a1c",
            "당화혈색소 / HbA1c",
            (
                _q(
                    "a1c",
                    "4548-4",
                    "당화혈색소 / HbA1c",
                    "%",
                    _L.a1c_min,
                    _L.a1c_max,
                    category="laboratory",
                ),
            ),
        ),
        EntryKind(
            "lipids",
            "지질 (중성지방·HDL) / lipids",
            (
                _q(
                    "tg",
                    "2571-8",
                    "중성지방 / triglycerides",
                    "mg/dL",
                    10,
                    5000,
                    category="laboratory",
                ),
                _q(
                    "hdl",
                    "2085-9",
                    "HDL 콜레스테롤 / HDL cholesterol",
                    "mg/dL",
                    5,
                    200,
                    category="laboratory",
                ),
            ),
        ),
        EntryKind(
            "height",
            "키 / height",
            (
                _q(
                    "height",
                    "8302-2",
                    "키 / body height",
                    "cm",
                    _L.height_min,
                    _L.height_max,
                    category="vital-signs",
                ),
            ),
        ),
        EntryKind(
            "waist",
            "허리둘레 / waist",
            (
                _q(
                    "waist",
                    "8280-0",
                    "허리둘레 / waist circumference",
                    "cm",
                    _L.waist_min,
                    _L.waist_max,
                    category="exam",
                ),
            ),
        ),
    )
}

#: Symptoms staff record (clinical-rules.md §0 clarification 9 and §1 "Events"), as the engine
#: names them (:data:`clinical.model.SYMPTOMS`), with Korean-first labels.
SYMPTOMS: dict[str, str] = {
    "dizziness": "어지러움 / dizziness",
    "syncope": "실신 / fainting",
    "chest_pain": "가슴 통증 / chest pain",
    "dyspnoea": "숨참 / shortness of breath",
    "neuro_deficit": "마비·말 어눌함 / weakness or slurred speech",
    "confusion": "혼동 / confusion",
    "drowsiness": "졸림 / drowsiness",
    "nausea": "메스꺼움 / nausea",
    "vomiting": "구토 / vomiting",
    "abdominal_pain": "복통 / abdominal pain",
    "rapid_breathing": "빠른 호흡 / rapid breathing",
    "polyuria": "잦은 소변 / passing much urine",
    "polydipsia": "심한 갈증 / great thirst",
    "hypoglycemia_needed_assistance": "저혈당으로 도움이 필요했음 / hypoglycaemia needing help",
    "headache": "두통 / headache",
    "blurred_vision": "흐린 시야 / blurred vision",
}


@dataclass(frozen=True, slots=True)
class ClinicalEntry:
    """One entry as staff (or a FHIR client) made it; values in the quantities' units."""

    kind: str
    resident_id: str
    measured_at: datetime  # timezone-aware
    values: dict[str, float] = field(default_factory=dict)
    symptoms: tuple[str, ...] = ()
    injury: bool = False
    head_strike: bool = False
    cist_decline: bool | None = None  # CIST result below the age/education cut-off
    source: str | None = None  # lab | poc | screening (national health screening), labs only
    note: str | None = None


def validate(entry: ClinicalEntry) -> EntryKind:
    """The entry's kind, after checking every value; raises :class:`EntryError`."""
    kind = KINDS.get(entry.kind)
    if kind is None:
        raise EntryError(f"알 수 없는 항목 / unknown entry kind {entry.kind!r}")
    if entry.measured_at.tzinfo is None:
        raise EntryError("측정 시각에 시간대가 없습니다 / measured_at needs a time zone")
    unknown = set(entry.values) - {q.name for q in kind.quantities}
    if unknown:
        raise EntryError(f"{kind.label}: 알 수 없는 값 / unknown fields {sorted(unknown)}")
    for q in kind.quantities:
        if q.name not in entry.values:
            continue
        value = entry.values[q.name]
        if value != value or not q.low <= value <= q.high:  # NaN fails too
            raise EntryError(
                f"{q.display}: {value:g} {q.unit}, 범위 {q.low:g}–{q.high:g} 밖 "
                f"/ outside {q.low:g}–{q.high:g} (clinical-rules.md §2)"
            )
        if q.integer and value != int(value):
            raise EntryError(f"{q.display}: 정수로 입력하세요 / a whole number, not {value:g}")
    if kind.quantities and not entry.values:
        raise EntryError(f"{kind.label}: 값을 입력하세요 / enter a value")
    if kind.name == "phq9":
        total, item9 = entry.values.get("phq9_total"), entry.values.get("phq9_item9")
        if total is None or item9 is None:
            raise EntryError(
                "PHQ-9: 총점과 9번 문항을 모두 입력하세요 / enter the total and item 9"
            )
        if item9 > total:
            raise EntryError("PHQ-9: 9번 문항 점수가 총점보다 큽니다 / item 9 exceeds the total")
    if kind.name == "cist" and entry.cist_decline is None:
        raise EntryError("CIST: 결과(정상/저하)를 고르세요 / choose the result (normal or decline)")
    if kind.name == "symptom":
        if not entry.symptoms:
            raise EntryError("증상을 하나 이상 고르세요 / choose at least one symptom")
        bad = [s for s in entry.symptoms if s not in SYMPTOMS]
        if bad:
            raise EntryError(f"알 수 없는 증상 / unknown symptoms {bad}")
    if entry.source is not None and entry.source not in ("lab", "poc", "screening"):
        raise EntryError(
            "검사 출처는 lab, poc, screening 중 하나 / source must be lab, poc or screening"
        )
    return kind


def _resource(
    entry: ClinicalEntry,
    identifier: str,
    coding: dict[str, str],
    category: str,
    performer: str,
    value: dict[str, Any],
) -> dict[str, Any]:
    local = entry.measured_at.astimezone(KST).replace(microsecond=0)
    notes = [{"text": MANUAL_NOTE}]
    if entry.note:
        notes.append({"text": entry.note})
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": resource_id(identifier),
        "identifier": [{"system": STAFF_ENTRY_SYSTEM, "value": identifier}],
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": category}]}],
        "code": {"coding": [coding]},
        "subject": {"reference": f"Patient/{entry.resident_id}"},
        "effectiveDateTime": local.isoformat(),
        "performer": [{"reference": performer}],
        **value,
        "note": notes,
    }
    return resource


def observations(
    entry: ClinicalEntry, *, performer: str, received_at: datetime, setting: str = "visit"
) -> list[StoredObservation]:
    """The Observations an entry becomes (validated first). Entering the same thing for the same
    time again gives the same identifiers, so it is stored once."""
    kind = validate(entry)
    local = entry.measured_at.astimezone(KST).replace(microsecond=0)
    stamp = f"{local:%Y%m%dT%H%M%S}"
    context: dict[str, Any] = {"setting": setting, "entered_by": performer}
    if entry.source:
        context["source"] = entry.source
    rows: list[StoredObservation] = []

    def add(
        code: str,
        system: str,
        value: float | None,
        unit: str | None,
        body: dict[str, Any],
        category: str,
        display: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        identifier = f"staff-{entry.resident_id}-{code}-{stamp}"
        coding = {"system": system, "code": code, "display": display}
        resource = _resource(entry, identifier, coding, category, performer, body)
        rows.append(
            StoredObservation(
                id=resource["id"],
                effective_at=local,
                resident_id=entry.resident_id,
                code=code,
                code_system=system,
                value=value,
                unit=unit,
                component_values=None,
                device_id=None,
                gateway_id=None,
                centre_id=None,
                status="final",
                identifier=identifier,
                body=dumps(resource),
                received_at=received_at,
                context=dumps({**context, **(extra or {})}),
            )
        )

    for q in kind.quantities:
        if q.name not in entry.values:
            continue
        value = float(entry.values[q.name])
        shown: float | int = int(value) if q.integer else value
        body: dict[str, Any] = {
            "valueQuantity": {"value": shown, "unit": q.unit, "system": UCUM, "code": q.unit}
        }
        extra: dict[str, Any] = {}
        if kind.name == "cist":
            extra["result"] = "decline" if entry.cist_decline else "normal"
            body["interpretation"] = [
                {"text": "저하 / decline" if entry.cist_decline else "정상 / normal"}
            ]
        add(q.code, q.system, value, q.unit, body, q.category, q.display, extra)
    if kind.name == "fall":
        extra = {"injury": entry.injury, "head_strike": entry.head_strike}
        body = {
            "valueBoolean": True,
            "component": [
                {"code": {"text": "부상 / injury"}, "valueBoolean": entry.injury},
                {"code": {"text": "머리 부딪힘 / head strike"}, "valueBoolean": entry.head_strike},
            ],
        }
        add("daon-fall", LOCAL_SYSTEM, None, None, body, "survey", "낙상 / fall", extra)
    if kind.name == "symptom":
        names = tuple(dict.fromkeys(entry.symptoms))
        body = {
            "valueCodeableConcept": {
                "coding": [
                    {"system": SYMPTOM_SYSTEM, "code": s, "display": SYMPTOMS[s]} for s in names
                ]
            }
        }
        add(
            "daon-symptom",
            LOCAL_SYSTEM,
            None,
            None,
            body,
            "survey",
            "증상 / symptoms",
            {"symptoms": list(names)},
        )
    return rows
