"""FHIR R4 JSON the API builds itself: Bundles around stored resources, OperationOutcome,
Patient, Device (when the registry has no stored resource), AuditEvent and the
CapabilityStatement.

Stored resources (Observation, Flag, Task, RiskAssessment, Device) are spliced into Bundles as
the JSON text the database returned, never parsed and re-serialised, so what the ingest layer
stored is what clients get. The tests check every shape here against ``fhir.resources.R4B``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from api.store.access import AuditRecord
from api.store.queries import DeviceRecord, FlagRecord, ResidentRecord

MEDIA_TYPE = "application/fhir+json"
FHIR_VERSION = "4.0.1"

#: Identifier system of residents: a health-centre-scoped id, never the registration number
#: (fhir-mapping-and-anchors.md §2.3; KR Core requires a system on Patient.identifier).
RESIDENT_SYSTEM = "urn:daon:junggu:resident"
KR_CORE_PATIENT = "http://www.hl7korea.or.kr/fhir/krcore/StructureDefinition/krcore-patient"


def dumps(value: Any) -> str:
    """Compact JSON, Korean kept readable."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def now_instant() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- OperationOutcome --------------------------------------------------------------------------


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    """An OperationOutcome with one issue; ``code`` is from the FHIR issue-type value set."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


# --- Bundles ----------------------------------------------------------------------------------


def searchset(
    self_url: str,
    next_url: str | None,
    entries: Iterable[tuple[str, str]],
    *,
    total: int | None = None,
) -> str:
    """A searchset Bundle as JSON text; ``entries`` are (fullUrl, resource JSON text) pairs."""
    head: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": now_instant(),
    }
    if total is not None:
        head["total"] = total
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    head["link"] = links
    parts = [
        '{"fullUrl":' + dumps(url) + ',"resource":' + text + ',"search":{"mode":"match"}}'
        for url, text in entries
    ]
    return dumps(head)[:-1] + ',"entry":[' + ",".join(parts) + "]}"


def transaction_response(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "timestamp": now_instant(),
        "entry": list(entries),
    }


# --- resources built here ---------------------------------------------------------------------


def patient(record: ResidentRecord) -> dict[str, Any]:
    """Patient from the registry: pseudonymous id, name, sex, birth date, 동 (no card number)."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": record.id,
        "meta": {"profile": [KR_CORE_PATIENT]},
        "identifier": [{"system": RESIDENT_SYSTEM, "value": record.id}],
        "active": record.active,
        "name": [{"text": record.display_name}],
    }
    if record.sex in ("M", "F"):
        resource["gender"] = "male" if record.sex == "M" else "female"
    if record.birth_date is not None:
        resource["birthDate"] = record.birth_date.isoformat()
    resource["address"] = [
        {
            "text": f"서울특별시 중구 {record.neighbourhood}",
            "city": "서울특별시",
            "district": "중구",
            "country": "KR",
        }
    ]
    return resource


def fhir_id(registry_id: str) -> str:
    """A registry id as a FHIR id (``[A-Za-z0-9.-]{1,64}``): a BT address's ':' becomes '-'."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", registry_id)[:64]


def device(record: DeviceRecord) -> dict[str, Any]:
    """A minimal Device from the registry columns, for devices without a stored resource."""
    resource: dict[str, Any] = {"resourceType": "Device", "id": fhir_id(record.id)}
    if record.address:
        resource["identifier"] = [
            {
                "system": "http://hl7.org/fhir/sid/eui-48/bluetooth",
                "value": record.address.upper().replace(":", "-"),
            }
        ]
    if record.manufacturer:
        resource["manufacturer"] = record.manufacturer
    if record.model:
        resource["modelNumber"] = record.model
    if record.serial:
        resource["serialNumber"] = record.serial
    if record.firmware:
        resource["version"] = [{"type": {"text": "firmware"}, "value": record.firmware}]
    if record.owner_id:
        resource["patient"] = {"reference": f"Patient/{record.owner_id}"}
    return resource


# Flag and RiskAssessment of a stored flag, for a flag the runner has not rendered yet (it stores
# its own in risk_flag.fhir_flag / fhir_risk_assessment, which the api serves as stored). The
# systems are the runner's (clinical/resources.py).
DAON_SYSTEM = "https://daon.junggu.seoul.kr/fhir"
RULE_SYSTEM = f"{DAON_SYSTEM}/CodeSystem/clinical-rule"
_FLAG_PRIORITY = {
    "critical": ("PH", "High priority"),
    "urgent": ("PM", "Medium priority"),
    "routine": ("PL", "Low priority"),
    "info": ("PN", "No alarm"),
}
_RISK = {"critical": "high", "urgent": "high", "routine": "moderate", "info": "low"}
_OPEN = ("open", "acknowledged", "snoozed")


def _rule_coding(record: FlagRecord) -> dict[str, Any]:
    return {"system": RULE_SYSTEM, "version": record.rule_set, "code": record.rule}


def flag(record: FlagRecord) -> dict[str, Any]:
    """A FHIR Flag: what is true of the resident now (active while the flag is open)."""
    code, display = _FLAG_PRIORITY.get(record.severity, ("PN", "No alarm"))
    period = {"start": record.opened_at.isoformat()}
    if record.closed_at is not None:
        period["end"] = record.closed_at.isoformat()
    return {
        "resourceType": "Flag",
        "id": str(record.id),
        "meta": {"tag": [{"system": f"{DAON_SYSTEM}/rule-set", "code": record.rule_set}]},
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/flag-priority",
                "valueCodeableConcept": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/flag-priority",
                            "code": code,
                            "display": display,
                        }
                    ]
                },
            }
        ],
        "status": "active" if record.state in _OPEN else "inactive",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/flag-category",
                        "code": "clinical",
                        "display": "Clinical",
                    }
                ]
            }
        ],
        "code": {"coding": [_rule_coding(record)], "text": record.summary},
        "subject": {"reference": f"Patient/{record.resident_id}"},
        "period": period,
    }


def risk_assessment(record: FlagRecord) -> dict[str, Any]:
    """A FHIR RiskAssessment: the rule, its rule-set version and the readings it rests on."""
    resource: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "id": str(record.id),
        "status": "final" if record.state in _OPEN else "amended",
        "subject": {"reference": f"Patient/{record.resident_id}"},
        "occurrenceDateTime": record.opened_at.isoformat(),
        "method": {"coding": [_rule_coding(record)]},
        "prediction": [
            {
                "outcome": {"text": record.rule},
                "qualitativeRisk": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/risk-probability",
                            "code": _RISK.get(record.severity, "low"),
                        }
                    ]
                },
                "rationale": record.summary,
            }
        ],
    }
    if record.evidence:
        resource["basis"] = [{"reference": f"Observation/{e}"} for e in record.evidence]
    return resource


_ACTION_DISPLAY = {"C": "create", "R": "read", "U": "update", "D": "delete", "E": "execute"}
_TYPE_DISPLAY = {"110110": "Patient Record", "110114": "User Authentication"}


def audit_event(record: AuditRecord) -> dict[str, Any]:
    """An AuditEvent: who (agent), what (entity), when (recorded), why (purposeOfEvent)."""
    agent: dict[str, Any] = {"requestor": True}
    if record.agent_user_id:
        agent["who"] = {
            "identifier": {"system": "urn:daon:user", "value": record.agent_user_id},
            "display": record.agent_name or record.agent_user_id,
        }
    else:
        agent["who"] = {"display": "unknown user"}
    if record.agent_role:
        agent["role"] = [{"text": record.agent_role}]
    if record.purpose_of_use:
        agent["purposeOfUse"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                        "code": record.purpose_of_use,
                    }
                ]
            }
        ]
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(record.id),
        "type": {
            "system": "http://dicom.nema.org/resources/ontology/DCM",
            "code": record.type_code,
            "display": _TYPE_DISPLAY.get(record.type_code, record.type_code),
        },
        "subtype": [
            {
                "system": "http://hl7.org/fhir/restful-interaction",
                "code": record.subtype,
            }
        ],
        "action": record.action,
        "recorded": record.recorded.isoformat(),
        "outcome": str(record.outcome),
        "agent": [agent],
        "source": {"observer": {"display": "daon-api"}},
    }
    entity: dict[str, Any] = {"description": record.entity}
    if record.resident_id:
        entity["what"] = {"reference": f"Patient/{record.resident_id}"}
    resource["entity"] = [entity]
    return resource


# --- CapabilityStatement ----------------------------------------------------------------------

#: Observation search parameters the server implements (name, type, documentation).
OBSERVATION_SEARCH: tuple[tuple[str, str, str], ...] = (
    ("patient", "reference", "Patient/{id} or {id}; comma-separated values are ORed"),
    ("subject", "reference", "same as patient"),
    ("code", "token", "system|code, |code or code; matches any coding of Observation.code"),
    ("category", "token", "system|code or code"),
    ("date", "date", "prefixes eq, ge, gt, le, lt (also sa, eb); repeat to AND"),
    ("device", "reference", "Device/{id} or {id}"),
    ("identifier", "token", "the conditional-create identifier (system|value or value)"),
    ("status", "token", "Observation.status"),
    ("_count", "number", "page size (default 50, at most 500)"),
    ("_sort", "string", "date or -date (default -date)"),
)


def capability_statement(
    base_url: str, resources: Sequence[str], software: str, *, transaction: bool
) -> dict[str, Any]:
    """What this server really does (``resources``: the read-capable types that are wired)."""
    entries: list[dict[str, Any]] = []
    for name in sorted(resources):
        entry: dict[str, Any] = {"type": name, "interaction": [{"code": "read"}]}
        if name == "Observation":
            entry["interaction"].append({"code": "search-type"})
            entry["searchParam"] = [
                {"name": n, "type": t, "documentation": doc} for n, t, doc in OBSERVATION_SEARCH
            ]
            entry["operation"] = [
                {
                    "name": "lastn",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Observation-lastn",
                }
            ]
        if name == "Task":
            entry["interaction"].append({"code": "update"})
            entry["documentation"] = "update changes Task.status only (and adds notes)"
        if name == "AuditEvent":
            entry["interaction"] = [{"code": "search-type"}]
            entry["searchParam"] = [
                {"name": "patient", "type": "reference"},
                {"name": "agent", "type": "reference"},
                {"name": "date", "type": "date", "documentation": "ge only"},
                {"name": "_count", "type": "number"},
            ]
            entry["documentation"] = "administrators only"
        entries.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).date().isoformat(),
        "kind": "instance",
        "software": {"name": "Daon", "version": software},
        "implementation": {
            "description": "Daon U-health FHIR API (행복다온 중구 U-건강센터)",
            "url": base_url,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": "Bearer token (Authorization: Bearer ...) or a web session "
                    "cookie; access is scoped by role, neighbourhood, assignment and consent, "
                    "and every read is recorded as an AuditEvent."
                },
                "resource": entries,
                **({"interaction": [{"code": "transaction"}]} if transaction else {}),
            }
        ],
    }
