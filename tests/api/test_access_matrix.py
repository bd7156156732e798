"""The access matrix: every route of the app × role × scope × consent, against the real
database and the real app. It cannot go stale: the routes are enumerated from the app at test
time, and a route without a row in :data:`ROWS` (or a row without its route) fails the test.

Roles: nurse, therapist, liaison officer, administrator, station (kiosk session), gateway
(service token), anonymous. Subjects (the resident a call is about): own neighbourhood with
consent given (R0000001), own with consent withdrawn (R0000002), another neighbourhood with
consent given (R0000003) and withdrawn (R0000005, added here). The expected outcome of each cell
comes from the policy written out below by hand (the brief's rules), not from the code under
test: nurses by neighbourhood, therapists rehab-room residents, liaison officers their assigned
residents with an active consent and never values, the station only its own screen, gateways
no resident data, admins everything. An allowed call must succeed (2xx, or a redirect that is
not to the login page); a denied one must be 401/403 or a redirect to the login page, with the
same answer for "not yours" as for "does not exist" (tests/api/test_security.py).

Adding a route: add a row (the call to make and who may make it); run this file.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount, Route

from api.alerts import HubLimits
from api.store import access
from api.store.access import ConsentPurpose
from ingest.pipeline import process_message
from ingest.store import clinical, registry
from ingest.store.observations import write_outcomes
from tests.api import readings
from tests.api.conftest import Api, seoul_today
from tests.api.world import CARD, IN_HWANGHAK, IN_YAKSU, PASSWORD, WITHDRAWN, username

pytestmark = pytest.mark.db

SEOUL = ZoneInfo("Asia/Seoul")

# --- principals and subjects ------------------------------------------------------------------

PRINCIPALS: dict[str, str | None] = {
    "nurse": "N01",  # 약수동
    "therapist": "T01",  # rehabilitation room, every neighbourhood
    "liaison": "L10-01",  # R0000001 and R0000002 are assigned to her
    "admin": "A01",
    "station": "S-yaksu-1",  # kiosk at yaksu-station-1, R0000001 checked in there
    "gateway": "G-yaksu-1",  # yaksu-gw-1's service account
    "anonymous": None,
}
OTHER_WITHDRAWN = "R0000005"  # 황학동, officer L14-01, consent withdrawn (made by _setup)
SUBJECTS = {
    "own/consent": IN_YAKSU,
    "own/withdrawn": WITHDRAWN,
    "other/consent": IN_HWANGHAK,
    "other/withdrawn": OTHER_WITHDRAWN,
}
CHECKED_IN = IN_YAKSU

#: Who each role may see at all (the world: tests/api/world.py and _setup).
SCOPE: dict[str, set[str]] = {
    "nurse": {IN_YAKSU, WITHDRAWN},  # her neighbourhood
    "therapist": {IN_YAKSU},  # the rehab-room resident
    "liaison": {IN_YAKSU},  # assigned AND consent given; never values
    "admin": set(SUBJECTS.values()),
    "station": set(),  # a kiosk reads no resident's data beyond its own screen
    "gateway": set(),
    "anonymous": set(),
}
ASSIGNED_TO_LIAISON = {IN_YAKSU, WITHDRAWN}  # she records withdrawals for these
WEB = {"nurse", "therapist", "liaison", "admin", "station"}  # have a web session


# --- the policy -------------------------------------------------------------------------------

Rule = Callable[[str, str | None], bool]  # (role, subject) -> allowed


def public(role: str, subject: str | None) -> bool:
    return True


def roles(*allowed: str) -> Rule:
    """Subject-free: these roles may."""
    return lambda role, subject: role in allowed


def about(*allowed: str) -> Rule:
    """About a resident: these roles, for residents in their scope."""
    return lambda role, subject: role in allowed and subject in SCOPE[role]


CLINICAL = ("admin", "nurse", "therapist")  # values, flags, clinical tasks, resident details
NURSING = ("admin", "nurse")  # hand entry, visits, consent, check-in, unbound queue


# --- the calls --------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What a call needs: the app, the principal, the subject and fresh objects to act on."""

    api: Api
    role: str
    subject: str
    objects: dict[str, str] = field(default_factory=dict)

    @property
    def user(self) -> str | None:
        return PRINCIPALS[self.role]

    def web(self) -> str:
        """Put the principal's session cookie on the client; returns its CSRF token."""
        self.api.client.cookies.clear()
        if self.user is None:
            return "none"
        return self.api.login_as(self.user)

    def fhir_headers(self) -> dict[str, str]:
        """Bearer tokens for staff and service accounts; the kiosk tries its session cookie
        (the issue found the FHIR API accepted it)."""
        self.api.client.cookies.clear()
        if self.user is None:
            return {}
        if self.role == "station":
            self.api.login_as(self.user)
            return {}
        return self.api.bearer(self.user)


Call = Callable[[Ctx], Any]
Prepare = Callable[..., Any]  # async (conn, rid) -> {name: id}


def get(path: str) -> Call:
    def call(ctx: Ctx) -> Any:
        ctx.web()
        return ctx.api.client.get(path.format(rid=ctx.subject, **ctx.objects))

    return call


def post(path: str, data: dict[str, str] | None = None) -> Call:
    def call(ctx: Ctx) -> Any:
        csrf = ctx.web()
        form = {k: v.format(rid=ctx.subject, **ctx.objects) for k, v in (data or {}).items()}
        return ctx.api.client.post(
            path.format(rid=ctx.subject, **ctx.objects), data={**form, "csrf_token": csrf}
        )

    return call


def fhir_get(path: str) -> Call:
    def call(ctx: Ctx) -> Any:
        headers = ctx.fhir_headers()
        return ctx.api.client.get(path.format(rid=ctx.subject, **ctx.objects), headers=headers)

    return call


def alert_stream(ctx: Ctx) -> Any:
    """The alert stream, made to end at once (its own tests, tests/api/test_alert_push.py,
    cover what it sends to whom; here only who may open one)."""
    ctx.api.client.app.state.alert_hub.limits = HubLimits(lifetime_s=0.01)  # type: ignore[attr-defined]
    ctx.web()
    return ctx.api.client.get("/alerts/stream")


def fhir_task_put(ctx: Ctx) -> Any:
    headers = ctx.fhir_headers()
    task_id = ctx.objects["task"]
    current = ctx.api.client.get(f"/fhir/Task/{task_id}", headers=ctx.api.bearer("A01")).json()
    body = {**current, "status": "accepted"}
    return ctx.api.client.put(
        f"/fhir/Task/{task_id}",
        content=json.dumps(body),
        headers={**headers, "Content-Type": "application/fhir+json"},
    )


def fhir_transaction(ctx: Ctx) -> Any:
    headers = ctx.fhir_headers()
    minute = (sum(map(ord, ctx.role + ctx.subject)) % 50) + 1  # a distinct time per cell
    body = (
        '{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST",'
        '"url":"Observation"},"resource":{"resourceType":"Observation","status":"final",'
        '"code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},'
        f'"subject":{{"reference":"Patient/{ctx.subject}"}},'
        f'"effectiveDateTime":"2026-03-01T10:{minute:02d}:00+09:00",'
        '"valueQuantity":{"value":60.5,"unit":"kg","system":"http://unitsofmeasure.org",'
        '"code":"kg"}}}]}'
    )
    return ctx.api.client.post(
        "/fhir", content=body, headers={**headers, "Content-Type": "application/fhir+json"}
    )


def fhir_create(ctx: Ctx) -> Any:
    headers = ctx.fhir_headers()
    minute = (sum(map(ord, ctx.role + ctx.subject)) % 50) + 1  # a distinct time per cell
    body = (
        '{"resourceType":"Observation","status":"final",'
        '"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},'
        f'"subject":{{"reference":"Patient/{ctx.subject}"}},'
        f'"effectiveDateTime":"2026-03-02T10:{minute:02d}:00+09:00",'
        '"valueQuantity":{"value":71,"unit":"/min","system":"http://unitsofmeasure.org",'
        '"code":"/min"}}'
    )
    return ctx.api.client.post(
        "/fhir/Observation",
        content=body,
        headers={**headers, "Content-Type": "application/fhir+json"},
    )


def login(ctx: Ctx) -> Any:
    ctx.api.client.cookies.clear()
    form = ctx.api.client.get("/login")
    token = form.cookies.get("daon_login_csrf") or ""
    name = username(ctx.user) if ctx.user else "nobody"
    return ctx.api.client.post(
        "/login", data={"username": name, "password": PASSWORD, "login_csrf": token}
    )


def logout(ctx: Ctx) -> Any:
    """With a session of its own, so the principal's shared session survives."""
    ctx.api.client.cookies.clear()
    if ctx.user is None:
        return ctx.api.client.post("/logout", data={"csrf_token": "none"})
    user = ctx.user

    async def fresh(conn: Any) -> Any:
        return await access.create_session(conn, user, lifetime=timedelta(minutes=5))

    new = ctx.api.db(fresh)
    ctx.api.client.cookies.set("daon_session", new.token)
    return ctx.api.client.post("/logout", data={"csrf_token": new.csrf_token})


# --- fresh objects for calls that change them -------------------------------------------------

_serial = itertools.count(1)


async def new_flag_and_tasks(conn: Any, rid: str) -> dict[str, str]:
    now = datetime.now(UTC)
    n = next(_serial)
    [flag_id] = await clinical.save_flags(
        conn,
        [
            clinical.FlagRow(
                id=None,
                resident_id=rid,
                rule=f"BP-HOME-HTN-{n}",
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
    tasks = [
        clinical.TaskRow(
            identifier=f"{rid}-{role}-{n}",
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
        for role in ("nurse", "liaison")
    ]
    await clinical.upsert_tasks(conn, tasks)
    cur = await conn.execute(
        "SELECT role, id::text FROM follow_up_task WHERE flag_id = %s", (flag_id,)
    )
    found = {f"{role}_task": task_id for role, task_id in await cur.fetchall()}
    return {"flag": str(flag_id), **found}


SUBSCRIPTION = {
    "resourceType": "Subscription",
    "status": "requested",
    "reason": "relay",
    "criteria": "Flag",
    "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/hook"},
}


def fhir_subscribe(ctx: Ctx) -> Any:
    headers = ctx.fhir_headers()
    return ctx.api.client.post("/fhir/Subscription", json=SUBSCRIPTION, headers=headers)


def fhir_delete(path: str) -> Call:
    def call(ctx: Ctx) -> Any:
        headers = ctx.fhir_headers()
        return ctx.api.client.delete(path.format(**ctx.objects), headers=headers)

    return call


async def new_subscription(conn: Any, rid: str) -> dict[str, str]:
    from api import subscription
    from api.store import delivery

    admin = await access.load_actor(conn, "A01")
    assert admin is not None
    stored = await delivery.create_subscription(conn, admin, subscription.parse(SUBSCRIPTION))
    return {"subscription": stored.id}


async def rendered_flag(conn: Any, rid: str) -> dict[str, str]:
    """A flag with its FHIR Flag stored (version 1), as the runner leaves it."""
    made = await new_flag_and_tasks(conn, rid)
    await conn.execute(
        "UPDATE risk_flag SET fhir_flag = %s::jsonb, fhir_risk_assessment = %s::jsonb"
        " WHERE id = %s::bigint",
        (
            json.dumps(
                {
                    "resourceType": "Flag",
                    "status": "active",
                    "code": {"text": "t"},
                    "subject": {"reference": f"Patient/{rid}"},
                }
            ),
            json.dumps(
                {
                    "resourceType": "RiskAssessment",
                    "status": "final",
                    "subject": {"reference": f"Patient/{rid}"},
                }
            ),
            made["flag"],
        ),
    )
    return made


def task_of(role: str) -> Prepare:
    async def prepare(conn: Any, rid: str) -> dict[str, str]:
        made = await new_flag_and_tasks(conn, rid)
        return {**made, "task": made[f"{role}_task"]}

    return prepare


async def new_observation(conn: Any, rid: str) -> dict[str, str]:
    when = datetime.now(UTC) - timedelta(seconds=next(_serial))  # one identity per reading
    return {"obs": (await readings.blood_pressure(conn, rid, when, 126, 78)).id}


async def new_visit(conn: Any, rid: str) -> dict[str, str]:
    cur = await conn.execute(
        "INSERT INTO home_visit (resident_id, user_id, visited_on, kind) "
        "VALUES (%s, 'A01', current_date, 'phone') RETURNING id::text",
        (rid,),
    )
    row = await cur.fetchone()
    return {"visit": row[0]}


async def new_consent(conn: Any, rid: str) -> dict[str, str]:
    admin = await access.load_actor(conn, "A01")
    assert admin is not None
    consent = await access.record_consent(
        conn,
        admin,
        resident_id=rid,
        purpose=ConsentPurpose.CARE_COORDINATION,
        recipient_roles=("nurse",),
        period_start=datetime.now(UTC) - timedelta(days=1),
    )
    return {"consent": consent.id}


async def new_personal_device(conn: Any, rid: str) -> dict[str, str]:
    device = f"AA:00:00:00:{next(_serial) % 256:02X}:01"
    await conn.execute(
        "INSERT INTO device (id, address, kind, owner_id) VALUES (%s, %s, 'glucose', %s)",
        (device, device, rid),
    )
    return {"device": device}


async def new_station_device(conn: Any, rid: str) -> dict[str, str]:
    device = f"BB:00:00:00:{next(_serial) % 256:02X}:01"
    await conn.execute(
        "INSERT INTO device (id, address, kind, station_id) "
        "VALUES (%s, %s, 'blood-pressure', 'yaksu-station-1')",
        (device, device),
    )
    return {"device": device}


def locked_station(station: str) -> Prepare:
    async def prepare(conn: Any, rid: str) -> dict[str, str]:
        await conn.execute(
            "INSERT INTO throttle (kind, key_digest, label, failures, blocked_until) "
            "VALUES ('station-card', %s, %s, 10, now() + interval '1 hour') "
            "ON CONFLICT (kind, key_digest) DO UPDATE SET blocked_until = EXCLUDED.blocked_until",
            (access.digest(station), station),
        )
        return {}

    return prepare


BPM = "00002a35-0000-1000-8000-00805f9b34fb"


def unbound_at(centre: str, *, decided: bool = False) -> Prepare:
    """A fresh unbound reading measured at ``centre``'s station, through ingest's pipeline."""

    async def prepare(conn: Any, rid: str) -> dict[str, str]:
        n = next(_serial)
        station, gateway = f"{centre}-station-1", f"{centre}-gw-1"
        device = f"CC:00:00:{n // 256 % 256:02X}:{n % 256:02X}:01"
        await conn.execute(
            "INSERT INTO device (id, address, kind, station_id) "
            "VALUES (%s, %s, 'blood-pressure', %s)",
            (device, device, station),
        )
        t = datetime.now(SEOUL).replace(microsecond=0) - timedelta(minutes=5, seconds=n % 50)
        stamp = t.year.to_bytes(2, "little") + bytes([t.month, t.day, t.hour, t.minute, t.second])
        reading = {
            "id": f"m-{n}",
            "source": "ble",
            "station": station,
            "device": {"id": device, "address": device},
            "values": [{"uuid": BPM, "hex": "0678005000" + "5d00" + stamp.hex() + "4800"}],
            "received_at": datetime.now(SEOUL).isoformat(),
            "clock": None,
            "binding": None,
        }
        batch = {
            "schema": 1,
            "gateway": gateway,
            "centre": centre,
            "sent_at": datetime.now(SEOUL).isoformat(),
            "readings": [reading],
        }
        snapshot = await registry.load_registry(conn)
        outcome = process_message(
            f"daon/gw/{gateway}/readings", json.dumps(batch).encode(), snapshot
        )
        async with conn.transaction():
            await write_outcomes(conn, [outcome])
        cur = await conn.execute(
            "SELECT id::text FROM unbound_reading WHERE reading_id = %s", (f"m-{n}",)
        )
        row = await cur.fetchone()
        assert row is not None, "the reading was not queued as unbound"
        if decided:
            await conn.execute(
                "UPDATE unbound_reading SET state = 'discarded', decided_by = 'A01', "
                "decided_at = now(), decision_note = 'x' WHERE id = %s::bigint",
                (row[0],),
            )
        return {"unbound": row[0]}

    return prepare


async def new_token(conn: Any, rid: str) -> dict[str, str]:
    made = await access.create_token(conn, "N02", f"matrix {next(_serial)}")
    return {"token": made.token_id}


async def new_dead_letter(conn: Any, rid: str) -> dict[str, str]:
    snapshot = await registry.load_registry(conn)
    raw = f"{{broken {next(_serial)}".encode()
    outcome = process_message("daon/gw/yaksu-gw-1/readings", raw, snapshot)
    async with conn.transaction():
        await write_outcomes(conn, [outcome])
    cur = await conn.execute("SELECT id::text FROM dead_letter WHERE raw = %s", (raw,))
    row = await cur.fetchone()
    return {"letter": row[0]}


def import_residents(ctx: Ctx) -> Any:
    csrf = ctx.web()
    n = next(_serial)
    body = f"id,display_name,neighbourhood\nR09{n:05d},가져온 주민,약수동\n".encode()
    return ctx.api.client.post(
        "/admin/residents/import",
        data={"csrf_token": csrf},
        files={"file": ("residents.csv", body, "text/csv")},
    )


# --- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One way of calling a route, with who may (``per_subject``: once per subject)."""

    call: Call
    allow: Rule
    per_subject: bool = True
    prepare: Prepare | None = None
    resets_checkin: bool = False
    label: str = ""
    ok: Callable[[Any], bool] | None = None  # success, when not the default (2xx or redirect)


def probe(call: Call, allow: Rule, **kw: Any) -> list[Probe]:
    return [Probe(call, allow, **kw)]


def liaison_task_rule(role: str, subject: str | None) -> bool:
    return about(*CLINICAL)(role, subject) or about("liaison")(role, subject)


def withdraw_rule(role: str, subject: str | None) -> bool:
    """Nurses and admins in scope; a liaison officer for her assigned residents (she records
    the withdrawal she is told of, whatever the consent state)."""
    return about(*NURSING)(role, subject) or (role == "liaison" and subject in ASSIGNED_TO_LIAISON)


def own_centre(*allowed: str) -> Rule:
    """Subject-free, about the yaksu centre (the nurse's own)."""
    return lambda role, subject: role in allowed


def other_centre(*allowed: str) -> Rule:
    """Subject-free, about the hwanghak centre: only those who see every centre."""
    return lambda role, subject: role in allowed and role == "admin"


def assign_rule(role: str, subject: str | None) -> bool:
    return about(*NURSING)(role, subject)


ROWS: dict[tuple[str, str], list[Probe]] = {
    # framework and static files: public by design (no data)
    ("GET", "/openapi.json"): probe(get("/openapi.json"), public, per_subject=False),
    ("GET", "/docs"): probe(get("/docs"), public, per_subject=False),
    ("GET", "/docs/oauth2-redirect"): probe(
        get("/docs/oauth2-redirect"), public, per_subject=False
    ),
    ("GET", "/redoc"): probe(get("/redoc"), public, per_subject=False),
    ("GET", "/static"): probe(get("/static/daon.css"), public, per_subject=False),
    # FHIR
    ("GET", "/fhir/metadata"): probe(fhir_get("/fhir/metadata"), public, per_subject=False),
    ("GET", "/fhir/Patient/{resident_id}"): probe(
        fhir_get("/fhir/Patient/{rid}"), about(*CLINICAL)
    ),
    ("GET", "/fhir/Observation"): probe(
        fhir_get("/fhir/Observation?patient={rid}"), about(*CLINICAL)
    ),
    ("GET", "/fhir/Observation/$lastn"): probe(
        fhir_get("/fhir/Observation/$lastn?patient={rid}"), about(*CLINICAL)
    ),
    ("GET", "/fhir/Observation/{observation_id}"): probe(
        fhir_get("/fhir/Observation/{obs}"), about(*CLINICAL), prepare=new_observation
    ),
    ("GET", "/fhir/Device/{device_id}"): [
        Probe(
            fhir_get("/fhir/Device/{device}"),
            about(*CLINICAL),
            prepare=new_personal_device,
            label="personal device",
        ),
        Probe(
            fhir_get("/fhir/Device/{device}"),
            roles(*CLINICAL, "gateway"),
            per_subject=False,
            prepare=new_station_device,
            label="station device of yaksu-gw-1",
        ),
    ],
    ("GET", "/fhir/Flag/{flag_id}"): probe(
        fhir_get("/fhir/Flag/{flag}"), about(*CLINICAL), prepare=task_of("nurse")
    ),
    ("GET", "/fhir/RiskAssessment/{assessment_id}"): probe(
        fhir_get("/fhir/RiskAssessment/{flag}"), about(*CLINICAL), prepare=task_of("nurse")
    ),
    ("GET", "/fhir/Task/{task_id}"): [
        Probe(fhir_get("/fhir/Task/{task}"), about(*CLINICAL), prepare=task_of("nurse")),
        Probe(fhir_get("/fhir/Task/{task}"), liaison_task_rule, prepare=task_of("liaison")),
    ],
    ("PUT", "/fhir/Task/{task_id}"): [
        Probe(fhir_task_put, about(*NURSING), prepare=task_of("nurse"), label="nurse task"),
        Probe(
            fhir_task_put, about("admin", "liaison"), prepare=task_of("liaison"), label="liaison"
        ),
    ],
    ("GET", "/fhir/AuditEvent"): probe(fhir_get("/fhir/AuditEvent?patient={rid}"), roles("admin")),
    ("POST", "/fhir"): probe(fhir_transaction, about(*NURSING)),
    # FHIR Subscriptions: administrators (and tokens with the subscription scope, which no
    # principal here has; tests/api/test_subscription_api.py)
    ("POST", "/fhir/Subscription"): probe(fhir_subscribe, roles("admin"), per_subject=False),
    ("GET", "/fhir/Subscription"): probe(
        fhir_get("/fhir/Subscription"), roles("admin"), per_subject=False
    ),
    ("GET", "/fhir/Subscription/{sub_id}"): probe(
        fhir_get("/fhir/Subscription/{subscription}"),
        roles("admin"),
        per_subject=False,
        prepare=new_subscription,
    ),
    ("DELETE", "/fhir/Subscription/{sub_id}"): probe(
        fhir_delete("/fhir/Subscription/{subscription}"),
        roles("admin"),
        per_subject=False,
        prepare=new_subscription,
    ),
    ("POST", "/fhir/Observation"): probe(fhir_create, about(*NURSING)),
    # FHIR searches: a named patient follows the resident's scope; other searches return only
    # what the caller may see (200 for every role holding the capability)
    ("GET", "/fhir/Patient"): probe(fhir_get("/fhir/Patient?_id={rid}"), roles(*CLINICAL)),
    ("GET", "/fhir/Practitioner"): probe(
        fhir_get("/fhir/Practitioner?_id=N01"), roles(*CLINICAL, "liaison"), per_subject=False
    ),
    ("GET", "/fhir/Practitioner/{user_id}"): probe(
        fhir_get("/fhir/Practitioner/N01"), roles(*CLINICAL, "liaison"), per_subject=False
    ),
    ("GET", "/fhir/Device"): probe(
        fhir_get("/fhir/Device?_id=phg-yaksu-gw-1"), roles(*CLINICAL, "gateway"), per_subject=False
    ),
    ("GET", "/fhir/Flag"): probe(fhir_get("/fhir/Flag?patient={rid}"), about(*CLINICAL)),
    ("GET", "/fhir/RiskAssessment"): probe(
        fhir_get("/fhir/RiskAssessment?patient={rid}"), about(*CLINICAL)
    ),
    ("GET", "/fhir/Task"): probe(fhir_get("/fhir/Task?patient={rid}"), liaison_task_rule),
    ("GET", "/fhir/Flag/{flag_id}/_history"): probe(
        fhir_get("/fhir/Flag/{flag}/_history"), about(*CLINICAL), prepare=task_of("nurse")
    ),
    ("GET", "/fhir/Flag/{flag_id}/_history/{vid}"): probe(
        fhir_get("/fhir/Flag/{flag}/_history/1"), about(*CLINICAL), prepare=rendered_flag
    ),
    ("GET", "/fhir/Task/{task_id}/_history"): [
        Probe(fhir_get("/fhir/Task/{task}/_history"), about(*CLINICAL), prepare=task_of("nurse")),
        Probe(
            fhir_get("/fhir/Task/{task}/_history"), liaison_task_rule, prepare=task_of("liaison")
        ),
    ],
    ("GET", "/fhir/Task/{task_id}/_history/{vid}"): probe(
        fhir_get("/fhir/Task/{task}/_history/1"), about(*CLINICAL), prepare=task_of("nurse")
    ),
    # sign-in
    ("GET", "/login"): probe(get("/login"), public, per_subject=False),
    ("POST", "/login"): probe(login, roles(*WEB), per_subject=False),
    ("POST", "/logout"): probe(
        logout,
        roles(*WEB),
        per_subject=False,
        ok=lambda r: r.status_code == 303 and r.headers["location"] == "/login",
    ),
    ("GET", "/"): probe(get("/"), roles(*WEB), per_subject=False),
    # the station screen: station accounts only
    ("GET", "/station"): probe(get("/station"), roles("station"), per_subject=False),
    ("POST", "/station/checkin"): probe(
        post("/station/checkin", {"card_number": CARD[IN_YAKSU]}),
        roles("station"),
        per_subject=False,
        resets_checkin=True,
    ),
    ("POST", "/station/finish"): probe(
        post("/station/finish"), roles("station"), per_subject=False, resets_checkin=True
    ),
    # station card-reader lockouts: staff see and clear those of their centres (issue 13.2)
    ("GET", "/stations"): probe(get("/stations"), roles(*NURSING), per_subject=False),
    ("POST", "/stations/{station_id}/unlock"): [
        Probe(
            post("/stations/yaksu-station-1/unlock"),
            roles(*NURSING),
            per_subject=False,
            prepare=locked_station("yaksu-station-1"),
            label="own centre",
        ),
        Probe(
            post("/stations/hwanghak-station-1/unlock"),
            roles("admin"),
            per_subject=False,
            prepare=locked_station("hwanghak-station-1"),
            label="other centre",
        ),
    ],
    # the resident page and what staff record there
    ("GET", "/residents/{resident_id}"): probe(get("/residents/{rid}"), about(*CLINICAL)),
    ("POST", "/residents/{resident_id}/review"): probe(
        post("/residents/{rid}/review", {"note": "n"}), about(*CLINICAL)
    ),
    ("POST", "/residents/{resident_id}/visits"): probe(
        post("/residents/{rid}/visits", {"visited_on": str(seoul_today()), "kind": "phone"}),
        about(*NURSING),
    ),
    ("POST", "/visits/{visit_id}/cancel"): probe(
        post("/visits/{visit}/cancel", {"resident_id": "{rid}"}),
        about(*NURSING),
        prepare=new_visit,
    ),
    ("POST", "/residents/{resident_id}/consents"): probe(
        post(
            "/residents/{rid}/consents",
            {"purpose": "care-coordination", "period_start": str(seoul_today())},
        ),
        about(*NURSING),
    ),
    ("GET", "/consents/{consent_id}/withdraw"): probe(
        get("/consents/{consent}/withdraw"), withdraw_rule, prepare=new_consent
    ),
    ("POST", "/consents/{consent_id}/undo"): probe(
        post("/consents/{consent}/undo"), about(*NURSING), prepare=new_consent
    ),
    ("POST", "/consents/{consent_id}/withdraw"): probe(
        post("/consents/{consent}/withdraw", {"resident_id": "{rid}"}),
        withdraw_rule,
        prepare=new_consent,
    ),
    ("POST", "/residents/{resident_id}/checkin"): probe(
        post("/residents/{rid}/checkin", {"station_id": "hwanghak-station-1"}), about(*NURSING)
    ),
    ("POST", "/residents/{resident_id}/readings"): probe(
        post(
            "/residents/{rid}/readings",
            {"kind": "weight", "measured_at": "2026-03-02T09:00", "weight": "61.2"},
        ),
        about(*NURSING),
    ),
    ("POST", "/residents/{resident_id}/function-tests"): probe(
        post("/residents/{rid}/function-tests", {"measured_at": "2026-03-02T09:00", "grip": "21"}),
        about(*CLINICAL),
    ),
    # finding a resident (issue 14.1): the route for staff who see residents; what it finds
    # is scoped (test_search_finds_only_residents_in_scope)
    ("GET", "/search"): probe(
        get("/search?q=%EA%B9%80"), roles(*CLINICAL, "liaison"), per_subject=False
    ),
    # what devices do not measure (issue 14.2): nurses everything, the therapist falls/frailty
    ("POST", "/residents/{resident_id}/entries"): [
        Probe(
            post(
                "/residents/{rid}/entries",
                {"kind": "a1c", "measured_at": "2026-03-02T09:00", "a1c": "6.1"},
            ),
            about(*NURSING),
            label="HbA1c",
        ),
        Probe(
            post("/residents/{rid}/entries", {"kind": "fall", "measured_at": "2026-03-02T09:00"}),
            about(*CLINICAL),
            label="fall",
        ),
    ],
    # everyone's account page (issue 14.7): the same password again, so later rows sign in
    ("GET", "/account"): probe(get("/account"), roles(*WEB), per_subject=False),
    ("POST", "/account/password"): probe(
        post("/account/password", {"current": PASSWORD, "new": PASSWORD, "again": PASSWORD}),
        roles(*WEB),
        per_subject=False,
    ),
    # administration (issue 14.7): administrators only
    ("GET", "/admin/users"): probe(get("/admin/users"), roles("admin"), per_subject=False),
    ("POST", "/admin/users"): probe(
        post(
            "/admin/users",
            {"user_id": "N77", "username": "n77", "display_name": "행렬", "role": "nurse"},
        ),
        roles("admin"),
        per_subject=False,
    ),
    ("POST", "/admin/users/{user_id}"): probe(
        post(
            "/admin/users/N02",
            {"display_name": "테스트 N02", "role": "nurse", "neighbourhood": "황학동"},
        ),
        roles("admin"),
        per_subject=False,
    ),
    ("POST", "/admin/users/{user_id}/active"): probe(
        post("/admin/users/N02/active", {"active": "true"}), roles("admin"), per_subject=False
    ),
    ("POST", "/admin/users/{user_id}/password"): probe(
        post("/admin/users/N02/password"), roles("admin"), per_subject=False
    ),
    ("POST", "/admin/users/{user_id}/caseload"): probe(
        post("/admin/users/N02/caseload", {"residents": IN_HWANGHAK}),
        roles("admin"),
        per_subject=False,
    ),
    ("GET", "/admin/tokens"): probe(get("/admin/tokens"), roles("admin"), per_subject=False),
    ("POST", "/admin/tokens"): probe(
        post("/admin/tokens", {"user_id": "N02", "name": "matrix", "days": "7"}),
        roles("admin"),
        per_subject=False,
    ),
    ("POST", "/admin/tokens/{token_id}/revoke"): probe(
        post("/admin/tokens/{token}/revoke"),
        roles("admin"),
        per_subject=False,
        prepare=new_token,
    ),
    ("GET", "/admin/registry"): probe(get("/admin/registry"), roles("admin"), per_subject=False),
    ("POST", "/admin/residents"): probe(
        post(
            "/admin/residents",
            {"id": "R0900000", "display_name": "등록", "neighbourhood": "약수동"},
        ),
        roles("admin"),
        per_subject=False,
    ),
    ("POST", "/admin/residents/import"): probe(import_residents, roles("admin"), per_subject=False),
    ("POST", "/admin/devices"): probe(
        post(
            "/admin/devices", {"device_id": "SN-MATRIX-1", "kind": "glucose", "owner_id": IN_YAKSU}
        ),
        roles("admin"),
        per_subject=False,
    ),
    ("GET", "/admin/dead-letters"): probe(
        get("/admin/dead-letters"), roles("admin"), per_subject=False
    ),
    ("POST", "/admin/dead-letters/{letter_id}/replay"): probe(
        post("/admin/dead-letters/{letter}/replay"),
        roles("admin"),
        per_subject=False,
        prepare=new_dead_letter,
    ),
    ("POST", "/admin/dead-letters/{letter_id}/discard"): probe(
        post("/admin/dead-letters/{letter}/discard", {"reason": "시험"}),
        roles("admin"),
        per_subject=False,
        prepare=new_dead_letter,
    ),
    # role pages
    ("GET", "/rehab"): probe(get("/rehab"), roles("therapist", "admin"), per_subject=False),
    ("GET", "/digest"): probe(get("/digest"), roles(*NURSING), per_subject=False),
    ("GET", "/liaison"): probe(get("/liaison"), roles("liaison"), per_subject=False),
    ("GET", "/admin/audit"): probe(get("/admin/audit"), roles("admin"), per_subject=False),
    ("GET", "/admin/delivery"): probe(get("/admin/delivery"), roles("admin"), per_subject=False),
    ("GET", "/worklist"): probe(get("/worklist"), roles(*NURSING), per_subject=False),
    # live alerts: staff roles (what reaches whom: tests/api/test_alert_push.py)
    ("GET", "/alerts/stream"): probe(
        alert_stream, roles("nurse", "therapist", "liaison", "admin"), per_subject=False
    ),
    # the month's visits: nurses' plan; a liaison officer's own plan without values (14.6)
    ("GET", "/visits"): probe(get("/visits"), roles(*NURSING, "liaison"), per_subject=False),
    ("GET", "/reports/case-meeting"): probe(
        get("/reports/case-meeting"), roles(*NURSING), per_subject=False
    ),
    # the unbound-readings queue: within the viewer's centres, in every state (issue 13.1)
    ("GET", "/unbound"): probe(get("/unbound"), roles(*NURSING), per_subject=False),
    ("POST", "/unbound/{unbound_id}/assign"): [
        Probe(
            post("/unbound/{unbound}/assign", {"resident": "{rid}"}),
            assign_rule,
            prepare=unbound_at("yaksu"),
            label="own centre",
        ),
        Probe(
            post("/unbound/{unbound}/assign", {"resident": "{rid}"}),
            lambda role, subject: role == "admin",
            prepare=unbound_at("hwanghak"),
            label="other centre",
        ),
    ],
    ("POST", "/unbound/{unbound_id}/discard"): [
        Probe(
            post("/unbound/{unbound}/discard", {"reason": "시험"}),
            own_centre(*NURSING),
            per_subject=False,
            prepare=unbound_at("yaksu"),
            label="own centre",
        ),
        Probe(
            post("/unbound/{unbound}/discard", {"reason": "시험"}),
            other_centre(*NURSING),
            per_subject=False,
            prepare=unbound_at("hwanghak"),
            label="other centre",
        ),
    ],
    ("POST", "/unbound/{unbound_id}/restore"): [
        Probe(
            post("/unbound/{unbound}/restore"),
            own_centre(*NURSING),
            per_subject=False,
            prepare=unbound_at("yaksu", decided=True),
            label="own centre",
        ),
        Probe(
            post("/unbound/{unbound}/restore"),
            other_centre(*NURSING),
            per_subject=False,
            prepare=unbound_at("hwanghak", decided=True),
            label="other centre",
        ),
    ],
    # flags and tasks from the worklist
    ("POST", "/flags/{flag_id}/acknowledge"): probe(
        post("/flags/{flag}/acknowledge"), about(*CLINICAL), prepare=task_of("nurse")
    ),
    ("POST", "/flags/{flag_id}/reached"): probe(
        post("/flags/{flag}/reached"), about(*CLINICAL), prepare=task_of("nurse")
    ),
    ("POST", "/flags/{flag_id}/snooze"): probe(
        post("/flags/{flag}/snooze", {"until": "2030-01-01T09:00", "reason": "r"}),
        about(*CLINICAL),
        prepare=task_of("nurse"),
    ),
    ("POST", "/flags/{flag_id}/resolve"): probe(
        post("/flags/{flag}/resolve", {"note": "n"}), about(*CLINICAL), prepare=task_of("nurse")
    ),
    ("POST", "/tasks/{task_id}/status"): [
        Probe(
            post("/tasks/{task}/status", {"status": "accepted"}),
            about(*NURSING),
            prepare=task_of("nurse"),
            label="nurse task",
        ),
        Probe(
            post("/tasks/{task}/status", {"status": "accepted"}),
            about("admin", "liaison"),
            prepare=task_of("liaison"),
            label="liaison task",
        ),
    ],
}

#: Routes outside the matrix, each with the reason (keep this empty unless a route has no
#: access decision at all).
EXEMPT: dict[tuple[str, str], str] = {}


# --- the mechanism ----------------------------------------------------------------------------


def app_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every (method, path) the app serves, through included routers and mounts."""
    for route in routes:
        original = getattr(route, "original_router", None)  # FastAPI's included router
        if original is not None:
            include = getattr(route, "include_context", None)
            yield from app_routes(original.routes, prefix + (getattr(include, "prefix", "") or ""))
        elif isinstance(route, Mount):
            yield "GET", prefix + route.path
        elif isinstance(route, APIRoute | Route):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield method, prefix + route.path
        else:
            yield "?", f"{prefix}{getattr(route, 'path', route)!r} ({type(route).__name__})"


def test_every_route_has_a_row(api: Api) -> None:
    served = set(app_routes(api.client.app.routes))  # type: ignore[attr-defined]
    missing = sorted(served - set(ROWS) - set(EXEMPT))
    stale = sorted(set(ROWS) - served)
    assert missing == [], f"routes without a row in the access matrix: {missing}"
    assert stale == [], f"rows for routes the app no longer serves: {stale}"


def succeeded(response: Any) -> bool:
    status: int = response.status_code
    if status in (301, 302, 303, 307):
        return not str(response.headers.get("location", "")).startswith("/login")
    return 200 <= status < 300


def denied(response: Any) -> bool:
    status: int = response.status_code
    if status in (302, 303):
        return str(response.headers.get("location", "")).startswith("/login")
    return status in (401, 403)


async def _setup(conn: Any) -> None:
    """The fourth subject (another neighbourhood, consent withdrawn) and the kiosk's visit."""
    await conn.execute(
        """INSERT INTO resident (id, card_number, display_name, neighbourhood, birth_date, sex,
                                 height_cm, nurse_id, liaison_id, rehab)
           VALUES (%s, '941000000058', '정구름', '황학동', '1950-05-05', 'M', 165, 'N02',
                   'L14-01', false)""",
        (OTHER_WITHDRAWN,),
    )
    admin = await access.load_actor(conn, "A01")
    assert admin is not None
    consent = await access.record_consent(
        conn,
        admin,
        resident_id=OTHER_WITHDRAWN,
        purpose=ConsentPurpose.LIAISON_SHARING,
        recipient_roles=("liaison",),
        period_start=datetime.now(UTC) - timedelta(days=30),
    )
    await access.withdraw_consent(conn, admin, consent.id)
    for rid in SUBJECTS.values():
        await readings.blood_pressure(conn, rid, datetime.now(UTC), 126, 78)


async def _check_in(conn: Any) -> None:
    await conn.execute("UPDATE station_checkin SET ended_at = now() WHERE ended_at IS NULL")
    await conn.execute(
        """INSERT INTO station_checkin (station_id, gateway_id, resident_id, by_user_id, expires_at)
           VALUES ('yaksu-station-1', 'yaksu-gw-1', %s, 'S-yaksu-1', now() + interval '1 hour')""",
        (CHECKED_IN,),
    )


def test_every_route_every_role_scope_and_consent(api: Api) -> None:
    api.db(_setup)
    api.db(_check_in)
    wrong: list[str] = []
    tally = {True: 0, False: 0}
    for (method, path), probes in sorted(ROWS.items()):
        for p in probes:
            subjects = list(SUBJECTS.items()) if p.per_subject else [("-", IN_YAKSU)]
            for role in PRINCIPALS:
                for axis, subject in subjects:
                    objects: dict[str, str] = {}
                    if p.prepare is not None:
                        objects = api.db(partial(p.prepare, rid=subject))
                    ctx = Ctx(api, role, subject, objects)
                    response = p.call(ctx)
                    if p.resets_checkin:
                        api.db(_check_in)
                    allowed = p.allow(role, subject if p.per_subject else None)
                    tally[allowed] += 1
                    where = f"{method} {path} {p.label} as {role} about {axis}"
                    if allowed and not (p.ok or succeeded)(response):
                        wrong.append(f"{where}: expected success, got {response.status_code}")
                    if not allowed and (not denied(response) or (p.ok and p.ok(response))):
                        wrong.append(f"{where}: expected a denial, got {response.status_code}")
    assert wrong == [], "\n".join(wrong)
    assert tally[True] >= 100  # both kinds of cell are exercised
    assert tally[False] >= 400


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
    assert f'href="/consents/{consent}/withdraw"' in page
    done = api.client.post(
        f"/consents/{consent}/withdraw",
        data={"csrf_token": csrf, "resident_id": IN_YAKSU, "confirm": "yes", "reason": "요청"},
    )
    assert done.status_code == 303
    assert "김하늘" not in api.client.get("/liaison").text.split("</main>")[0].split("okbox")[0]


def test_search_finds_only_residents_in_scope(api: Api) -> None:
    """GET /search (issue 14.1) by each subject's card, for every principal: a resident in the
    role's scope is found (the page opens them), anyone else is not (the search is scoped, not
    refused: the same answer as for a card nobody has); stations and gateways are refused."""
    api.db(_setup)
    cards = {**CARD, OTHER_WITHDRAWN: "941000000058"}
    wrong = []
    for role in PRINCIPALS:
        for axis, rid in SUBJECTS.items():
            ctx = Ctx(api, role, rid)
            ctx.web()
            response = api.client.get("/search", params={"q": cards[rid]})
            if role in ("station", "gateway", "anonymous"):
                ok = denied(response)
            elif rid in SCOPE[role]:
                ok = response.status_code == 303 and rid in response.headers["location"]
            else:
                ok = response.status_code == 200 and rid not in response.text
            if not ok:
                wrong.append(f"{role} {axis}: {response.status_code}")
    assert wrong == []
