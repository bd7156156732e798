"""The client tier: a standard FHIR client library from PyPI (fhirpy, requests-based) against
the app served by uvicorn, as another health system would use it (issue 16).

What a client that follows the standard must get right: every reference in what it reads
resolves; paging with fetch-all equals one large page; count; conditional create twice gives
one resource; a stale If-Match is refused; _include brings the referenced resources. Every
resource served is validated with the R4B models.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import BaseFHIRError

from api.store import access
from devices.model import Component, Kind, Measurement
from ingest.fhir import Clock, ReadingContext, to_observations
from ingest.fhir import clinical as fhir_clinical
from ingest.fhir.encoding import validate
from ingest.fhir.vocab import KST
from ingest.store import clinical, registry
from ingest.store.observations import insert_observations
from tests.api.conftest import run_db
from tests.api.test_browser import live as live
from tests.api.world import IN_YAKSU

pytestmark = pytest.mark.db

DEVICE = "C4:7C:8D:6A:1B:22"


async def _seed(conn: Any) -> dict[str, str]:
    """Seven cuff readings through ingest's own mapping (device clock 90 s slow: each gets a
    coincident-timestamp Observation), a flag with a nurse task owned by N01, and a token."""
    await registry.upsert_devices(
        conn,
        [
            registry.Device(
                DEVICE,
                kind="blood-pressure",
                address=DEVICE,
                manufacturer="A&D Medical",
                station_id="yaksu-station-1",
            )
        ],
    )
    start = datetime.now(UTC) - timedelta(days=8)
    rows = []
    for day in range(7):
        received = start + timedelta(days=day)
        device_time = received.astimezone(KST).replace(tzinfo=None, microsecond=0)
        measurement = Measurement(
            Kind.BLOOD_PRESSURE,
            (
                Component("systolic", Decimal(128 + day), "mm[Hg]"),
                Component("diastolic", Decimal(82), "mm[Hg]"),
                Component("pulse", Decimal(70), "/min"),
            ),
            device_time - timedelta(minutes=3),
        )
        ctx = ReadingContext(
            device_id=DEVICE,
            gateway_id="yaksu-gw-1",
            received_at=received,
            patient=IN_YAKSU,
            binding="check-in",
            centre_id="yaksu",
            clock=Clock(device_time - timedelta(seconds=90), received),
        )
        rows += to_observations(measurement, ctx)
    await insert_observations(conn, rows)
    now = datetime.now(UTC)
    [flag_id] = await clinical.save_flags(
        conn,
        [
            clinical.FlagRow(
                id=None,
                resident_id=IN_YAKSU,
                rule="BP-HOME-HTN",
                rule_set="t",
                severity="routine",
                recipients=["nurse"],
                state="open",
                opened_at=now,
                alerted_at=now,
                summary="가정혈압 평균 134/82",
            )
        ],
    )
    facts = fhir_clinical.FlagFacts(IN_YAKSU, "BP-HOME-HTN", "t", "routine", True, "s", now)
    evidence = [f"Observation/{rows[0].id}"]
    await clinical.save_flag_resources(
        conn,
        [
            (
                flag_id,
                fhir_clinical.flag(facts),
                fhir_clinical.risk_assessment(facts, evidence_refs=evidence),
            )
        ],
    )
    task = fhir_clinical.task(
        fhir_clinical.TaskFacts(
            identifier="client-tier-1",
            status="requested",
            business_status="open",
            severity="routine",
            code="clinical-follow-up",
            description="가정혈압 확인",
            resident=IN_YAKSU,
            authored_on=now,
            due=now + timedelta(days=7),
            role="nurse",
            owner="N01",
            focus_flag=str(flag_id),
        )
    )
    await clinical.upsert_tasks(
        conn,
        [
            clinical.TaskRow(
                identifier="client-tier-1",
                flag_id=flag_id,
                resident_id=IN_YAKSU,
                role="nurse",
                owner_id="N01",
                priority="routine",
                status="requested",
                business_status="open",
                due_at=now + timedelta(days=7),
                description="가정혈압 확인",
                resource=task,
                at=now,
            )
        ],
    )
    cur = await conn.execute(
        "SELECT id::text FROM follow_up_task WHERE identifier = 'client-tier-1'"
    )
    row = await cur.fetchone()
    token = (await access.create_token(conn, "N01", "client tier")).token
    return {"task": row[0], "flag": str(flag_id), "token": token}


@pytest.fixture
def served(live: str, world_url: Any) -> tuple[SyncFHIRClient, dict[str, str], str]:
    url, _ = world_url
    made = run_db(url, _seed)
    client = SyncFHIRClient(
        f"{live}/fhir",
        authorization=f"Bearer {made['token']}",
        requests_config={"timeout": 30},
    )
    return client, made, live


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield item
            else:
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def test_a_standard_client_reads_resolves_pages_counts_creates_and_updates(served) -> None:
    client, made, live = served
    search = client.resources("Observation").search(patient=IN_YAKSU)

    # paging: fetch-all over pages of 4 equals one large page, and count() agrees
    paged = [o.id for o in search.limit(4).fetch_all()]
    large = [o.id for o in search.limit(500).fetch()]
    assert paged == large
    assert len(large) == 14  # 7 panels + 7 pulses (coincident ones have the Device as subject)
    assert search.count() == 14

    # every resource validates, and every reference it carries resolves
    read: dict[str, dict[str, Any]] = {}
    todo = [f"Observation/{i}" for i in large] + [f"Task/{made['task']}", f"Flag/{made['flag']}"]
    todo.append(f"RiskAssessment/{made['flag']}")
    while todo:
        ref = todo.pop()
        if ref in read:
            continue
        resource_type, _, rid = ref.partition("/")
        resource = client.reference(resource_type, rid).to_resource().serialize()
        validate(resource)
        read[ref] = resource
        todo += [r for r in _references(resource) if r not in read]
    kinds = {ref.split("/")[0] for ref in read}
    assert kinds == {
        "Observation",
        "Patient",
        "Device",
        "Task",
        "Flag",
        "RiskAssessment",
        "Practitioner",
    }
    devices = {ref for ref in read if ref.startswith("Device/")}
    assert devices == {"Device/phd-C47C8D6A1B22", "Device/phg-yaksu-gw-1"}

    # _include: the patient and device of a page come with it
    bundle = (
        search.include("Observation", "patient")
        .include("Observation", "device")
        .limit(3)
        .fetch_raw()
    )
    included = {
        f"{e.resource.resourceType}/{e.resource.id}"
        for e in bundle.entry
        if e.search.mode == "include"
    }
    assert included == {f"Patient/{IN_YAKSU}", "Device/phd-C47C8D6A1B22"}

    # conditional create twice: one resource
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": "urn:example:emr", "value": "hr-1"}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{IN_YAKSU}"},
        "effectiveDateTime": (datetime.now(UTC) - timedelta(hours=1))
        .astimezone(KST)
        .replace(microsecond=0)
        .isoformat(),
        "valueQuantity": {
            "value": 66,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }
    conditional = SyncFHIRClient(
        f"{live}/fhir",
        authorization=f"Bearer {made['token']}",
        extra_headers={"If-None-Exist": "identifier=urn:example:emr|hr-1"},
    )
    first = conditional.resource("Observation", **observation)
    first.save()
    second = conditional.resource("Observation", **observation)
    second.save()
    assert first.id == second.id
    by_identifier = client.resources("Observation").search(identifier="urn:example:emr|hr-1")
    assert by_identifier.count() == 1

    # a stale If-Match is refused; the current one is applied
    task = client.reference("Task", made["task"]).to_resource()
    assert task.meta.versionId == "1"
    current = SyncFHIRClient(
        f"{live}/fhir",
        authorization=f"Bearer {made['token']}",
        extra_headers={"If-Match": 'W/"1"'},
    )
    task["status"] = "accepted"
    current.resource("Task", **task.serialize()).save()
    task["status"] = "in-progress"
    with pytest.raises(BaseFHIRError) as refused:
        current.resource("Task", **task.serialize()).save()
    assert "conflict" in str(refused.value)
    assert client.reference("Task", made["task"]).to_resource().status == "accepted"
