"""Patient (a resident) and Practitioner (a member of staff). Pure builders over plain values.

Residents are identified by a health-centre-scoped id, never the resident registration number
(fhir-mapping-and-anchors.md §2.3). Staff accounts are Practitioners so that ``Task.owner``,
the manual-entry ``performer`` and note authors resolve; a Practitioner carries the account id,
the name and the care role (``qualification``), never a password or a login name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from ingest.fhir.vocab import (
    KR_CORE_PATIENT,
    RESIDENT_SYSTEM,
    ROLE_DISPLAY,
    ROLE_SYSTEM,
    STAFF_SYSTEM,
)


@dataclass(frozen=True, slots=True)
class PatientFacts:
    """The registry facts a Patient shows (no card number: it is a credential)."""

    id: str
    display_name: str
    neighbourhood: str
    birth_date: date | None = None
    sex: str | None = None  # 'M' | 'F'
    active: bool = True


def patient(p: PatientFacts) -> dict[str, Any]:
    """Patient from the registry: pseudonymous id, name, sex, birth date, 동."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": p.id,
        "meta": {"profile": [KR_CORE_PATIENT]},
        "identifier": [{"system": RESIDENT_SYSTEM, "value": p.id}],
        "active": p.active,
        "name": [{"text": p.display_name}],
    }
    if p.sex in ("M", "F"):
        resource["gender"] = "male" if p.sex == "M" else "female"
    if p.birth_date is not None:
        resource["birthDate"] = p.birth_date.isoformat()
    resource["address"] = [
        {
            "text": f"서울특별시 중구 {p.neighbourhood}",
            "city": "서울특별시",
            "district": "중구",
            "country": "KR",
        }
    ]
    return resource


#: app_user.role → care role code (ROLE_SYSTEM) for the Practitioner's qualification
_CARE_ROLE = {"nurse": "nurse", "therapist": "rehab", "liaison": "liaison"}
_ADMIN_DISPLAY = "관리자 / administrator"


@dataclass(frozen=True, slots=True)
class PractitionerFacts:
    id: str
    display_name: str
    role: str  # app_user.role: nurse, therapist, liaison, admin
    active: bool = True


def practitioner(p: PractitionerFacts) -> dict[str, Any]:
    """A member of staff as a Practitioner (account id, name, care role)."""
    resource: dict[str, Any] = {
        "resourceType": "Practitioner",
        "id": p.id,
        "identifier": [{"system": STAFF_SYSTEM, "value": p.id}],
        "active": p.active,
        "name": [{"text": p.display_name}],
    }
    care = _CARE_ROLE.get(p.role)
    display = ROLE_DISPLAY.get(care, _ADMIN_DISPLAY) if care else _ADMIN_DISPLAY
    resource["qualification"] = [
        {
            "code": {
                "coding": [{"system": ROLE_SYSTEM, "code": care or p.role, "display": display}],
                "text": display,
            }
        }
    ]
    return resource
