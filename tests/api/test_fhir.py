"""The FHIR REST API against the real database, with responses checked against R4B models."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient

from ingest.store import registry
from tests.api import readings
from tests.api.conftest import Api
from tests.api.world import IN_HWANGHAK, IN_YAKSU, NO_LIAISON, WITHDRAWN

pytestmark = pytest.mark.db

SEOUL = ZoneInfo("Asia/Seoul")
FHIR_JSON = "application/fhir+json"
DAY0 = datetime(2026, 3, 1, 8, 30, tzinfo=SEOUL)


def fhir_ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body: dict[str, Any] = response.json()
    return body


def outcome(response: Any, status: int) -> OperationOutcome:
    body = fhir_ok(response, status)
    return OperationOutcome.model_validate(body)


@pytest.fixture
def ten_days(api: Api) -> list[readings.Stored]:
    """One BP reading a day at 08:30 Seoul for 2026-03-01..10 for R0000001 (systolic 120+day)."""

    async def work(conn: Any) -> list[readings.Stored]:
        return [
            await readings.blood_pressure(conn, IN_YAKSU, DAY0 + timedelta(days=d), 120 + d, 80)
            for d in range(10)
        ]

    return api.db(work)


def entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", [])]


def test_metadata_is_a_truthful_capability_statement(api: Api) -> None:
    body = fhir_ok(api.client.get("/fhir/metadata"))
    statement = CapabilityStatement.model_validate(body)
    assert statement.fhirVersion == "4.0.1"
    resources = {r.type: r for r in statement.rest[0].resource}
    assert "Observation" in resources
    search = {p.name for p in resources["Observation"].searchParam}
    assert {
        "patient",
        "subject",
        "code",
        "category",
        "date",
        "device",
        "identifier",
        "_count",
        "_sort",
    } <= search
    # every advertised read answers (404 for an unknown id, not 405 or a route miss)
    for name in resources:
        if name == "AuditEvent":
            continue
        response = api.client.get(f"/fhir/{name}/does-not-exist", headers=api.bearer("A01"))
        assert response.status_code == 404, name
        assert outcome(response, 404).issue[0].code == "not-found"


def test_requests_without_credentials_get_401_outcome(api: Api) -> None:
    response = api.client.get(f"/fhir/Patient/{IN_YAKSU}")
    assert outcome(response, 401).issue[0].code == "login"
    assert response.headers["www-authenticate"] == "Bearer"
    bad = api.client.get(f"/fhir/Patient/{IN_YAKSU}", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


def test_patient_read_in_and_out_of_scope(api: Api) -> None:
    body = fhir_ok(api.client.get(f"/fhir/Patient/{IN_YAKSU}", headers=api.bearer("N01")))
    patient = Patient.model_validate(body)
    assert patient.id == IN_YAKSU
    assert patient.gender == "female"
    assert str(patient.birthDate) == "1948-03-02"
    assert "941000000017" not in json.dumps(body)  # the card number is a credential
    denied = api.client.get(f"/fhir/Patient/{IN_HWANGHAK}", headers=api.bearer("N01"))
    assert outcome(denied, 403).issue[0].code == "forbidden"
    missing = api.client.get("/fhir/Patient/R9999999", headers=api.bearer("N01"))
    assert outcome(missing, 403).issue[0].code == "forbidden"  # one answer (issue 13.6)


def test_patient_carries_contacts_following_kr_core(api: Api) -> None:
    """Phones (Patient.telecom), the road-name address in the 동 (KR Core extension),
    emergency contact / guardian (Patient.contact) and living alone, as the registry holds them
    (tests/api/world.py CONTACTS)."""
    body = fhir_ok(api.client.get(f"/fhir/Patient/{IN_YAKSU}", headers=api.bearer("N01")))
    Patient.model_validate(body)
    assert body["meta"]["profile"] == [
        "http://www.hl7korea.or.kr/fhir/krcore/StructureDefinition/krcore-patient"
    ]
    assert body["telecom"] == [
        {"system": "phone", "value": "010-0000-1001", "use": "mobile", "rank": 1},
        {"system": "phone", "value": "02-0000-2001", "use": "home", "rank": 2},
    ]
    (address,) = body["address"]
    assert address["text"] == "서울특별시 중구 다산로 11, 101호 (약수동)"
    (road,) = address["extension"]
    assert road["url"].endswith("/krcore-roadNameAddress")
    parts = {e["url"]: e["valueString"] for e in road["extension"]}
    assert parts == {
        "district": "서울특별시 중구",
        "roadName": "다산로",
        "detailedAddress": "11, 101호",
        "complements": "약수동",
    }
    (contact,) = body["contact"]
    assert contact["name"]["text"] == "보호자1"
    assert contact["telecom"] == [{"system": "phone", "value": "010-0000-3001", "use": "mobile"}]
    codes = {(c["system"].rsplit("/", 1)[1], c["code"]) for r in contact["relationship"]
             for c in r.get("coding", [])}  # fmt: skip
    assert codes == {("v2-0131", "C"), ("v3-RoleCode", "DAUC"), ("v3-RoleCode", "GUARD")}
    (alone,) = body["extension"]
    assert alone["valueBoolean"] is True
    # no home phone: the mobile alone
    other = fhir_ok(api.client.get(f"/fhir/Patient/{WITHDRAWN}", headers=api.bearer("N01")))
    assert [(t["use"], t["rank"]) for t in other["telecom"]] == [("mobile", 1)]
    assert other["extension"][0]["valueBoolean"] is False


def test_search_by_patient_serves_stored_resources_verbatim(api: Api, ten_days) -> None:
    body = fhir_ok(
        api.client.get(
            f"/fhir/Observation?patient={IN_YAKSU}&_count=100", headers=api.bearer("N01")
        )
    )
    bundle = Bundle.model_validate(body)
    assert bundle.type == "searchset"
    got = entries(body)
    assert got == [s.resource for s in reversed(ten_days)]  # newest first by default
    for resource in got:
        Observation.model_validate(resource)
    assert body["entry"][0]["fullUrl"].endswith(f"/fhir/Observation/{ten_days[-1].id}")
    assert [link["relation"] for link in body["link"]] == ["self"]


#: (date parameters, expected day indexes of ten_days). FHIR R4 §3.1.1.4.2: a value stands
#: for its whole range at its precision (a local day for a date), compared by the prefix.
DATE_CASES: list[tuple[list[str], list[int]]] = [
    (["2026-03-05"], [4]),
    (["eq2026-03-05"], [4]),
    (["ge2026-03-05"], [4, 5, 6, 7, 8, 9]),
    (["gt2026-03-05"], [5, 6, 7, 8, 9]),
    (["le2026-03-03"], [0, 1, 2]),
    (["lt2026-03-03"], [0, 1]),
    (["ge2026-03-03", "lt2026-03-06"], [2, 3, 4]),
    (["2026-03"], list(range(10))),
    (["2026-02"], []),
    (["ge2026-03-05T08:30:00+09:00"], [4, 5, 6, 7, 8, 9]),
    (["gt2026-03-05T08:30:00+09:00"], [5, 6, 7, 8, 9]),
    (["lt2026-03-04T23:30:00Z"], [0, 1, 2, 3]),  # 23:30Z is 08:30 Seoul on 03-05: not before
]


def test_date_prefixes(api: Api, ten_days) -> None:
    for dates, expected_days in DATE_CASES:
        query = "&".join(f"date={d}" for d in dates).replace("+", "%2B")
        body = fhir_ok(
            api.client.get(
                f"/fhir/Observation?subject=Patient/{IN_YAKSU}&{query}&_sort=date",
                headers=api.bearer("N01"),
            )
        )
        got = [r["id"] for r in entries(body)]
        assert got == [ten_days[d].id for d in expected_days], dates


def test_paging_with_next_links_visits_every_row_once(api: Api, ten_days) -> None:
    url: str | None = f"/fhir/Observation?patient={IN_YAKSU}&_count=3"
    seen: list[str] = []
    pages = 0
    while url:
        body = fhir_ok(api.client.get(url, headers=api.bearer("N01")))
        Bundle.model_validate(body)
        seen += [r["id"] for r in entries(body)]
        links = {link["relation"]: link["url"] for link in body["link"]}
        url = links.get("next")
        pages += 1
    assert pages == 4
    assert seen == [s.id for s in reversed(ten_days)]


def test_search_by_code_category_device_identifier(api: Api) -> None:
    async def work(conn: Any) -> dict[str, readings.Stored]:
        await registry.upsert_devices(
            conn, [registry.Device("AA:BB:CC:00:00:01", kind="blood-pressure")]
        )
        return {
            "bp": await readings.blood_pressure(
                conn, IN_YAKSU, DAY0, 131, 85, device="AA:BB:CC:00:00:01"
            ),
            "glu": await readings.simple(conn, IN_YAKSU, DAY0 + timedelta(hours=1), "glucose", 104),
            "wt": await readings.simple(conn, IN_YAKSU, DAY0 + timedelta(hours=2), "weight", 61.4),
        }

    stored = api.db(work)

    def ids(query: str) -> set[str]:
        body = fhir_ok(
            api.client.get(
                f"/fhir/Observation?patient={IN_YAKSU}&{query}", headers=api.bearer("N01")
            )
        )
        return {r["id"] for r in entries(body)}

    assert ids("code=http://loinc.org|85354-9") == {stored["bp"].id}
    assert ids("code=urn:iso:std:iso:11073:10101|150020") == {stored["bp"].id}  # MDC coding
    assert ids("code=41653-7,29463-7") == {stored["glu"].id, stored["wt"].id}
    assert ids("code=http://snomed.info/sct|85354-9") == set()
    assert ids("category=vital-signs") == {stored["bp"].id, stored["wt"].id}
    assert ids(
        "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
    ) == {stored["glu"].id}
    written = stored["bp"].resource["device"]["reference"]  # what the server writes
    assert written == "Device/phd-AABBCC000001"
    assert ids(f"device={written}") == {stored["bp"].id}
    assert ids("device=phd-AABBCC000001") == {stored["bp"].id}
    assert ids(f"identifier={stored['glu'].identifier}") == {stored["glu"].id}
    assert ids(f"identifier={readings.PHD_IDENT}|{stored['wt'].identifier}") == {stored["wt"].id}
    assert ids(f"identifier=urn:other|{stored['wt'].identifier}") == set()


def test_search_without_patient_is_limited_to_scope(api: Api) -> None:
    async def work(conn: Any) -> dict[str, str]:
        return {
            rid: (await readings.blood_pressure(conn, rid, DAY0, 128, 82)).id
            for rid in (IN_YAKSU, IN_HWANGHAK, NO_LIAISON)
        }

    stored = api.db(work)
    body = fhir_ok(api.client.get("/fhir/Observation?code=85354-9", headers=api.bearer("N02")))
    assert {r["id"] for r in entries(body)} == {stored[IN_HWANGHAK]}
    body = fhir_ok(api.client.get("/fhir/Observation?code=85354-9", headers=api.bearer("T01")))
    assert {r["id"] for r in entries(body)} == {stored[IN_YAKSU], stored[NO_LIAISON]}
    denied = api.client.get(f"/fhir/Observation?patient={IN_YAKSU}", headers=api.bearer("N02"))
    assert outcome(denied, 403).issue[0].code == "forbidden"


def test_bad_search_parameters_are_400_outcomes(api: Api) -> None:
    for query in (
        "date=yesterday",
        "date=ne2026-01-01",
        "_count=-1",
        "_count=x",
        "_sort=code",
        "_cursor=!!!",
        "patient=Device/x",
        "code=http://loinc.org|",
    ):
        response = api.client.get(f"/fhir/Observation?{query}", headers=api.bearer("A01"))
        assert outcome(response, 400).issue[0].code == "invalid", query


def test_lastn_returns_newest_per_code(api: Api) -> None:
    async def work(conn: Any) -> dict[str, list[str]]:
        bp = [
            (await readings.blood_pressure(conn, IN_YAKSU, DAY0 + timedelta(days=d), 125, 80)).id
            for d in range(3)
        ]
        glu = [
            (
                await readings.simple(
                    conn, IN_YAKSU, DAY0 + timedelta(days=d, hours=1), "glucose", 99
                )
            ).id
            for d in range(2)
        ]
        wt = [(await readings.simple(conn, IN_YAKSU, DAY0, "weight", 60.0)).id]
        await readings.blood_pressure(conn, NO_LIAISON, DAY0 + timedelta(days=9), 150, 95)
        return {"bp": bp, "glu": glu, "wt": wt}

    ids = api.db(work)
    body = fhir_ok(
        api.client.get(
            f"/fhir/Observation/$lastn?patient={IN_YAKSU}&max=2", headers=api.bearer("N01")
        )
    )
    Bundle.model_validate(body)
    got = [r["id"] for r in entries(body)]
    assert sorted(got) == sorted(
        [ids["bp"][2], ids["bp"][1], ids["glu"][1], ids["glu"][0], ids["wt"][0]]
    )
    body = fhir_ok(
        api.client.get(
            f"/fhir/Observation/$lastn?patient={IN_YAKSU}&code=85354-9", headers=api.bearer("N01")
        )
    )
    assert [r["id"] for r in entries(body)] == [ids["bp"][2]]
    body = fhir_ok(
        api.client.get(
            f"/fhir/Observation/$lastn?patient={IN_YAKSU}&category=laboratory",
            headers=api.bearer("N01"),
        )
    )
    assert [r["id"] for r in entries(body)] == [ids["glu"][1]]
    missing = api.client.get("/fhir/Observation/$lastn", headers=api.bearer("N01"))
    assert outcome(missing, 400).issue[0].code == "invalid"


def test_lastn_leaves_out_entered_in_error(api: Api) -> None:
    async def work(conn: Any) -> tuple[str, str]:
        good = await readings.blood_pressure(conn, IN_YAKSU, DAY0, 125, 80)
        await readings.blood_pressure(
            conn, IN_YAKSU, DAY0 + timedelta(hours=1), 99, 60, status="entered-in-error"
        )
        return good.id, ""

    good, _ = api.db(work)
    body = fhir_ok(
        api.client.get(f"/fhir/Observation/$lastn?patient={IN_YAKSU}", headers=api.bearer("N01"))
    )
    assert [r["id"] for r in entries(body)] == [good]


def test_observation_read(api: Api, ten_days) -> None:
    body = fhir_ok(api.client.get(f"/fhir/Observation/{ten_days[0].id}", headers=api.bearer("N01")))
    assert body == ten_days[0].resource
    Observation.model_validate(body)
    denied = api.client.get(f"/fhir/Observation/{ten_days[0].id}", headers=api.bearer("N02"))
    assert denied.status_code == 403


def test_device_read_answers_the_id_observations_reference(api: Api) -> None:
    async def work(conn: Any) -> None:
        device = registry.Device(
            "C4:7C:8D:6A:1B:22",
            kind="blood-pressure",
            address="C4:7C:8D:6A:1B:22",
            manufacturer="A&D Medical",
            model="UA-651BLE",
            serial="5120034871",
            firmware="1.2",
            station_id="yaksu-station-1",
        )
        await registry.upsert_devices(conn, [device])

    api.db(work)
    # the id ingest writes into Observation.device for this device (PHD: EUI-48 hex, no dashes)
    url = "/fhir/Device/phd-C47C8D6A1B22"
    body = fhir_ok(api.client.get(url, headers=api.bearer("N01")))
    device = Device.model_validate(body)
    assert device.id == "phd-C47C8D6A1B22"
    assert device.manufacturer == "A&D Medical"
    assert device.identifier[0].system == "http://hl7.org/fhir/sid/eui-48/bluetooth"
    assert device.identifier[0].value == "C4-7C-8D-6A-1B-22"
    gateway = api.client.get(url, headers=api.bearer("G-yaksu-1"))
    assert gateway.status_code == 200
    liaison = api.client.get(url, headers=api.bearer("L10-01"))
    assert liaison.status_code == 403


def test_reads_are_audited_and_admins_can_search_the_trail(api: Api, ten_days) -> None:
    api.client.get(f"/fhir/Observation?patient={IN_YAKSU}&code=85354-9", headers=api.bearer("N01"))
    api.client.get(f"/fhir/Patient/{IN_HWANGHAK}", headers=api.bearer("N01"))  # denied
    body = fhir_ok(
        api.client.get(f"/fhir/AuditEvent?patient={IN_YAKSU}&agent=N01", headers=api.bearer("A01"))
    )
    Bundle.model_validate(body)
    events = entries(body)
    search = [e for e in events if e["entity"][0]["description"] == "Observation?patient&code"]
    assert len(search) == 1
    assert search[0]["agent"][0]["purposeOfUse"][0]["coding"][0]["code"] == "TREAT"
    assert search[0]["entity"][0]["what"]["reference"] == f"Patient/{IN_YAKSU}"
    denied = fhir_ok(
        api.client.get(
            f"/fhir/AuditEvent?patient={IN_HWANGHAK}&agent=N01", headers=api.bearer("A01")
        )
    )
    assert [e["outcome"] for e in entries(denied)] == ["4"]
    assert api.client.get("/fhir/AuditEvent", headers=api.bearer("N01")).status_code == 403
    # nothing personal in what the trail says was read
    text = json.dumps(events, ensure_ascii=False)
    assert "김하늘" not in text
    assert "941000000017" not in text
