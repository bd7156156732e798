"""The FHIR REST rules of issue 16: references that resolve, search that says what it did,
versions, content negotiation. Expected behaviour is the R4 specification's (http.html,
search.html), not our own output."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.task import Task

from ingest.fhir import clinical as fhir_clinical
from ingest.fhir.encoding import validate
from ingest.store import clinical, registry
from tests.api import readings
from tests.api.conftest import Api
from tests.api.test_fhir import DAY0, entries, fhir_ok
from tests.api.world import IN_HWANGHAK, IN_YAKSU

pytestmark = pytest.mark.db
FHIR_JSON = "application/fhir+json"


def outcome(response: Any, status: int) -> OperationOutcome:
    return OperationOutcome.model_validate(fhir_ok(response, status))


@pytest.fixture
def three(api: Api) -> list[readings.Stored]:
    async def work(conn: Any) -> list[readings.Stored]:
        return [
            await readings.blood_pressure(conn, IN_YAKSU, DAY0 + timedelta(days=d), 130 + d, 80)
            for d in range(3)
        ]

    return api.db(work)


def self_url(bundle: dict[str, Any]) -> str:
    return next(link["url"] for link in bundle["link"] if link["relation"] == "self")


# --- search rules (R4 search.html §3.1.1.4 "handling=strict / lenient") ----------------------


def test_unknown_parameters_are_dropped_from_the_self_link_when_lenient(api: Api, three) -> None:
    url = f"/fhir/Observation?patient={IN_YAKSU}&foo=bar&code:text=혈압&_elements=id"
    body = fhir_ok(api.client.get(url, headers=api.bearer("N01")))
    assert len(entries(body)) == 3  # ignored, so nothing was filtered
    link = self_url(body)
    assert f"patient={IN_YAKSU}" in link
    assert "foo" not in link
    assert "code%3Atext" not in link
    assert "_elements" not in link


@pytest.mark.parametrize("name", ["foo", "code:text", "_elements", "component-code"])
def test_unknown_parameters_are_400_naming_them_when_strict(api: Api, name: str) -> None:
    response = api.client.get(
        f"/fhir/Observation?patient={IN_YAKSU}&{name}=x",
        headers={**api.bearer("N01"), "Prefer": "handling=strict"},
    )
    issue = outcome(response, 400).issue[0]
    assert issue.code == "invalid"
    assert name in (issue.diagnostics or "")


def test_id_count_zero_summary_count_and_total(api: Api, three) -> None:
    headers = api.bearer("N01")
    base = f"/fhir/Observation?patient={IN_YAKSU}"
    counted = fhir_ok(api.client.get(f"{base}&_summary=count", headers=headers))
    assert counted["total"] == 3
    assert "entry" not in counted
    zero = fhir_ok(api.client.get(f"{base}&_count=0&_total=accurate", headers=headers))
    assert (zero["total"], zero.get("entry")) == (3, None)
    paged = fhir_ok(api.client.get(f"{base}&_count=2&_total=accurate", headers=headers))
    assert paged["total"] == 3
    assert len(entries(paged)) == 2
    one = fhir_ok(api.client.get(f"{base}&_id={three[1].id}", headers=headers))
    assert [r["id"] for r in entries(one)] == [three[1].id]


def test_include_patient_and_device_resolve_what_the_page_references(api: Api) -> None:
    async def work(conn: Any) -> readings.Stored:
        await registry.upsert_devices(
            conn, [registry.Device("AA:BB:CC:00:00:07", kind="blood-pressure")]
        )
        return await readings.blood_pressure(
            conn, IN_YAKSU, DAY0, 131, 85, device="AA:BB:CC:00:00:07"
        )

    stored = api.db(work)
    body = fhir_ok(
        api.client.get(
            f"/fhir/Observation?patient={IN_YAKSU}&_include=Observation:patient"
            "&_include=Observation:device",
            headers=api.bearer("N01"),
        )
    )
    Bundle.model_validate(body)
    modes = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in body["entry"]}
    assert modes == {("Observation", "match"), ("Patient", "include"), ("Device", "include")}
    device = next(e["resource"] for e in body["entry"] if e["resource"]["resourceType"] == "Device")
    assert f"Device/{device['id']}" == stored.resource["device"]["reference"]


def test_patient_practitioner_flag_and_task_searches(api: Api) -> None:
    made = api.db(lambda conn: _flag_with_tasks(conn, IN_YAKSU))
    headers = api.bearer("N01")
    patients = fhir_ok(api.client.get("/fhir/Patient?name=&_total=accurate", headers=headers))
    ids = {p["id"] for p in entries(patients)}
    assert IN_YAKSU in ids
    assert IN_HWANGHAK not in ids
    by_identifier = fhir_ok(
        api.client.get(
            f"/fhir/Patient?identifier=urn:daon:junggu:resident|{IN_YAKSU}", headers=headers
        )
    )
    assert [p["id"] for p in entries(by_identifier)] == [IN_YAKSU]
    staff = fhir_ok(api.client.get("/fhir/Practitioner?_id=N01", headers=headers))
    Practitioner.model_validate(entries(staff)[0])
    flags = fhir_ok(api.client.get(f"/fhir/Flag?patient={IN_YAKSU}&status=active", headers=headers))
    assert [f["id"] for f in entries(flags)] == [made["flag"]]
    tasks = fhir_ok(
        api.client.get(f"/fhir/Task?patient={IN_YAKSU}&status=requested", headers=headers)
    )
    assert {t["id"] for t in entries(tasks)} == {made["nurse_task"], made["liaison_task"]}
    liaison = fhir_ok(
        api.client.get(f"/fhir/Task?patient={IN_YAKSU}", headers=api.bearer("L10-01"))
    )
    assert {t["id"] for t in entries(liaison)} == {made["liaison_task"]}  # never clinical tasks
    assessments = fhir_ok(
        api.client.get(f"/fhir/RiskAssessment?patient={IN_YAKSU}", headers=headers)
    )
    assert [r["id"] for r in entries(assessments)] == [made["flag"]]
    for bundle in (patients, staff, flags, tasks, assessments):
        for resource in entries(bundle):
            validate(resource)


# --- references the server writes resolve ---------------------------------------------------


def test_gateway_and_staff_references_resolve(api: Api) -> None:
    stored = api.db(lambda conn: readings.blood_pressure(conn, IN_YAKSU, DAY0, 120, 80))
    del stored
    gateway = fhir_ok(api.client.get("/fhir/Device/phg-yaksu-gw-1", headers=api.bearer("N01")))
    model = Device.model_validate(gateway)
    assert model.id == "phg-yaksu-gw-1"
    assert model.meta.profile == ["http://hl7.org/fhir/uv/phd/StructureDefinition/PhgDevice"]
    other = api.client.get("/fhir/Device/phg-hwanghak-gw-1", headers=api.bearer("G-yaksu-1"))
    assert other.status_code == 403
    nurse = fhir_ok(api.client.get("/fhir/Practitioner/N01", headers=api.bearer("A01")))
    assert Practitioner.model_validate(nurse).identifier[0].value == "N01"
    station = api.client.get("/fhir/Practitioner/S-yaksu-1", headers=api.bearer("A01"))
    assert station.status_code == 404  # a kiosk account is not a practitioner
    assert (
        api.client.get("/fhir/Practitioner/N01", headers=api.bearer("G-yaksu-1")).status_code == 403
    )


# --- versions (R4 http.html: versionId, ETag, If-Match → 412, _history) ---------------------


def test_task_versions_etag_if_match_and_history(api: Api) -> None:
    made = api.db(lambda conn: _flag_with_tasks(conn, IN_YAKSU))
    url = f"/fhir/Task/{made['nurse_task']}"
    headers = api.bearer("N01")
    first = api.client.get(url, headers=headers)
    task = fhir_ok(first)
    assert first.headers["etag"] == 'W/"1"'
    assert task["meta"]["versionId"] == "1"
    assert task["meta"]["lastUpdated"].endswith("+09:00")
    put_headers = {**headers, "Content-Type": FHIR_JSON, "If-Match": 'W/"1"'}
    changed = api.client.put(url, json={**task, "status": "accepted"}, headers=put_headers)
    body = fhir_ok(changed)
    assert body["meta"]["versionId"] == "2"
    assert changed.headers["etag"] == 'W/"2"'
    assert "note" not in body  # no empty arrays
    stale = api.client.put(url, json={**task, "status": "in-progress"}, headers=put_headers)
    assert outcome(stale, 412).issue[0].code == "conflict"
    assert fhir_ok(api.client.get(url, headers=headers))["status"] == "accepted"  # unchanged
    history = fhir_ok(api.client.get(f"{url}/_history", headers=headers))
    Bundle.model_validate(history)
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert [e["resource"]["status"] for e in history["entry"]] == ["accepted", "requested"]
    old = fhir_ok(api.client.get(f"{url}/_history/1", headers=headers))
    assert Task.model_validate(old).status == "requested"
    flag_history = fhir_ok(api.client.get(f"/fhir/Flag/{made['flag']}/_history", headers=headers))
    assert [e["resource"]["meta"]["versionId"] for e in flag_history["entry"]] == ["1"]


# --- content negotiation and errors ---------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "accept"),
    [
        ("", "application/fhir+xml"),
        ("", "application/xml, text/xml"),
        ("?_format=xml", None),
        ("?_format=application/fhir%2Bxml", "application/fhir+json"),
    ],
)
def test_xml_is_406_with_an_operation_outcome(api: Api, query: str, accept: str | None) -> None:
    headers = {**api.bearer("N01"), **({"Accept": accept} if accept else {})}
    response = api.client.get(f"/fhir/metadata{query}", headers=headers)
    assert response.status_code == 406
    assert response.headers["content-type"].startswith(FHIR_JSON)
    text = OperationOutcome.model_validate(response.json()).issue[0].diagnostics or ""
    assert "JSON만" in text
    assert "only" in text


@pytest.mark.parametrize("fmt", ["json", "application/fhir%2Bjson", "application/json"])
def test_json_formats_are_served(api: Api, fmt: str) -> None:
    response = api.client.get(f"/fhir/metadata?_format={fmt}", headers={"Accept": "*/*"})
    CapabilityStatement.model_validate(fhir_ok(response))


def test_capability_statement_declares_what_the_routes_accept(api: Api) -> None:
    body = fhir_ok(api.client.get("/fhir/metadata"))
    statement = CapabilityStatement.model_validate(body)
    resources = {r.type: r for r in statement.rest[0].resource}
    for name in set(resources) - {"Subscription"}:  # (its own router: tests of its own)
        # an undeclared parameter is refused in strict mode on every search
        response = api.client.get(
            f"/fhir/{name}?not-a-parameter=1",
            headers={**api.bearer("A01"), "Prefer": "handling=strict"},
        )
        assert response.status_code == 400, name
    assert resources["Observation"].conditionalCreate is True
    assert resources["Task"].versioning == "versioned"
    assert set(resources["Observation"].searchInclude or []) >= {
        "Observation:patient",
        "Observation:device",
    }


async def _flag_with_tasks(conn: Any, rid: str) -> dict[str, str]:
    now = datetime.now(UTC)
    [flag_id] = await clinical.save_flags(
        conn,
        [
            clinical.FlagRow(
                id=None,
                resident_id=rid,
                rule="BP-HOME-HTN",
                rule_set="t",
                severity="routine",
                recipients=["nurse", "liaison"],
                state="open",
                opened_at=now,
                alerted_at=now,
                summary="가정혈압 평균 142/91",
            )
        ],
    )
    facts = fhir_clinical.FlagFacts(rid, "BP-HOME-HTN", "t", "routine", True, "s", now)
    await clinical.save_flag_resources(
        conn, [(flag_id, fhir_clinical.flag(facts), fhir_clinical.risk_assessment(facts))]
    )
    tasks = [
        clinical.TaskRow(
            identifier=f"{rid}-{role}-t",
            flag_id=flag_id,
            resident_id=rid,
            role=role,
            owner_id=None,
            priority="routine",
            status="requested",
            business_status="open",
            due_at=now,
            description="전화해 주세요",
            resource=fhir_clinical.task(
                fhir_clinical.TaskFacts(
                    identifier=f"{rid}-{role}-t",
                    status="requested",
                    business_status="open",
                    severity="routine",
                    code="follow-up",
                    description="전화해 주세요",
                    resident=rid,
                    authored_on=now,
                    due=now + timedelta(days=7),
                    role=role,
                )
            ),
            at=now,
        )
        for role in ("nurse", "liaison")
    ]
    await clinical.upsert_tasks(conn, tasks)
    cur = await conn.execute(
        "SELECT role, id::text FROM follow_up_task WHERE flag_id = %s", (flag_id,)
    )
    made = {f"{role}_task": task_id for role, task_id in await cur.fetchall()}
    return {**made, "flag": str(flag_id)}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/fhir/NoSuchType", 404), ("DELETE", "/fhir/Observation/x", 405)],
)
def test_framework_errors_are_outcomes_korean_first(
    api: Api, method: str, path: str, status: int
) -> None:
    response = api.client.request(method, path, headers=api.bearer("N01"))
    issue = outcome(response, status).issue[0]
    text = issue.diagnostics or ""
    assert text.split(" / ")[0] in ("찾을 수 없습니다", "지원하지 않는 방법입니다")
    assert " / " in text  # then English
