"""Observations a person entered (a nurse's form, a FHIR client's create): pure builders.

Two kinds:

- values a device could have sent (blood pressure, glucose, weight, ...) go through the device
  mapping (:func:`ingest.fhir.observations.to_observations` with a ``performer``) and only get
  the client's own elements added here (:func:`keep_client`);
- single values no device sends here but the risk engine reads (standalone heart rate, fasting
  glucose, waist, HbA1c, lipids, PHQ-9, bone density T-score: :data:`ENTERED`) are built by
  :func:`entered_observation`.

What a client sends is what it finds: its identifiers and codings are kept, ours are added
beside them (never replacing them), so a search by the client's code or identifier finds the
resource. Out of PHD scope (no device): ``performer`` is the practitioner, a note says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from ingest.fhir.encoding import canonical, dumps, loads
from ingest.fhir.ids import patient_reference, resource_id
from ingest.fhir.observations import MANUAL_NOTE, StoredObservation
from ingest.fhir.vocab import (
    CORE_SD,
    KR_SD,
    LOINC,
    OBSERVATION_CATEGORY,
    STAFF_ENTRY_SYSTEM,
    UCUM,
    iso,
    kst,
)


@dataclass(frozen=True, slots=True)
class EnteredCode:
    display: str
    category: str  # observation-category code
    units: tuple[str, ...]  # UCUM codes accepted (the first is the usual one)
    bounds: tuple[Decimal, Decimal]  # outside: refused (a typing error, not a reading)
    profiles: tuple[str, ...] = ()


def _d(low: str, high: str) -> tuple[Decimal, Decimal]:
    return (Decimal(low), Decimal(high))


#: LOINC codes the risk engine reads (clinical.runner.CODES) that no device mapping produces.
ENTERED: Final[dict[str, EnteredCode]] = {
    "8867-4": EnteredCode(
        "Heart rate",
        "vital-signs",
        ("/min",),
        _d("20", "300"),
        (CORE_SD + "heartrate", KR_SD + "krcore-heartrate"),
    ),
    "41604-0": EnteredCode(
        "Fasting glucose [Mass/volume] in Capillary blood by Glucometer",
        "laboratory",
        ("mg/dL",),
        _d("10", "800"),
    ),
    "14770-2": EnteredCode(
        "Fasting glucose [Moles/volume] in Capillary blood by Glucometer",
        "laboratory",
        ("mmol/L",),
        _d("0.6", "44.4"),
    ),
    "8280-0": EnteredCode(
        "Waist Circumference at umbilicus by Tape measure", "exam", ("cm",), _d("30", "250")
    ),
    "56115-9": EnteredCode("Waist Circumference by NCFS", "exam", ("cm",), _d("30", "250")),
    "4548-4": EnteredCode(
        "Hemoglobin A1c/Hemoglobin.total in Blood", "laboratory", ("%",), _d("2", "25")
    ),
    "59261-8": EnteredCode(
        "Hemoglobin A1c/Hemoglobin.total in Blood by IFCC protocol",
        "laboratory",
        ("mmol/mol",),
        _d("1", "250"),
    ),
    "2571-8": EnteredCode(
        "Triglyceride [Mass/volume] in Serum or Plasma", "laboratory", ("mg/dL",), _d("5", "5000")
    ),
    "2085-9": EnteredCode(
        "Cholesterol in HDL [Mass/volume] in Serum or Plasma",
        "laboratory",
        ("mg/dL",),
        _d("5", "200"),
    ),
    "44261-6": EnteredCode(
        "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
        "survey",
        ("{score}",),
        _d("0", "27"),
    ),
    "44260-8": EnteredCode(
        "Thoughts that you would be better off dead, or of hurting yourself in some way",
        "survey",
        ("{score}",),
        _d("0", "3"),
    ),
    "38263-0": EnteredCode(
        "DXA Femur [T-score] Bone density", "imaging", ("{T-score}",), _d("-10", "10")
    ),
    "38267-1": EnteredCode(
        "DXA Lumbar spine [T-score] Bone density", "imaging", ("{T-score}",), _d("-10", "10")
    ),
}


class EntryError(ValueError):
    """The entry cannot be stored as it is; the message says why (Korean / English)."""


def entered_observation(
    *,
    resident_id: str,
    code: str,
    value: Decimal,
    unit: str,
    effective: datetime,
    performer: str,
    received_at: datetime,
    client: Mapping[str, Any] | None = None,
) -> StoredObservation:
    """One hand-entered single-value Observation of a code in :data:`ENTERED`.

    Its identity (``staff-{resident}-{code}-{time}``, the same rule as the therapist's
    function tests) makes a second entry of the same measurement the same resource.
    """
    spec = ENTERED.get(code)
    if spec is None:
        raise EntryError(f"지원하지 않는 코드 / unsupported code {code}")
    if unit not in spec.units:
        raise EntryError(f"{code}: 단위 / unit must be {' or '.join(spec.units)}, got {unit}")
    if not value.is_finite() or not spec.bounds[0] <= value <= spec.bounds[1]:
        raise EntryError(
            f"{code} {value} {unit}: 입력 범위 밖입니다 / outside {spec.bounds[0]}–{spec.bounds[1]}"
        )
    local = kst(effective).replace(microsecond=0)
    identifier = f"staff-{resident_id}-{code}-{local:%Y%m%dT%H%M%S}"
    obs_id = resource_id(identifier)
    received = kst(received_at)
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": obs_id,
        "identifier": [{"system": STAFF_ENTRY_SYSTEM, "value": identifier}],
        "status": "final",
        "category": [
            {"coding": [{"system": OBSERVATION_CATEGORY, "code": spec.category}]},
        ],
        "code": {"coding": [{"system": LOINC, "code": code, "display": spec.display}]},
        "subject": {"reference": patient_reference(resident_id)},
        "effectiveDateTime": iso(local),
        "issued": iso(max(received, local)),
        "performer": [{"reference": performer}],
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
        "note": [{"text": MANUAL_NOTE}],
    }
    resource["meta"] = {
        "versionId": "1",
        "lastUpdated": received.isoformat(timespec="milliseconds"),
    }
    if spec.profiles:
        resource["meta"]["profile"] = list(spec.profiles)
    if client is not None:
        resource = keep_client(resource, client)
    return StoredObservation(
        id=obs_id,
        effective_at=local,
        resident_id=resident_id,
        code=code,
        code_system=LOINC,
        value=float(value),
        unit=unit,
        component_values=None,
        device_id=None,
        gateway_id=None,
        centre_id=None,
        status="final",
        identifier=identifier,
        body=dumps(canonical(resource)),
        received_at=received_at,
        context='{"setting":"visit","binding":"staff"}',
    )


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, Mapping):
        return []
    return [dict(c) for c in concept.get("coding") or [] if isinstance(c, Mapping)]


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return a.get("system") == b.get("system") and a.get("code") == b.get("code")


def _identifiers(resource: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = resource.get("identifier") or []
    return [dict(i) for i in found if isinstance(i, Mapping) and i.get("value")]


def keep_client(ours: dict[str, Any], client: Mapping[str, Any]) -> dict[str, Any]:
    """``ours`` with the client's identifiers, codings, categories and device kept.

    The client's identifiers and codings come first (what it sent), ours follow unless the
    client already sent the same one; nothing of ours is dropped.
    """
    out = dict(ours)
    mine = _identifiers(ours)
    theirs = _identifiers(client)
    out["identifier"] = theirs + [
        i for i in mine if not any(_same_identifier(i, t) for t in theirs)
    ]
    code_theirs = _codings(client.get("code"))
    if code_theirs:
        code = dict(ours["code"])
        code["coding"] = code_theirs + [
            c for c in _codings(ours["code"]) if not any(_same(c, t) for t in code_theirs)
        ]
        text = client["code"].get("text") if isinstance(client.get("code"), Mapping) else None
        if isinstance(text, str) and text:
            code["text"] = text
        out["code"] = code
    categories: list[dict[str, Any]] = list(ours.get("category") or [])
    for concept in client.get("category") or []:
        codings = _codings(concept)
        if codings and not any(
            any(_same(c, k) for k in _codings(have)) for c in codings for have in categories
        ):
            categories.append({"coding": codings})
    if categories:
        out["category"] = categories
    device = client.get("device")
    if "device" not in ours and isinstance(device, Mapping) and device.get("reference"):
        out["device"] = {"reference": str(device["reference"])}
    return out


def _same_identifier(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return a.get("system") == b.get("system") and a.get("value") == b.get("value")


def merge_client_text(resource_text: str, client: Mapping[str, Any]) -> str:
    """:func:`keep_client` over stored JSON text (the device-mapping path's primary row)."""
    return dumps(canonical(keep_client(loads(resource_text), client)))


__all__: Sequence[str] = (
    "ENTERED",
    "EnteredCode",
    "EntryError",
    "entered_observation",
    "keep_client",
    "merge_client_text",
)
