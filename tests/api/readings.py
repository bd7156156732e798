"""Hand-written stored Observations for api tests (test input, not output of our code).

The resource shapes follow ../shared/reference/fhir-mapping-and-anchors.md §1.1 (BP panel
85354-9 with MDC 150020 and components 8480-6/150021, 8462-4/150022; glucose 41653-7 with
MDC 160184; body weight 29463-7 with MDC 188736; body fat 41982-0; muscle mass 73964-9),
categories vital-signs/laboratory/exam plus phd. Until the ingest writer lands, tests insert
rows the way its contract (migration 0001) describes: resource jsonb plus the search columns.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from ingest.fhir.ids import device_reference, identity_time

LOINC = "http://loinc.org"
MDC = "urn:iso:std:iso:11073:10101"
UCUM = "http://unitsofmeasure.org"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
PHD_CAT = "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories"
PHD_IDENT = "http://hl7.org/fhir/uv/phd/StructureDefinition/PhdBaseObservation"


@dataclass(frozen=True)
class Stored:
    id: str
    identifier: str
    resource: dict[str, Any]


def _category(code: str) -> list[dict[str, Any]]:
    return [
        {"coding": [{"system": OBS_CAT, "code": code}]},
        {"coding": [{"system": PHD_CAT, "code": "phd"}]},
    ]


def _quantity(value: float | int, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _base(
    resident: str | None,
    when: datetime,
    loinc: str,
    mdc: str,
    display: str,
    category: str,
    device: str,
) -> tuple[str, str, dict[str, Any]]:
    obs_id = str(uuid.uuid4())
    identifier = f"{device.replace(':', '')}-{resident}-{mdc}-{when:%Y%m%d%H%M%S}"
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": obs_id,
        "identifier": [{"system": PHD_IDENT, "value": identifier}],
        "status": "final",
        "category": _category(category),
        "code": {
            "coding": [
                {"system": LOINC, "code": loinc, "display": display},
                {"system": MDC, "code": mdc},
            ]
        },
        "effectiveDateTime": when.isoformat(),
        "device": {"reference": device_reference(device)},
    }
    if resident is not None:
        resource["subject"] = {"reference": f"Patient/{resident}"}
    return obs_id, identifier, resource


async def _insert(
    conn: AsyncConnection[Any],
    *,
    obs_id: str,
    identifier: str,
    resource: dict[str, Any],
    resident: str | None,
    when: datetime,
    code: str,
    value: float | None,
    unit: str | None,
    components: dict[str, float] | None,
    device: str,
    status: str = "final",
) -> Stored:
    resource["status"] = status
    await conn.execute(
        """INSERT INTO observation (id, effective_at, resident_id, code, code_system, value, unit,
               component_values, device_id, gateway_id, centre_id, status, identifier, remainder,
               received_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'yaksu-gw-1', 'yaksu', %s, %s,
                   %s::jsonb::text, %s)""",
        (
            obs_id,
            when,
            resident,
            code,
            LOINC,
            value,
            unit,
            json.dumps(components) if components else None,
            device,
            status,
            identifier,
            json.dumps(resource, ensure_ascii=False),
            when,
        ),
    )
    await conn.execute(
        "INSERT INTO observation_identity (observation_id, key_time, effective_at)"
        " VALUES (%s, %s, %s)",
        (obs_id, identity_time(identifier), when),
    )
    return Stored(obs_id, identifier, resource)


async def blood_pressure(
    conn: AsyncConnection[Any],
    resident: str | None,
    when: datetime,
    systolic: int,
    diastolic: int,
    *,
    device: str = "C4:7C:8D:6A:1B:22",
    status: str = "final",
) -> Stored:
    obs_id, identifier, resource = _base(
        resident,
        when,
        "85354-9",
        "150020",
        "Blood pressure panel with all children optional",
        "vital-signs",
        device,
    )
    resource["component"] = [
        {
            "code": {
                "coding": [{"system": LOINC, "code": "8480-6"}, {"system": MDC, "code": "150021"}]
            },
            "valueQuantity": _quantity(systolic, "mm[Hg]"),
        },
        {
            "code": {
                "coding": [{"system": LOINC, "code": "8462-4"}, {"system": MDC, "code": "150022"}]
            },
            "valueQuantity": _quantity(diastolic, "mm[Hg]"),
        },
    ]
    return await _insert(
        conn,
        obs_id=obs_id,
        identifier=identifier,
        resource=resource,
        resident=resident,
        when=when,
        code="85354-9",
        value=None,
        unit=None,
        components={"8480-6": systolic, "8462-4": diastolic},
        device=device,
        status=status,
    )


async def simple(
    conn: AsyncConnection[Any],
    resident: str | None,
    when: datetime,
    kind: str,
    value: float,
    *,
    device: str = "D0:39:72:AA:10:01",
) -> Stored:
    """glucose (mg/dL), weight (kg), body_fat (%), muscle_mass (kg)."""
    loinc, mdc, display, category, unit = {
        "glucose": (
            "41653-7",
            "160184",
            "Glucose in Capillary blood by Glucometer",
            "laboratory",
            "mg/dL",
        ),
        "weight": ("29463-7", "188736", "Body weight", "vital-signs", "kg"),
        "body_fat": ("41982-0", "188748", "Percentage of body fat Measured", "exam", "%"),
        "muscle_mass": ("73964-9", "188776", "Body muscle mass Calculated", "exam", "kg"),
    }[kind]
    obs_id, identifier, resource = _base(resident, when, loinc, mdc, display, category, device)
    resource["valueQuantity"] = _quantity(value, unit)
    return await _insert(
        conn,
        obs_id=obs_id,
        identifier=identifier,
        resource=resource,
        resident=resident,
        when=when,
        code=loinc,
        value=value,
        unit=unit,
        components=None,
        device=device,
    )
