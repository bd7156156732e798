"""Hand-entered readings: the FHIR transaction Bundle and the resident page's form, through
ingest's transform and identity de-duplication."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation

from tests.api.conftest import Api
from tests.api.world import IN_HWANGHAK, IN_YAKSU

pytestmark = pytest.mark.db

FHIR_JSON = "application/fhir+json"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def bp(resident: str, when: str, systolic: int, diastolic: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
        "subject": {"reference": f"Patient/{resident}"},
        "effectiveDateTime": when,
        "component": [
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "valueQuantity": {
                    "value": systolic,
                    "unit": "mmHg",
                    "system": UCUM,
                    "code": "mm[Hg]",
                },
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                "valueQuantity": {
                    "value": diastolic,
                    "unit": "mmHg",
                    "system": UCUM,
                    "code": "mm[Hg]",
                },
            },
        ],
    }


def weight(resident: str, when: str, text_value: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
        "subject": {"reference": f"Patient/{resident}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": "__VALUE__", "unit": "kg", "system": UCUM, "code": "kg"},
        "_value_text": text_value,
    }


def bundle_text(*entries: tuple[dict[str, Any], str | None]) -> str:
    """A transaction Bundle as JSON text; weight values are spliced in as typed (62.40)."""
    import json

    parts = []
    for resource, condition in entries:
        resource = copy.deepcopy(resource)
        value_text = resource.pop("_value_text", None)
        request = {"method": "POST", "url": "Observation"}
        if condition:
            request["ifNoneExist"] = condition
        text = json.dumps({"resource": resource, "request": request})
        if value_text is not None:
            text = text.replace('"__VALUE__"', value_text)
        parts.append(text)
    return '{"resourceType":"Bundle","type":"transaction","entry":[' + ",".join(parts) + "]}"


def post(api: Api, text: str, user: str = "N01") -> Any:
    return api.client.post(
        "/fhir", content=text, headers={**api.bearer(user), "Content-Type": FHIR_JSON}
    )


def count(api: Api) -> int:
    async def work(conn: Any) -> int:
        cur = await conn.execute("SELECT count(*) FROM observation")
        row = await cur.fetchone()
        return int(row[0])

    return api.db(work)


def test_transaction_stores_through_the_ingest_path_and_dedups(api: Api) -> None:
    text = bundle_text(
        (bp(IN_YAKSU, "2026-03-04T10:15:00+09:00", 138, 86), None),
        (weight(IN_YAKSU, "2026-03-04T10:20:00+09:00", "62.40"), None),
    )
    response = post(api, text)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    result = Bundle.model_validate(response.json())
    assert result.type == "transaction-response"
    assert [e.response.status for e in result.entry] == ["201 Created", "201 Created"]
    stored = count(api)
    assert stored >= 2
    # the stored panel, as served, is a valid R4 Observation entered by the nurse
    location = result.entry[0].response.location
    body = api.client.get(f"/fhir/{location}", headers=api.bearer("N01")).json()
    obs = Observation.model_validate(body)
    assert obs.code.coding[0].code == "85354-9" or any(c.code == "85354-9" for c in obs.code.coding)
    assert body["subject"]["reference"] == f"Patient/{IN_YAKSU}"
    assert body["performer"] == [{"reference": "Practitioner/N01"}]
    assert "device" not in body  # manual entry is out of PHD scope (mapping §2.6)
    assert {c["valueQuantity"]["value"] for c in body["component"]} >= {138, 86}
    weight_location = result.entry[1].response.location
    raw = api.client.get(f"/fhir/{weight_location}", headers=api.bearer("N01")).text
    assert '"value":62.40' in raw.replace(" ", "")  # the typed precision is kept
    # the same Bundle again: nothing new is stored
    again = Bundle.model_validate(post(api, text).json())
    assert [e.response.status for e in again.entry] == ["200 OK", "200 OK"]
    assert [e.response.location for e in again.entry] == [e.response.location for e in result.entry]
    assert count(api) == stored


def test_if_none_exist_matching_an_identifier_writes_nothing(api: Api) -> None:
    first = Bundle.model_validate(
        post(api, bundle_text((bp(IN_YAKSU, "2026-03-05T09:00:00+09:00", 130, 80), None))).json()
    )
    location = first.entry[0].response.location
    served = api.client.get(f"/fhir/{location}", headers=api.bearer("N01")).json()
    identifier = served["identifier"][0]
    stored = count(api)
    condition = f"identifier={identifier['system']}|{identifier['value']}"
    # a different reading, but the client says "only if this identifier does not exist"
    text = bundle_text((bp(IN_YAKSU, "2026-03-05T09:30:00+09:00", 150, 95), condition))
    result = Bundle.model_validate(post(api, text).json())
    assert result.entry[0].response.status == "200 OK"
    assert result.entry[0].response.location == location
    assert count(api) == stored


def test_transaction_is_all_or_nothing(api: Api) -> None:
    text = bundle_text(
        (bp(IN_YAKSU, "2026-03-06T09:00:00+09:00", 128, 79), None),
        (bp(IN_HWANGHAK, "2026-03-06T09:05:00+09:00", 128, 79), None),  # not N01's resident
    )
    response = post(api, text)
    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"
    assert count(api) == 0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.update(type="collection"), "transaction or batch"),
        (lambda b: b["entry"][0]["request"].update(method="PUT"), "POST Observation"),
        (lambda b: b["entry"][0]["resource"].pop("subject"), "subject"),
        (
            lambda b: b["entry"][0]["resource"].update(effectiveDateTime="2026-03-06T09:00:00"),
            "time zone",
        ),
        (lambda b: b["entry"][0]["resource"]["component"].pop(), "diastolic"),
        (lambda b: b["entry"][0]["request"].update(ifNoneExist="code=85354-9"), "ifNoneExist"),
    ],
)
def test_malformed_bundles_are_400_outcomes(api: Api, mutate, message: str) -> None:
    import json

    bundle = json.loads(bundle_text((bp(IN_YAKSU, "2026-03-06T09:00:00+09:00", 120, 80), None)))
    mutate(bundle)
    response = post(api, json.dumps(bundle))
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert message in outcome["issue"][0]["diagnostics"]


def test_roles_without_write_access_are_refused(api: Api) -> None:
    text = bundle_text((bp(IN_YAKSU, "2026-03-06T09:00:00+09:00", 120, 80), None))
    for user in ("L10-01", "G-yaksu-1", "S-yaksu-1"):
        assert post(api, text, user).status_code == 403, user
    assert count(api) == 0


def test_resident_page_form_enters_a_reading(api: Api) -> None:
    csrf = api.login_as("N01")
    form = {
        "csrf_token": csrf,
        "kind": "glucose",
        "measured_at": "2026-03-07T08:10",
        "glucose": "131",
        "meal": "fasting",
    }
    response = api.client.post(f"/residents/{IN_YAKSU}/readings", data=form)
    assert response.status_code == 303
    assert response.headers["location"].endswith("m=reading")
    again = api.client.post(f"/residents/{IN_YAKSU}/readings", data=form)
    assert again.headers["location"].endswith("m=reading-duplicate")
    bad = api.client.post(f"/residents/{IN_YAKSU}/readings", data={**form, "glucose": "많음"})
    assert bad.status_code == 400

    async def stored(conn: Any) -> list[tuple[Any, ...]]:
        cur = await conn.execute("SELECT code, value, context->>'meal', setting FROM observation")
        return await cur.fetchall()

    assert api.db(stored) == [("41653-7", 131.0, "fasting", "visit")]
