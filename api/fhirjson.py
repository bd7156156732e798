"""The REST envelope of the FHIR API: Bundles, OperationOutcome, AuditEvent, the
CapabilityStatement, and the registry rows rendered with the one home of FHIR (``ingest.fhir``).

Resources themselves (Patient, Device, Flag, RiskAssessment, Task, Observation) are built by
:mod:`ingest.fhir`, the same builders ingest and the clinical runner use. Stored resources are
spliced into Bundles as the JSON text the database returned, never parsed and re-serialised, so
what was stored is what clients get. The tests check every shape here against
``fhir.resources.R4B``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from api.store.access import AuditRecord
from api.store.queries import DeviceRecord, FlagRecord, ResidentRecord
from ingest.fhir import clinical as fhir_clinical
from ingest.fhir import devices as fhir_devices
from ingest.fhir import people
from ingest.fhir.encoding import dumps as dumps
from ingest.fhir.vocab import (
    DICOM_DCM,
    RESTFUL_INTERACTION,
    STAFF_SYSTEM,
    V3_ACT_REASON,
)
from ingest.store.registry import ResidentContacts

MEDIA_TYPE = "application/fhir+json"
FHIR_VERSION = "4.0.1"


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


# --- registry rows rendered by ingest.fhir ----------------------------------------------------


def patient(record: ResidentRecord, contacts: ResidentContacts | None = None) -> dict[str, Any]:
    """Patient from the registry: pseudonymous id, name, sex, birth date, 동 (no card number),
    and the contact details when the reader may see them."""
    c = contacts
    return people.patient(
        people.PatientFacts(
            id=record.id,
            display_name=record.display_name,
            neighbourhood=record.neighbourhood,
            birth_date=record.birth_date,
            sex=record.sex,
            active=record.active,
            mobile_phone=c.mobile_phone if c else None,
            home_phone=c.home_phone if c else None,
            address_road=c.address_road if c else None,
            address_detail=c.address_detail if c else None,
            postal_code=c.postal_code if c else None,
            lives_alone=c.lives_alone if c else None,
            contacts=tuple(
                people.ContactPerson(p.name, p.relationship, p.phone, p.guardian)
                for p in (c.contacts if c else ())
            ),
        )
    )


def device(record: DeviceRecord) -> dict[str, Any]:
    """The PhdDevice of a registry device that has no stored resource (same builder, same id)."""
    return fhir_devices.device_resource(
        record.id,
        address=record.address,
        manufacturer=record.manufacturer,
        model=record.model,
        serial=record.serial,
        firmware=record.firmware,
        kind=record.kind,
    )


_OPEN = ("open", "acknowledged", "snoozed")


def _flag_facts(record: FlagRecord) -> fhir_clinical.FlagFacts:
    return fhir_clinical.FlagFacts(
        resident=record.resident_id,
        rule=record.rule,
        rule_set=record.rule_set,
        severity=record.severity,
        is_open=record.state in _OPEN,
        summary=record.summary,
        opened_at=record.opened_at,
        closed_at=record.closed_at,
        id=str(record.id),
    )


def flag(record: FlagRecord) -> dict[str, Any]:
    """A Flag for a stored flag the runner has not rendered yet (it stores its own)."""
    return fhir_clinical.flag(_flag_facts(record))


def risk_assessment(record: FlagRecord) -> dict[str, Any]:
    """A RiskAssessment for a stored flag the runner has not rendered yet."""
    return fhir_clinical.risk_assessment(
        _flag_facts(record), evidence_refs=[f"Observation/{e}" for e in record.evidence]
    )


_ACTION_DISPLAY = {"C": "create", "R": "read", "U": "update", "D": "delete", "E": "execute"}
_TYPE_DISPLAY = {"110110": "Patient Record", "110114": "User Authentication"}


def audit_event(record: AuditRecord) -> dict[str, Any]:
    """An AuditEvent: who (agent), what (entity), when (recorded), why (purposeOfEvent)."""
    agent: dict[str, Any] = {"requestor": True}
    if record.agent_user_id:
        agent["who"] = {
            "identifier": {"system": STAFF_SYSTEM, "value": record.agent_user_id},
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
                        "system": V3_ACT_REASON,
                        "code": record.purpose_of_use,
                    }
                ]
            }
        ]
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(record.id),
        "type": {
            "system": DICOM_DCM,
            "code": record.type_code,
            "display": _TYPE_DISPLAY.get(record.type_code, record.type_code),
        },
        "subtype": [
            {
                "system": RESTFUL_INTERACTION,
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
