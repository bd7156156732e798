"""The access-control matrix: every role × every resident endpoint × in-scope / out-of-scope
resident × consented / withdrawn, against the real database and the real app.

The expected outcome of each cell comes from the policy written out below by hand (the brief's
rules: nurses by neighbourhood and assignment, therapists for rehab-room residents, liaison
officers only assigned residents with an active consent and never values, the station only the
resident checked in there, gateways no resident data, admins everything), not from the code
under test. Every denial must be a 403 and every allowed call a success.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from ingest.store import clinical
from tests.api import readings
from tests.api.conftest import Api
from tests.api.world import IN_HWANGHAK, IN_YAKSU, NO_LIAISON, RESIDENTS, WITHDRAWN

pytestmark = pytest.mark.db

USERS = ("A01", "N01", "N02", "T01", "L10-01", "S-yaksu-1", "G-yaksu-1")
CHECKED_IN = IN_YAKSU  # at yaksu-station-1 for the whole test

# Who may see whom at all (the world: tests/api/world.py).
SCOPE: dict[str, set[str]] = {
    "A01": set(RESIDENTS),
    "N01": {IN_YAKSU, WITHDRAWN, NO_LIAISON},
    "N02": {IN_HWANGHAK},
    "T01": {IN_YAKSU, NO_LIAISON},
    "L10-01": {IN_YAKSU},  # R0000002 is also hers but withdrew consent
    "S-yaksu-1": {CHECKED_IN},
    "G-yaksu-1": set(),
}

# What each role may do within its scope.
HEALTH = {"A01", "N01", "N02", "T01", "S-yaksu-1"}  # observation values
FLAGS = {"A01", "N01", "N02", "T01"}  # flags, risk assessments, clinical tasks
PATIENT = {"A01", "N01", "N02", "T01"}  # demographics
WRITE = {"A01", "N01", "N02"}  # hand-entered readings, visits
REVIEW = {"A01", "N01", "N02", "T01"}  # mark reviewed, notes
CONSENT = {"A01", "N01", "N02"}  # record consent
CHECKIN = {"A01", "N01", "N02", "S-yaksu-1"}  # check a resident in at a station
WEB = {"A01", "N01", "N02", "T01", "L10-01", "S-yaksu-1"}  # gateways have no web session


@dataclass(frozen=True)
class Endpoint:
    name: str
    allowed_roles: set[str]
    call: Callable[[Api, str, str, dict[str, str]], Any]  # (api, user, resident, ids) -> response
    web: bool = False


def fhir_get(path: str) -> Callable[[Api, str, str, dict[str, str]], Any]:
    def call(api: Api, user: str, rid: str, ids: dict[str, str]) -> Any:
        url = path.format(
            rid=rid,
            obs=ids[rid],
            flag=ids[f"flag:{rid}"],
            ntask=ids[f"nurse-task:{rid}"],
            ltask=ids[f"liaison-task:{rid}"],
        )
        return api.client.get(url, headers=api.bearer(user))

    return call


def task_post(kind: str) -> Callable[[Api, str, str, dict[str, str]], Any]:
    def call(api: Api, user: str, rid: str, ids: dict[str, str]) -> Any:
        csrf = api.login_as(user)
        return api.client.post(
            f"/tasks/{ids[f'{kind}-task:{rid}']}/status",
            data={"csrf_token": csrf, "status": "accepted"},
        )

    return call


def web_post(path: str, data: dict[str, str]) -> Callable[[Api, str, str, dict[str, str]], Any]:
    def call(api: Api, user: str, rid: str, ids: dict[str, str]) -> Any:
        csrf = api.login_as(user)
        return api.client.post(path.format(rid=rid), data={**data, "csrf_token": csrf})

    return call


def web_get(path: str) -> Callable[[Api, str, str, dict[str, str]], Any]:
    def call(api: Api, user: str, rid: str, ids: dict[str, str]) -> Any:
        api.login_as(user)
        return api.client.get(path.format(rid=rid))

    return call


def transaction(api: Api, user: str, rid: str, ids: dict[str, str]) -> Any:
    minute = (sum(map(ord, user + rid)) % 50) + 1  # a distinct time per cell
    body = (
        '{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST",'
        '"url":"Observation"},"resource":{"resourceType":"Observation","status":"final",'
        '"code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},'
        f'"subject":{{"reference":"Patient/{rid}"}},'
        f'"effectiveDateTime":"2026-03-01T10:{minute:02d}:00+09:00",'
        '"valueQuantity":{"value":60.5,"unit":"kg","system":"http://unitsofmeasure.org",'
        '"code":"kg"}}}]}'
    )
    headers = {**api.bearer(user), "Content-Type": "application/fhir+json"}
    return api.client.post("/fhir", content=body, headers=headers)


ENDPOINTS = [
    Endpoint("GET Patient", PATIENT, fhir_get("/fhir/Patient/{rid}")),
    Endpoint("GET Observation?patient", HEALTH, fhir_get("/fhir/Observation?patient={rid}")),
    Endpoint("GET Observation/{id}", HEALTH, fhir_get("/fhir/Observation/{obs}")),
    Endpoint("GET $lastn", HEALTH, fhir_get("/fhir/Observation/$lastn?patient={rid}")),
    Endpoint("GET AuditEvent?patient", {"A01"}, fhir_get("/fhir/AuditEvent?patient={rid}")),
    Endpoint("GET Flag", FLAGS, fhir_get("/fhir/Flag/{flag}")),
    Endpoint("GET RiskAssessment", FLAGS, fhir_get("/fhir/RiskAssessment/{flag}")),
    Endpoint("GET nurse Task", FLAGS, fhir_get("/fhir/Task/{ntask}")),
    Endpoint("GET liaison Task", FLAGS | {"L10-01"}, fhir_get("/fhir/Task/{ltask}")),
    # tasks are updated by the role they are for (and admins)
    Endpoint("POST nurse task status", {"A01", "N01", "N02"}, task_post("nurse"), web=True),
    Endpoint("POST liaison task status", {"A01", "L10-01"}, task_post("liaison"), web=True),
    Endpoint("POST transaction", WRITE, transaction),
    Endpoint("GET resident page", HEALTH - {"S-yaksu-1"}, web_get("/residents/{rid}"), web=True),
    Endpoint("POST review", REVIEW, web_post("/residents/{rid}/review", {"note": "n"}), web=True),
    Endpoint(
        "POST visit",
        WRITE,
        web_post("/residents/{rid}/visits", {"visited_on": "2026-03-01", "kind": "phone"}),
        web=True,
    ),
    Endpoint(
        "POST reading",
        WRITE,
        web_post(
            "/residents/{rid}/readings",
            {"kind": "weight", "measured_at": "2026-03-02T09:00", "weight": "61.2"},
        ),
        web=True,
    ),
    Endpoint(
        "POST consent",
        CONSENT,
        web_post(
            "/residents/{rid}/consents",
            {"purpose": "care-coordination", "period_start": "2026-03-01"},
        ),
        web=True,
    ),
    Endpoint(
        "POST staff check-in",
        CHECKIN,
        web_post("/residents/{rid}/checkin", {"station_id": "hwanghak-station-1"}),
        web=True,
    ),
]


def expected(endpoint: Endpoint, user: str, rid: str) -> bool:
    if endpoint.web and user not in WEB:
        return False
    if endpoint.name == "GET AuditEvent?patient":
        return user == "A01"
    if user == "S-yaksu-1" and endpoint.name == "POST staff check-in":
        return rid == CHECKED_IN  # a kiosk re-checks-in only the resident at its own station
    if user == "A01":
        return True
    return user in endpoint.allowed_roles and rid in SCOPE[user]


def succeeded(response: Any) -> bool:
    return response.status_code in (200, 303) and "login" not in response.headers.get(
        "location", ""
    )


async def _setup(conn: Any) -> dict[str, str]:
    ids = {}
    now = datetime.now(UTC)
    for rid in RESIDENTS:
        ids[rid] = (await readings.blood_pressure(conn, rid, now, 126, 78)).id
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
        ids[f"flag:{rid}"] = str(flag_id)
        tasks = []
        for role in ("nurse", "liaison"):
            tasks.append(
                clinical.TaskRow(
                    identifier=f"{rid}-{role}",
                    flag_id=flag_id,
                    resident_id=rid,
                    role=role,
                    owner_id=None,
                    priority="routine",
                    status="requested",
                    business_status="open",
                    due_at=now,
                    description="전화해 주세요",
                    resource={
                        "resourceType": "Task",
                        "status": "requested",
                        "intent": "order",
                        "for": {"reference": f"Patient/{rid}"},
                    },
                    at=now,
                )
            )
        await clinical.upsert_tasks(conn, tasks)
        cur = await conn.execute(
            "SELECT role, id FROM follow_up_task WHERE resident_id = %s", (rid,)
        )
        for role, task_id in await cur.fetchall():
            ids[f"{role}-task:{rid}"] = str(task_id)
    return ids


async def _check_in(conn: Any) -> None:
    await conn.execute("UPDATE station_checkin SET ended_at = now() WHERE ended_at IS NULL")
    await conn.execute(
        """INSERT INTO station_checkin (station_id, gateway_id, resident_id, by_user_id, expires_at)
           VALUES ('yaksu-station-1', 'yaksu-gw-1', %s, 'S-yaksu-1', now() + interval '1 hour')""",
        (CHECKED_IN,),
    )


def test_every_role_every_endpoint_every_resident(api: Api) -> None:
    ids = api.db(_setup)
    api.db(_check_in)
    wrong: list[str] = []
    tally = {True: 0, False: 0}
    for endpoint in ENDPOINTS:
        for user in USERS:
            for rid in RESIDENTS:
                response = endpoint.call(api, user, rid, ids)
                if endpoint.name == "POST staff check-in":
                    api.db(_check_in)  # keep the kiosk's scope fixed for the next cells
                allowed = expected(endpoint, user, rid)
                tally[allowed] += 1
                ok = succeeded(response)
                denied = response.status_code in (403, 401) or (
                    endpoint.web and user not in WEB and response.status_code == 303
                )
                if allowed and not ok:
                    wrong.append(
                        f"{endpoint.name} {user} {rid}: expected success, "
                        f"got {response.status_code}"
                    )
                if not allowed and not denied:
                    wrong.append(
                        f"{endpoint.name} {user} {rid}: expected 403, got {response.status_code}"
                    )
    assert wrong == []
    cells = len(ENDPOINTS) * len(USERS) * len(RESIDENTS)
    assert tally[True] + tally[False] == cells
    assert tally[True] >= 90  # both kinds of cell are exercised
    assert tally[False] >= 300


def test_liaison_view_follows_assignment_and_consent(api: Api) -> None:
    """The liaison officer's page lists R0000001 (assigned, consented) and not R0000002
    (assigned, withdrawn), R0000003 (another officer's) or R0000004 (no officer)."""
    api.login_as("L10-01")
    page = api.client.get("/liaison")
    assert page.status_code == 200
    assert "김하늘" in page.text
    for absent in ("박바다", "이솔", "최산"):
        assert absent not in page.text
    for user in ("N01", "T01", "S-yaksu-1"):
        api.login_as(user)
        assert api.client.get("/liaison").status_code == 403


def test_denials_are_audited(api: Api) -> None:
    api.client.get(f"/fhir/Observation?patient={IN_HWANGHAK}", headers=api.bearer("N01"))

    async def denied(conn: Any) -> list[tuple[Any, ...]]:
        cur = await conn.execute(
            "SELECT agent_user_id, resident_id, outcome FROM audit_event WHERE subtype = 'denied'"
        )
        return await cur.fetchall()

    assert api.db(denied) == [("N01", IN_HWANGHAK, "4")]


def test_liaison_records_a_withdrawal_and_the_resident_leaves_her_view_at_once(api: Api) -> None:
    csrf = api.login_as("L10-01")
    page = api.client.get("/liaison").text
    assert "김하늘" in page
    consent = api.world.consent_ids[IN_YAKSU]
    assert f'action="/consents/{consent}/withdraw"' in page
    done = api.client.post(
        f"/consents/{consent}/withdraw", data={"csrf_token": csrf, "resident_id": IN_YAKSU}
    )
    assert done.status_code == 303
    assert "김하늘" not in api.client.get("/liaison").text
