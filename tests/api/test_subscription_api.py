"""POST/GET/DELETE /fhir/Subscription: validation (400 OperationOutcome naming the element),
the status lifecycle as served, and who may use it."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.subscription import Subscription

from api.store import access
from tests.api.conftest import Api
from tests.api.world import IN_YAKSU

pytestmark = pytest.mark.db

JSON = {"Content-Type": "application/fhir+json"}


def body(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "구 문자 중계 / district SMS relay",
        "criteria": f"Flag?patient={IN_YAKSU}",
        "channel": {
            "type": "rest-hook",
            "endpoint": "https://relay.example.org/daon",
            "payload": "application/fhir+json",
            "header": ["Authorization: Bearer secret"],
        },
    }
    channel = changes.pop("channel", {})
    resource["channel"].update(channel)
    resource.update(changes)
    return {k: v for k, v in resource.items() if v is not None}


# (what is wrong, the body, the element the OperationOutcome must name)
INVALID = [
    ("criteria on another type", body(criteria="Observation"), "criteria"),
    ("unsupported search parameter", body(criteria="Flag?code=BP-CRISIS"), "criteria"),
    ("malformed patient", body(criteria="Flag?patient=a b"), "criteria"),
    ("unknown patient", body(criteria="Flag?patient=R9999999"), "criteria"),
    ("no criteria", body(criteria=None), "criteria"),
    ("ftp endpoint", body(channel={"endpoint": "ftp://relay.example.org/x"}), "channel.endpoint"),
    ("mailto endpoint", body(channel={"endpoint": "mailto:a@b.c"}), "channel.endpoint"),
    ("no host", body(channel={"endpoint": "http:///path"}), "channel.endpoint"),
    ("no endpoint", body(channel={"endpoint": None}), "channel.endpoint"),
    ("xml payload", body(channel={"payload": "application/fhir+xml"}), "channel.payload"),
    ("made-up payload", body(channel={"payload": "text/plain"}), "channel.payload"),
    ("websocket channel", body(channel={"type": "websocket"}), "channel.type"),
    ("header without colon", body(channel={"header": ["Authorization"]}), "channel.header"),
    ("header injection", body(channel={"header": ["X-A: 1\r\nX-B: 2"]}), "channel.header"),
    ("reserved header", body(channel={"header": ["Idempotency-Key: 1"]}), "channel.header"),
    ("no reason", body(reason=None), "reason"),
    ("client sets active", body(status="active"), "status"),
    ("bad end", body(end="tomorrow"), "end"),
    ("another resource", {"resourceType": "Patient"}, "resourceType"),
]


def test_invalid_subscriptions_get_400_naming_the_problem(api: Api) -> None:
    wrong = []
    for case, resource, element in INVALID:
        response = api.client.post(
            "/fhir/Subscription", json=resource, headers={**api.bearer("A01"), **JSON}
        )
        outcome = response.json()
        if (
            response.status_code != 400
            or outcome.get("resourceType") != "OperationOutcome"
            or f"Subscription.{element}" not in outcome["issue"][0]["diagnostics"]
        ):
            wrong.append(f"{case}: {response.status_code} {response.text}")
    assert wrong == []
    assert api.client.get("/fhir/Subscription", headers=api.bearer("A01")).json()["total"] == 0


def test_create_read_search_delete(api: Api) -> None:
    headers = {**api.bearer("A01"), **JSON}
    created = api.client.post("/fhir/Subscription", json=body(), headers=headers)
    assert created.status_code == 201, created.text
    resource = created.json()
    Subscription.model_validate(resource)  # a valid R4(B) Subscription
    assert resource["status"] == "requested"
    assert resource["criteria"] == f"Flag?patient={IN_YAKSU}"
    assert resource["channel"]["header"] == ["Authorization: Bearer secret"]
    sub_id = resource["id"]
    assert created.headers["location"].endswith(f"/fhir/Subscription/{sub_id}/_history/1")

    read = api.client.get(f"/fhir/Subscription/{sub_id}", headers=headers)
    assert read.status_code == 200
    assert read.json() == resource

    everyone = api.client.post(
        "/fhir/Subscription", json=body(criteria="Flag", channel={"payload": None}),
        headers=headers,
    )  # fmt: skip
    assert everyone.status_code == 201
    assert "payload" not in everyone.json()["channel"]  # an empty POST, as R4 defines

    found = api.client.get("/fhir/Subscription?status=requested", headers=headers).json()
    assert found["type"] == "searchset"
    assert found["total"] == 2
    assert {e["resource"]["id"] for e in found["entry"]} == {sub_id, everyone.json()["id"]}
    assert api.client.get("/fhir/Subscription?status=error", headers=headers).json()["total"] == 0
    bad = api.client.get("/fhir/Subscription?status=sleeping", headers=headers)
    assert bad.status_code == 400

    assert api.client.delete(f"/fhir/Subscription/{sub_id}", headers=headers).status_code == 204
    gone = api.client.get(f"/fhir/Subscription/{sub_id}", headers=headers)
    assert gone.status_code == 410
    assert gone.json()["resourceType"] == "OperationOutcome"
    assert api.client.delete(f"/fhir/Subscription/{sub_id}", headers=headers).status_code == 204
    assert api.client.get("/fhir/Subscription", headers=headers).json()["total"] == 1
    missing = api.client.get("/fhir/Subscription/nope", headers=headers)
    assert missing.status_code == 404


def test_a_token_with_the_subscription_scope_may_subscribe(api: Api) -> None:
    async def scoped_token(conn: Any) -> str:
        new = await access.create_token(
            conn, "G-yaksu-1", "relay", scopes=["system/Subscription.*"]
        )
        return new.token

    token = api.db(scoped_token)
    headers = {"Authorization": f"Bearer {token}", **JSON}
    created = api.client.post("/fhir/Subscription", json=body(), headers=headers)
    assert created.status_code == 201, created.text
    # the scope adds subscriptions, nothing else: still no resident data for a gateway
    patient = api.client.get(f"/fhir/Patient/{IN_YAKSU}", headers=headers)
    assert patient.status_code == 403


def test_unknown_token_scopes_are_refused(api: Api) -> None:
    async def bad(conn: Any) -> None:
        await access.create_token(conn, "A01", "x", scopes=["system/*.*"])

    with pytest.raises(access.InvalidRequest):
        api.db(bad)


def test_other_roles_may_not_use_subscriptions(api: Api) -> None:
    for user in ("N01", "T01", "L10-01", "S-yaksu-1", "G-yaksu-1"):
        headers = {**api.bearer(user), **JSON}
        post = api.client.post("/fhir/Subscription", json=body(), headers=headers)
        assert post.status_code == 403, user
        assert api.client.get("/fhir/Subscription", headers=headers).status_code == 403, user


def test_the_delivery_page_shows_an_ended_subscription_and_what_expired(api: Api) -> None:
    """An ended subscription is listed as off with its end and the deliveries that expired
    (api.store.delivery.activate; the delivering service's side: tests/api/test_delivery.py)."""
    from datetime import UTC, datetime, timedelta

    from api.store import delivery

    headers = {**api.bearer("A01"), **JSON}
    end = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    created = api.client.post("/fhir/Subscription", json=body(end=end.isoformat()), headers=headers)
    assert created.status_code == 201, created.text
    sub_id = created.json()["id"]

    async def ended(conn: Any) -> list[delivery.Expired]:
        # two notify events for the subscription's resident: the outbox trigger makes two
        # deliveries, which nobody sends before the end
        await conn.execute(
            """INSERT INTO flag_event (resident_id, rule, at, kind, notice)
               VALUES (%s, 'BP-CRISIS', now(), 'notify', 'raised'),
                      (%s, 'BP-CRISIS', now(), 'notify', 'reminder')""",
            (IN_YAKSU, IN_YAKSU),
        )
        found = await delivery.activate(conn, end + timedelta(seconds=1))
        await conn.commit()
        return found

    assert api.db(ended) == [delivery.Expired(sub_id, end, 2)]
    api.login_as("A01")
    page = api.client.get("/admin/delivery")
    assert page.status_code == 200
    row = next(r for r in page.text.split("<tr")[1:] if sub_id in r)
    assert "꺼짐 / off" in row
    assert "종료 / end" in row
    cells = [c.split("</td>")[0].strip() for c in row.split("<td>")[1:]]
    assert cells[3:5] == ["0", "2"]  # pending, expired
