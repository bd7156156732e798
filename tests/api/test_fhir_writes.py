"""FHIR writes as R4 http.html defines them: create (201 + Location), conditional create
(If-None-Exist / ifNoneExist: 201 then 200), batch and transaction Bundles, what the client sent
is what it finds, and a conflicting value is 409, never silently dropped."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation

from tests.api.conftest import Api
from tests.api.test_fhir import entries, fhir_ok
from tests.api.world import IN_HWANGHAK, IN_YAKSU

pytestmark = pytest.mark.db

FHIR_JSON = "application/fhir+json"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CLIENT_SYSTEM = "urn:example:clinic-emr"
SEOUL = ZoneInfo("Asia/Seoul")


def when(hours_ago: int) -> str:
    return (datetime.now(SEOUL) - timedelta(hours=hours_ago)).replace(microsecond=0).isoformat()


def single(
    code: str, value: float, unit: str, at: str, *, ident: str | None = None
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{IN_YAKSU}"},
        "effectiveDateTime": at,
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }
    if ident is not None:
        resource["identifier"] = [{"system": CLIENT_SYSTEM, "value": ident}]
    return resource


def post(api: Api, resource: dict[str, Any], **headers: str) -> Any:
    return api.client.post(
        "/fhir/Observation",
        json=resource,
        headers={**api.bearer("N01"), "Content-Type": FHIR_JSON, **headers},
    )


def test_create_is_201_with_location_and_the_clients_elements_kept(api: Api) -> None:
    resource = single("2339-0", 104, "mg/dL", when(2), ident="lab-778")
    created = post(api, resource)
    body = fhir_ok(created, 201)
    Observation.model_validate(body)
    assert created.headers["location"].endswith(f"/fhir/Observation/{body['id']}")
    assert body["meta"]["versionId"] == "1"
    assert created.headers["etag"] == 'W/"1"'
    assert body["meta"]["lastUpdated"].endswith("+09:00")
    codes = {(c["system"], c["code"]) for c in body["code"]["coding"]}
    assert (LOINC, "2339-0") in codes  # the client's code, not replaced by 41653-7
    assert {"system": CLIENT_SYSTEM, "value": "lab-778"} in body["identifier"]
    headers = api.bearer("N01")
    by_code = fhir_ok(
        api.client.get(f"/fhir/Observation?patient={IN_YAKSU}&code=2339-0", headers=headers)
    )
    assert [r["id"] for r in entries(by_code)] == [body["id"]]
    by_ident = fhir_ok(
        api.client.get(
            f"/fhir/Observation?patient={IN_YAKSU}&identifier={CLIENT_SYSTEM}|lab-778",
            headers=headers,
        )
    )
    assert [r["id"] for r in entries(by_ident)] == [body["id"]]
    read = fhir_ok(api.client.get(created.headers["location"], headers=headers))
    assert read["id"] == body["id"]


def test_conditional_create_twice_is_201_then_200(api: Api) -> None:
    resource = single("4548-4", 6.8, "%", when(3), ident="a1c-1")
    condition = f"identifier={CLIENT_SYSTEM}|a1c-1"
    first = post(api, resource, **{"If-None-Exist": condition})
    body = fhir_ok(first, 201)
    again = dict(resource, effectiveDateTime=when(1))  # a resend with a changed time
    second = post(api, again, **{"If-None-Exist": condition})
    assert fhir_ok(second, 200)["id"] == body["id"]
    assert second.headers["location"] == first.headers["location"]


@pytest.mark.parametrize(
    ("code", "value", "unit"),
    [
        ("8867-4", 72, "/min"),  # a standalone heart rate
        ("4548-4", 7.1, "%"),  # HbA1c
        ("2571-8", 180, "mg/dL"),  # triglycerides
        ("2085-9", 38, "mg/dL"),  # HDL
        ("44261-6", 12, "{score}"),  # PHQ-9 total
        ("56115-9", 91, "cm"),  # waist
    ],
)
def test_every_single_value_the_risk_engine_reads_is_accepted(
    api: Api, code: str, value: float, unit: str
) -> None:
    body = fhir_ok(post(api, single(code, value, unit, when(5))), 201)
    Observation.model_validate(body)
    assert body["valueQuantity"]["code"] == unit


def test_another_value_under_the_same_identity_is_409(api: Api) -> None:
    at = when(6)
    fhir_ok(post(api, single("8867-4", 70, "/min", at)), 201)
    same = post(api, single("8867-4", 70, "/min", at))
    assert same.status_code == 200  # the same reading again: nothing new
    other = post(api, single("8867-4", 95, "/min", at))
    body = fhir_ok(other, 409)
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "conflict"


def test_batch_entries_succeed_or_fail_on_their_own(api: Api) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": single("2085-9", 41, "mg/dL", when(7)),
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": dict(
                    single("2085-9", 41, "mg/dL", when(7)),
                    subject={"reference": f"Patient/{IN_HWANGHAK}"},
                ),
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": single("9999-9", 1, "mg/dL", when(7)),
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    response = api.client.post(
        "/fhir", json=bundle, headers={**api.bearer("N01"), "Content-Type": FHIR_JSON}
    )
    body = fhir_ok(response)
    Bundle.model_validate(body)
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == ["201 Created", "403 Forbidden", "400 Bad Request"]
    assert body["entry"][2]["response"]["outcome"]["resourceType"] == "OperationOutcome"


def test_transaction_if_none_exist_honours_the_clients_identifier(api: Api) -> None:
    def bundle(at: str, value: float) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": single("2339-0", value, "mg/dL", at, ident="glu-9"),
                    "request": {
                        "method": "POST",
                        "url": "Observation",
                        "ifNoneExist": f"identifier={CLIENT_SYSTEM}|glu-9",
                    },
                }
            ],
        }

    headers = {**api.bearer("N01"), "Content-Type": FHIR_JSON}
    first = fhir_ok(api.client.post("/fhir", json=bundle(when(8), 99), headers=headers))
    assert first["entry"][0]["response"]["status"] == "201 Created"
    repeat = fhir_ok(api.client.post("/fhir", json=bundle(when(4), 99), headers=headers))
    assert repeat["entry"][0]["response"]["status"] == "200 OK"
    assert repeat["entry"][0]["response"]["location"] == first["entry"][0]["response"]["location"]
