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
    CONTACT_ROLE_SYSTEM,
    KR_CORE_PATIENT,
    KR_CORE_ROAD_ADDRESS,
    LIVES_ALONE_EXTENSION,
    RESIDENT_SYSTEM,
    ROLE_DISPLAY,
    ROLE_SYSTEM,
    STAFF_SYSTEM,
    V3_ROLE_CODE,
)


@dataclass(frozen=True, slots=True)
class ContactPerson:
    """An emergency contact or guardian (보호자) of a resident."""

    name: str
    relationship: str  # ingest.store.registry.RELATIONSHIPS key ('daughter', 'neighbour', ...)
    phone: str
    guardian: bool = False


@dataclass(frozen=True, slots=True)
class PatientFacts:
    """The registry facts a Patient shows (no card number: it is a credential)."""

    id: str
    display_name: str
    neighbourhood: str
    birth_date: date | None = None
    sex: str | None = None  # 'M' | 'F'
    active: bool = True
    # contact details: only when the reader may see them (api.store.contacts)
    mobile_phone: str | None = None
    home_phone: str | None = None
    address_road: str | None = None  # 도로명, in the resident's 동
    address_detail: str | None = None  # building number and unit
    postal_code: str | None = None
    lives_alone: bool | None = None
    contacts: tuple[ContactPerson, ...] = ()


#: Relationship → HL7 v3 RoleCode (code, display) and the Korean word; ``carer`` and ``other``
#: have no RoleCode and go as text.
RELATIONSHIP_CODES: dict[str, tuple[str | None, str, str]] = {
    "spouse": ("SPS", "spouse", "배우자"),
    "son": ("SONC", "son", "아들"),
    "daughter": ("DAUC", "daughter", "딸"),
    "child": ("CHILD", "child", "자녀"),
    "sibling": ("SIB", "sibling", "형제자매"),
    "grandchild": ("GRNDCHILD", "grandchild", "손자녀"),
    "parent": ("PRN", "parent", "부모"),
    "relative": ("EXT", "extended family member", "친척"),
    "friend": ("FRND", "unrelated friend", "친구"),
    "neighbour": ("NBOR", "neighbor", "이웃"),
    "guardian": ("GUARD", "guardian", "후견인"),
    "carer": (None, "carer", "돌봄 제공자"),
    "other": (None, "other", "기타"),
}


def _address(p: PatientFacts) -> dict[str, Any]:
    """KR Core: the road-name address extension (district, road, detail, and the 동 as its
    complement) when the road is known, else the 동 alone."""
    address: dict[str, Any] = {"use": "home", "type": "physical"}
    if p.address_road:
        street = " ".join(part for part in (p.address_road, p.address_detail) if part)
        address["extension"] = [
            {
                "url": KR_CORE_ROAD_ADDRESS,
                "extension": [
                    {"url": "district", "valueString": "서울특별시 중구"},
                    {"url": "roadName", "valueString": p.address_road},
                    {"url": "detailedAddress", "valueString": p.address_detail or ""},
                    {"url": "complements", "valueString": p.neighbourhood},
                ],
            }
        ]
        address["text"] = f"서울특별시 중구 {street} ({p.neighbourhood})"
        address["line"] = [street]
    else:
        address["text"] = f"서울특별시 중구 {p.neighbourhood}"
    address.update({"city": "서울특별시", "district": "중구"})
    if p.postal_code:
        address["postalCode"] = p.postal_code
    address["country"] = "KR"
    return address


def _contact(person: ContactPerson) -> dict[str, Any]:
    code, display, korean = RELATIONSHIP_CODES.get(person.relationship, (None, "other", "기타"))
    kinship: dict[str, Any] = {"text": korean}
    if code is not None:
        kinship["coding"] = [{"system": V3_ROLE_CODE, "code": code, "display": display}]
    relationship: list[dict[str, Any]] = [
        {
            "coding": [
                {"system": CONTACT_ROLE_SYSTEM, "code": "C", "display": "Emergency Contact"}
            ],
            "text": "비상 연락처",
        },
        kinship,
    ]
    if person.guardian and person.relationship != "guardian":
        relationship.append(
            {
                "coding": [{"system": V3_ROLE_CODE, "code": "GUARD", "display": "guardian"}],
                "text": "보호자",
            }
        )
    return {
        "relationship": relationship,
        "name": {"text": person.name},
        "telecom": [{"system": "phone", "value": person.phone, "use": "mobile"}],
    }


def patient(p: PatientFacts) -> dict[str, Any]:
    """Patient from the registry: pseudonymous id, name, sex, birth date, phones, address in the
    동, emergency contacts and guardian (KR Core), and whether the resident lives alone."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": p.id,
        "meta": {"profile": [KR_CORE_PATIENT]},
    }
    if p.lives_alone is not None:
        resource["extension"] = [{"url": LIVES_ALONE_EXTENSION, "valueBoolean": p.lives_alone}]
    resource["identifier"] = [{"system": RESIDENT_SYSTEM, "value": p.id}]
    resource["active"] = p.active
    resource["name"] = [{"text": p.display_name}]
    telecom = [
        {"system": "phone", "value": number, "use": use, "rank": rank}
        for rank, (number, use) in enumerate(
            ((n, u) for n, u in ((p.mobile_phone, "mobile"), (p.home_phone, "home")) if n),
            start=1,
        )
    ]
    if telecom:
        resource["telecom"] = telecom
    if p.sex in ("M", "F"):
        resource["gender"] = "male" if p.sex == "M" else "female"
    if p.birth_date is not None:
        resource["birthDate"] = p.birth_date.isoformat()
    resource["address"] = [_address(p)]
    if p.contacts:
        resource["contact"] = [_contact(c) for c in p.contacts]
    return resource


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
