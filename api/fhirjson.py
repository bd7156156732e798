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
    RESIDENT_SYSTEM,
    RESTFUL_INTERACTION,
    STAFF_SYSTEM,
    V3_ACT_REASON,
    kst,
)
from ingest.store.registry import ResidentContacts

__all__ = ["RESIDENT_SYSTEM", "STAFF_SYSTEM", "dumps"]

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


def with_meta(
    resource: dict[str, Any], version_id: str, updated: datetime | None
) -> dict[str, Any]:
    """``resource`` with ``meta.versionId`` (and ``lastUpdated`` in Korea time, when known)."""
    meta: dict[str, Any] = {"versionId": version_id}
    if updated is not None:
        meta["lastUpdated"] = kst(updated).isoformat(timespec="milliseconds")
    meta.update(resource.get("meta") or {})
    out = {"resourceType": resource["resourceType"], "id": resource["id"], "meta": meta}
    out.update({k: v for k, v in resource.items() if k not in out})
    return out


def history(self_url: str, entries: Iterable[tuple[str, str]]) -> str:
    """A history Bundle (newest first); ``entries`` are (fullUrl, resource JSON text)."""
    head = {"resourceType": "Bundle", "type": "history", "timestamp": now_instant()}
    entries = list(entries)
    head["total"] = len(entries)  # type: ignore[assignment]
    head["link"] = [{"relation": "self", "url": self_url}]  # type: ignore[assignment]
    parts = [
        '{"fullUrl":'
        + dumps(url)
        + ',"resource":'
        + text
        + ',"request":{"method":"'
        + ("POST" if i == len(entries) - 1 else "PUT")
        + '","url":'
        + dumps(url.rsplit("/_history/", 1)[0].split("/fhir/", 1)[-1])
        + "}}"
        for i, (url, text) in enumerate(entries)
    ]
    if not parts:
        return dumps(head)
    return dumps(head)[:-1] + ',"entry":[' + ",".join(parts) + "]}"


def searchset(
    self_url: str,
    next_url: str | None,
    entries: Iterable[tuple[str, str]],
    *,
    total: int | None = None,
    included: Iterable[tuple[str, str]] = (),
) -> str:
    """A searchset Bundle as JSON text; ``entries`` are (fullUrl, resource JSON text) pairs,
    ``included`` the ``_include`` targets (search mode ``include``). No empty ``entry``."""
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
    parts += [
        '{"fullUrl":' + dumps(url) + ',"resource":' + text + ',"search":{"mode":"include"}}'
        for url, text in included
    ]
    if not parts:
        return dumps(head)
    return dumps(head)[:-1] + ',"entry":[' + ",".join(parts) + "]}"


def bundle_response(kind: str, entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A transaction-response or batch-response Bundle."""
    return {
        "resourceType": "Bundle",
        "type": kind,
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
#
# The one list of what the FHIR API does: the routes take their accepted search parameters from
# SEARCH (anything else is unknown: 400 with Prefer: handling=strict, else ignored and left out
# of the self link), so the statement cannot claim more or less than the server does.

_REF, _TOKEN, _DATE, _STRING, _NUMBER = "reference", "token", "date", "string", "number"

#: resource type → search parameter → (type, documentation)
SEARCH: dict[str, dict[str, tuple[str, str]]] = {
    "Observation": {
        "_id": (_TOKEN, "logical id; comma-separated values are ORed"),
        "patient": (_REF, "Patient/{id} or {id}; comma-separated values are ORed"),
        "subject": (_REF, "same as patient"),
        "code": (_TOKEN, "system|code, |code or code; matches any coding of Observation.code"),
        "category": (_TOKEN, "system|code or code"),
        "date": (_DATE, "prefixes eq, ge, gt, le, lt (also sa, eb); repeat to AND"),
        "device": (_REF, "Device/{id} (phd-…) as Observation.device says, or a registry id"),
        "identifier": (_TOKEN, "the PHD conditional-create identifier or a client's identifier"),
        "status": (_TOKEN, "Observation.status"),
        "_sort": (_STRING, "date or -date (default -date)"),
    },
    "Patient": {
        "_id": (_TOKEN, "resident id"),
        "identifier": (_TOKEN, f"{RESIDENT_SYSTEM}|{{id}}"),
        "name": (_STRING, "part of the name (case-insensitive)"),
        "birthdate": (_DATE, "prefixes eq, ge, gt, le, lt"),
    },
    "Practitioner": {
        "_id": (_TOKEN, "staff account id"),
        "identifier": (_TOKEN, f"{STAFF_SYSTEM}|{{id}}"),
        "name": (_STRING, "part of the name (case-insensitive)"),
    },
    "Device": {
        "_id": (_TOKEN, "phd-… (personal health device) or phg-… (gateway)"),
        "identifier": (_TOKEN, "Bluetooth address (EUI-48, dashes) or registry id"),
        "patient": (_REF, "the owner of a personal device"),
    },
    "Flag": {
        "_id": (_TOKEN, "flag id"),
        "patient": (_REF, "Patient/{id} or {id}"),
        "subject": (_REF, "same as patient"),
        "status": (_TOKEN, "active or inactive"),
    },
    "RiskAssessment": {
        "_id": (_TOKEN, "flag id"),
        "patient": (_REF, "Patient/{id} or {id}"),
        "subject": (_REF, "same as patient"),
    },
    "Task": {
        "_id": (_TOKEN, "task id"),
        "patient": (_REF, "Patient/{id} or {id}"),
        "subject": (_REF, "same as patient"),
        "status": (_TOKEN, "Task.status"),
        "owner": (_REF, "Practitioner/{id}"),
    },
    "AuditEvent": {
        "patient": (_REF, "one patient"),
        "agent": (_REF, "Practitioner/{id} or {id}"),
        "date": (_DATE, "ge only"),
    },
}
#: parameters every search takes
RESULT_PARAMETERS: tuple[tuple[str, str, str], ...] = (
    ("_count", _NUMBER, "page size (default 50, at most 500); 0 returns only Bundle.total"),
    ("_summary", _TOKEN, "count only (Bundle.total, no entries)"),
    ("_total", _TOKEN, "accurate adds Bundle.total; none and estimate add nothing"),
    ("_format", _STRING, "json, application/json or application/fhir+json (XML is not served)"),
)
INCLUDES: dict[str, tuple[str, ...]] = {
    "Observation": ("Observation:patient", "Observation:subject", "Observation:device"),
}
_VERSIONED = ("Task", "Flag")


def search_names(resource_type: str) -> frozenset[str]:
    return frozenset(SEARCH[resource_type])


def capability_statement(base_url: str, software: str) -> dict[str, Any]:
    """What this server really does, built from :data:`SEARCH` (the routes' own lists)."""
    entries: list[dict[str, Any]] = []
    for name in sorted(SEARCH):
        interactions = [] if name == "AuditEvent" else ["read"]
        interactions.append("search-type")
        if name in _VERSIONED:
            interactions += ["vread", "history-instance"]
        if name == "Task":
            interactions.append("update")
        if name == "Observation":
            interactions.append("create")
        entry: dict[str, Any] = {
            "type": name,
            "interaction": [{"code": code} for code in interactions],
            # every resource served carries meta.versionId; only Task and Flag change (history)
            "versioning": "no-version" if name == "AuditEvent" else "versioned",
            "readHistory": name in _VERSIONED,
        }
        if name == "Task":
            entry["updateCreate"] = False
            entry["conditionalUpdate"] = False
            entry["documentation"] = (
                'update changes Task.status only (and adds a note); If-Match W/"n" is '
                "honoured (412 when stale)"
            )
        if name == "Observation":
            entry["conditionalCreate"] = True
            entry["documentation"] = (
                "create (POST, or in a transaction/batch Bundle) takes hand-entered readings "
                "with If-None-Exist / ifNoneExist on identifier; a different value under the "
                "same identity is 409"
            )
        if name in INCLUDES:
            entry["searchInclude"] = list(INCLUDES[name])
        entry["searchParam"] = [
            {"name": n, "type": kind, "documentation": doc}
            for n, (kind, doc) in SEARCH[name].items()
        ] + [{"name": n, "type": kind, "documentation": doc} for n, kind, doc in RESULT_PARAMETERS]
        if name == "Observation":
            entry["operation"] = [
                {
                    "name": "lastn",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Observation-lastn",
                }
            ]
        if name == "AuditEvent":
            entry["documentation"] = "administrators only"
        entries.append(entry)
    # served by api/routes/subscription.py (rest-hook, administrators or the subscription scope)
    entries.append(
        {
            "type": "Subscription",
            "interaction": [
                {"code": "create"},
                {"code": "read"},
                {"code": "search-type"},
                {"code": "delete"},
            ],
            "versioning": "versioned",
            "searchParam": [{"name": "status", "type": _TOKEN}],
            "documentation": "R4 rest-hook Subscriptions on Flag; administrators only",
        }
    )
    entries.sort(key=lambda e: str(e["type"]))
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
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
            }
        ],
    }
