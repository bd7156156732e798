"""Who may see what: users, sessions, tokens, consent, scope and the audit trail.

Access is decided here, in the data layer, not in templates: every function that reads a
resident's data takes the acting user (:class:`Actor`), checks the role's capability
(:data:`ROLE_CAPABILITIES`), restricts its SQL with :func:`scope_predicate` and writes an
``audit_event`` row (FHIR AuditEvent shaped) in the same transaction.

Scope by role (who a member of staff may see at all)::

    admin      every resident
    nurse      residents of her neighbourhoods, and those assigned to her (resident.nurse_id)
    therapist  rehabilitation-room residents (resident.rehab), in her neighbourhoods if she has any
    liaison    residents assigned to her (resident.liaison_id) WITH an active consent whose
               purpose is 'liaison-sharing' and whose recipients include 'liaison'; withdrawal
               or the end of the period removes them at the next query
    station    the resident checked in at this station in the last few minutes; a station has
               no READ_HEALTH: its screen shows only the readings of the current visit
    gateway    nobody (service account: reads the devices of its own stations)

What each role may do is :data:`ROLE_CAPABILITIES`; a liaison officer never has READ_HEALTH,
only READ_NEEDS (plain-language category and due date, never values).

Errors (subclasses of :class:`ingest.store.errors.StoreError`)::

    StoreError
    ├── AccessDenied     the actor may not do this, or not for this resident (carries both)
    ├── NotFound         no such resident / resource (or not visible to anyone)
    └── InvalidRequest   the request itself cannot be satisfied (bad transition, bad value)
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus

from api.store import rows
from ingest.store.errors import StoreError

Conn = AsyncConnection[Any]

# --- errors -----------------------------------------------------------------------------------


class AccessDenied(StoreError):
    """The actor's role or scope does not allow this. ``resident`` is set when one is involved."""

    def __init__(self, actor: Actor, what: str, resident: str | None = None) -> None:
        self.actor = actor
        self.what = what
        self.resident = resident
        super().__init__(f"{actor.role} {actor.user_id} may not {what}")


class NotFound(StoreError):
    """Nothing with this id exists."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"{what} not found")


class InvalidRequest(StoreError):
    """The request cannot be carried out as asked; the message says why."""


# --- roles and capabilities -------------------------------------------------------------------


class Role(StrEnum):
    NURSE = "nurse"
    THERAPIST = "therapist"
    LIAISON = "liaison"
    STATION = "station"
    GATEWAY = "gateway"
    ADMIN = "admin"


class Capability(StrEnum):
    READ_HEALTH = "read health data"  # observations
    READ_FLAGS = "read flags, risk assessments and clinical tasks"
    READ_PATIENT = "read resident details"
    READ_NEEDS = "read follow-up needs"  # liaison projection: category and due date only
    READ_CONTACTS = "read residents' phone numbers, address and emergency contacts"
    WRITE_READINGS = "enter readings"
    WRITE_FUNCTION_TESTS = "enter grip, gait and chair-stand results"
    UPDATE_TASKS = "update tasks"
    MANAGE_FLAGS = "acknowledge, snooze or resolve flags"
    RESOLVE_UNBOUND = "assign or discard unbound readings"
    CASE_REPORT = "print case-meeting reports"
    CHECK_IN = "check residents in at a station"
    READ_DEVICES = "read devices"
    MANAGE_CONSENT = "record consent"
    WITHDRAW_CONSENT = "record consent withdrawal"
    READ_AUDIT = "read the audit trail"
    MANAGE_SUBSCRIPTIONS = "create, read and delete FHIR Subscriptions"
    MANAGE_USERS = "manage users"


_C = Capability
ROLE_CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.ADMIN: frozenset(_C),
    Role.NURSE: frozenset(
        {
            _C.READ_HEALTH,
            _C.READ_FLAGS,
            _C.READ_PATIENT,
            _C.READ_NEEDS,
            _C.READ_CONTACTS,
            _C.WRITE_READINGS,
            _C.UPDATE_TASKS,
            _C.MANAGE_FLAGS,
            _C.RESOLVE_UNBOUND,
            _C.CASE_REPORT,
            _C.READ_DEVICES,
            _C.MANAGE_CONSENT,
            _C.WITHDRAW_CONSENT,
            _C.CHECK_IN,
            _C.WRITE_FUNCTION_TESTS,
        }
    ),
    Role.THERAPIST: frozenset(
        {
            _C.READ_HEALTH,
            _C.READ_FLAGS,
            _C.READ_PATIENT,
            _C.READ_CONTACTS,
            _C.UPDATE_TASKS,
            _C.MANAGE_FLAGS,
            _C.READ_DEVICES,
            _C.WRITE_FUNCTION_TESTS,
        }
    ),
    # liaison officers: plain-language needs, contact details (consented residents only, by
    # scope) and their own liaison tasks, never values
    Role.LIAISON: frozenset(
        {_C.READ_NEEDS, _C.READ_CONTACTS, _C.WITHDRAW_CONSENT, _C.UPDATE_TASKS}
    ),
    # a kiosk shows the current visit's readings on its own screen (web_station) and nothing
    # else: no health-data capability, so no FHIR read and no resident page ever serves it
    Role.STATION: frozenset({_C.CHECK_IN}),
    Role.GATEWAY: frozenset({_C.READ_DEVICES}),  # readings travel over MQTT, not the API
}

#: What a bearer token's scope adds to its user's role (api_token.scopes; SMART-style names).
#: A delivery relay's service account gets "system/Subscription.*" and nothing else.
SCOPE_CAPABILITIES: dict[str, frozenset[Capability]] = {
    "system/Subscription.*": frozenset({_C.MANAGE_SUBSCRIPTIONS}),
}

#: v3 PurposeOfUse recorded in the audit trail for each role's reads.
PURPOSE_OF_USE: dict[Role, str] = {
    Role.NURSE: "TREAT",
    Role.THERAPIST: "TREAT",
    Role.LIAISON: "COC",  # coordination of care
    Role.STATION: "PATRQT",  # the resident asked, at the station
    Role.GATEWAY: "HOPERAT",
    Role.ADMIN: "HOPERAT",
}

#: How long a station check-in lets the station screen show that resident's readings.
CHECKIN_WINDOW = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated user a request acts as."""

    user_id: str
    role: Role
    display_name: str
    neighbourhoods: tuple[str, ...] = ()
    station_id: str | None = None
    gateway_id: str | None = None
    client_digest: bytes | None = field(default=None, repr=False)
    scopes: frozenset[str] = frozenset()  # a bearer token's scopes (SCOPE_CAPABILITIES)

    def can(self, capability: Capability) -> bool:
        if capability in ROLE_CAPABILITIES[self.role]:
            return True
        return any(capability in SCOPE_CAPABILITIES.get(scope, ()) for scope in self.scopes)

    def require(self, capability: Capability, resident: str | None = None) -> None:
        """Raise :class:`AccessDenied` unless the role has ``capability``."""
        if not self.can(capability):
            raise AccessDenied(self, str(capability), resident)

    @property
    def purpose_of_use(self) -> str:
        return PURPOSE_OF_USE[self.role]

    def with_client(self, client: str | None) -> Actor:
        """A copy carrying the (hashed) network address for the audit trail."""
        return replace(self, client_digest=digest(client) if client else None)


def digest(text: str) -> bytes:
    """SHA-256 of ``text``: how login names, addresses and tokens are stored."""
    return hashlib.sha256(text.encode()).digest()


def scope_predicate(actor: Actor, resident: str = "r") -> tuple[str, dict[str, Any]]:
    """SQL condition over the ``resident`` table alias ``resident`` that the actor may see.

    Returns the condition and its named parameters (all prefixed ``scope_``), to be merged
    into the caller's parameters. Evaluated at query time, so consent withdrawal and the end
    of a check-in window take effect on the next query.
    """
    r = resident
    params: dict[str, Any] = {"scope_actor": actor.user_id}
    if actor.role is Role.ADMIN:
        return "TRUE", {}
    if actor.role is Role.NURSE:
        params["scope_nbs"] = list(actor.neighbourhoods)
        sql = (
            f"({r}.active AND ({r}.nurse_id = %(scope_actor)s"
            f" OR {r}.neighbourhood = ANY(%(scope_nbs)s)))"
        )
        return sql, params
    if actor.role is Role.THERAPIST:
        params["scope_nbs"] = list(actor.neighbourhoods)
        sql = (
            f"({r}.active AND {r}.rehab AND "
            f"(cardinality(%(scope_nbs)s::text[]) = 0 OR {r}.neighbourhood = ANY(%(scope_nbs)s)))"
        )
        return sql, params
    if actor.role is Role.LIAISON:
        sql = (
            f"({r}.active AND {r}.liaison_id = %(scope_actor)s AND EXISTS ("
            f"SELECT 1 FROM consent sc WHERE sc.resident_id = {r}.id"
            " AND sc.purpose = 'liaison-sharing' AND 'liaison' = ANY(sc.recipient_roles)"
            " AND sc.withdrawn_at IS NULL AND sc.period_start <= now()"
            " AND (sc.period_end IS NULL OR sc.period_end > now())))"
        )
        return sql, params
    if actor.role is Role.STATION:
        params["scope_station"] = actor.station_id
        sql = (
            f"EXISTS (SELECT 1 FROM station_checkin sk WHERE sk.resident_id = {r}.id"
            " AND sk.station_id = %(scope_station)s AND sk.ended_at IS NULL"
            " AND sk.expires_at > now())"
        )
        return sql, params
    return "FALSE", {}


async def require_resident(
    conn: Conn, actor: Actor, resident_id: str, capability: Capability
) -> None:
    """Check that ``resident_id`` exists and is in the actor's scope for ``capability``."""
    actor.require(capability, resident_id)
    where, params = scope_predicate(actor)
    allowed = await rows.scalar(
        conn,
        # a predicate over a NULL column (no nurse assigned) is NULL: a denial, not "not found"
        f"SELECT COALESCE(({where}), false) FROM resident r WHERE r.id = %(rid)s".encode(),
        {**params, "rid": resident_id},
    )
    if allowed is None:
        raise NotFound(f"resident {resident_id}")
    if not allowed:
        raise AccessDenied(actor, str(capability), resident_id)


# --- users ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credentials:
    user_id: str
    password_hash: str | None
    active: bool


@dataclass(frozen=True, slots=True)
class UserSummary:
    user_id: str
    username: str
    display_name: str
    role: Role
    neighbourhoods: tuple[str, ...]
    station_id: str | None
    gateway_id: str | None
    active: bool


async def upsert_user(
    conn: Conn,
    *,
    user_id: str,
    username: str,
    display_name: str,
    role: Role,
    password_hash: str | None,
    neighbourhoods: Iterable[str] = (),
    station_id: str | None = None,
    gateway_id: str | None = None,
    active: bool = True,
) -> None:
    """Create or replace a user and their neighbourhoods (idempotent; used by seeding and admin)."""
    await conn.execute(
        """INSERT INTO app_user (id, username, display_name, role, password_hash, station_id,
                                 gateway_id, active)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username,
               display_name = EXCLUDED.display_name, role = EXCLUDED.role,
               password_hash = EXCLUDED.password_hash, station_id = EXCLUDED.station_id,
               gateway_id = EXCLUDED.gateway_id, active = EXCLUDED.active""",
        (
            user_id,
            username.lower(),
            display_name,
            str(role),
            password_hash,
            station_id,
            gateway_id,
            active,
        ),
    )
    await conn.execute("DELETE FROM user_neighbourhood WHERE user_id = %s", (user_id,))
    nbs = sorted(set(neighbourhoods))
    if nbs:
        await conn.execute(
            "INSERT INTO user_neighbourhood (user_id, neighbourhood) SELECT %s, unnest(%s::text[])",
            (user_id, nbs),
        )


async def credentials(conn: Conn, username: str) -> Credentials | None:
    """The stored password hash for a login name (None when there is no such user)."""
    return await rows.fetch_one(
        conn,
        Credentials,
        "SELECT id AS user_id, password_hash, active FROM app_user WHERE username = %s",
        (username.strip().lower(),),
    )


async def set_password_hash(conn: Conn, user_id: str, password_hash: str) -> None:
    await conn.execute(
        "UPDATE app_user SET password_hash = %s WHERE id = %s", (password_hash, user_id)
    )


_ACTOR_COLUMNS = """u.id AS user_id, u.role, u.display_name, u.station_id, u.gateway_id,
    coalesce(array_agg(n.neighbourhood ORDER BY n.neighbourhood)
             FILTER (WHERE n.neighbourhood IS NOT NULL), '{}') AS neighbourhoods"""
_ACTOR_FROM = "app_user u LEFT JOIN user_neighbourhood n ON n.user_id = u.id"
_ACTOR_SQL = f"SELECT {_ACTOR_COLUMNS} FROM {_ACTOR_FROM}"


def _actor(
    *,
    user_id: str,
    role: str,
    display_name: str,
    station_id: str | None,
    gateway_id: str | None,
    neighbourhoods: list[str],
) -> Actor:
    return Actor(
        user_id=user_id,
        role=Role(role),
        display_name=display_name,
        station_id=station_id,
        gateway_id=gateway_id,
        neighbourhoods=tuple(neighbourhoods),
    )


@dataclass(frozen=True, slots=True)
class _ActorUse:
    """An actor row of a session or token lookup: who, the session's CSRF token, and whether
    the last-use time is old enough to be written again."""

    actor: Actor
    csrf_token: str | None
    stale: bool


def _actor_use(
    *, csrf_token: str | None, stale: bool, scopes: list[str] | None = None, **actor: Any
) -> _ActorUse:
    found = _actor(**actor)
    if scopes:
        found = replace(found, scopes=frozenset(scopes))
    return _ActorUse(found, csrf_token, stale)


async def load_actor(conn: Conn, user_id: str) -> Actor | None:
    """The active user ``user_id`` as an Actor, or None."""
    return await rows.build_one(
        conn,
        _actor,
        (_ACTOR_SQL + " WHERE u.id = %s AND u.active GROUP BY u.id").encode(),
        (user_id,),
    )


async def list_users(conn: Conn, actor: Actor) -> tuple[UserSummary, ...]:
    actor.require(Capability.MANAGE_USERS)
    found = await rows.build_all(
        conn,
        _user_summary,
        """SELECT u.id AS user_id, u.username, u.display_name, u.role,
                  coalesce(array_agg(n.neighbourhood ORDER BY n.neighbourhood)
                           FILTER (WHERE n.neighbourhood IS NOT NULL), '{}') AS neighbourhoods,
                  u.station_id, u.gateway_id, u.active
           FROM app_user u LEFT JOIN user_neighbourhood n ON n.user_id = u.id
           GROUP BY u.id ORDER BY u.role, u.id""",
    )
    return tuple(found)


def _user_summary(*, role: str, neighbourhoods: list[str], **fields: Any) -> UserSummary:
    return UserSummary(role=Role(role), neighbourhoods=tuple(neighbourhoods), **fields)


# --- sessions and tokens ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str  # goes in the cookie, never stored
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SessionInfo:
    actor: Actor
    csrf_token: str


async def create_session(conn: Conn, user_id: str, *, lifetime: timedelta) -> NewSession:
    """Start a web session; the caller sets ``token`` as an HttpOnly cookie."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    expires_at = await rows.scalar(
        conn,
        """INSERT INTO user_session (token_hash, user_id, csrf_token, expires_at)
           VALUES (%s, %s, %s, now() + %s) RETURNING expires_at""",
        (digest(token), user_id, csrf, lifetime),
    )
    return NewSession(token=token, csrf_token=csrf, expires_at=expires_at)


async def _lookup(conn: Conn, query: bytes, params: tuple[Any, ...]) -> _ActorUse | None:
    """The actor row of a session or token lookup, in one round trip: the lookup is usually a
    request's first statement, and run as a transaction of its own (it only reads) it needs no
    BEGIN, which would otherwise take a round trip of its own."""
    if conn.autocommit or conn.info.transaction_status is not TransactionStatus.IDLE:
        return await rows.build_one(conn, _actor_use, query, params)
    await conn.set_autocommit(True)
    try:
        return await rows.build_one(conn, _actor_use, query, params)
    finally:
        await conn.set_autocommit(False)


async def session_actor(conn: Conn, token: str, *, idle: timedelta) -> SessionInfo | None:
    """The actor of a live session (not expired, used within ``idle``), in one round trip.

    ``last_seen_at`` is written at most once a minute, so concurrent requests of one session
    do not queue on its row lock.
    """
    hashed = digest(token)
    found = await _lookup(
        conn,
        f"""SELECT {_ACTOR_COLUMNS}, s.csrf_token,
                   s.last_seen_at < now() - interval '1 minute' AS stale
            FROM {_ACTOR_FROM} JOIN user_session s ON s.user_id = u.id
            WHERE s.token_hash = %s AND u.active AND s.expires_at > now()
              AND s.last_seen_at > now() - %s
            GROUP BY u.id, s.token_hash""".encode(),
        (hashed, idle),
    )
    if found is None:
        return None
    if found.stale:
        await conn.execute(
            "UPDATE user_session SET last_seen_at = now() WHERE token_hash = %s", (hashed,)
        )
    return SessionInfo(found.actor, str(found.csrf_token))


async def end_session(conn: Conn, token: str) -> None:
    await conn.execute("DELETE FROM user_session WHERE token_hash = %s", (digest(token),))


async def purge_expired_sessions(conn: Conn) -> int:
    cur = await conn.execute("DELETE FROM user_session WHERE expires_at <= now()")
    return cur.rowcount


@dataclass(frozen=True, slots=True)
class NewToken:
    token_id: str  # public handle
    token: str  # shown once
    expires_at: datetime | None


async def create_token(
    conn: Conn,
    user_id: str,
    name: str,
    *,
    lifetime: timedelta | None = None,
    scopes: Sequence[str] = (),
) -> NewToken:
    """Issue a bearer token for a service account or a staff tablet (shown once).

    ``scopes`` (keys of :data:`SCOPE_CAPABILITIES`) add capabilities to the user's role."""
    unknown = set(scopes) - set(SCOPE_CAPABILITIES)
    if unknown:
        raise InvalidRequest(f"unknown token scopes: {', '.join(sorted(unknown))}")
    token_id = secrets.token_hex(4)
    token = f"daon_{token_id}_{secrets.token_urlsafe(32)}"
    expires_at = await rows.scalar(
        conn,
        """INSERT INTO api_token (token_hash, id, user_id, name, expires_at, scopes)
           VALUES (%s, %s, %s, %s, now() + %s, %s) RETURNING expires_at""",
        (digest(token), token_id, user_id, name, lifetime, sorted(set(scopes))),
    )
    return NewToken(token_id=token_id, token=token, expires_at=expires_at)


async def token_actor(conn: Conn, token: str) -> Actor | None:
    """The actor of a valid (unexpired, unrevoked) bearer token, in one round trip.

    ``last_used_at`` is written at most once a minute (a service account sends many requests
    at once; a write per request would serialise them on the token's row).
    """
    hashed = digest(token)
    found = await _lookup(
        conn,
        f"""SELECT {_ACTOR_COLUMNS}, NULL::text AS csrf_token,
                   t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute' AS stale,
                   t.scopes
            FROM {_ACTOR_FROM} JOIN api_token t ON t.user_id = u.id
            WHERE t.token_hash = %s AND u.active AND t.revoked_at IS NULL
              AND (t.expires_at IS NULL OR t.expires_at > now())
            GROUP BY u.id, t.token_hash""".encode(),
        (hashed,),
    )
    if found is None:
        return None
    if found.stale:
        await conn.execute(
            "UPDATE api_token SET last_used_at = now() WHERE token_hash = %s", (hashed,)
        )
    return found.actor


async def revoke_token(conn: Conn, actor: Actor, token_id: str) -> None:
    actor.require(Capability.MANAGE_USERS)
    cur = await conn.execute(
        "UPDATE api_token SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL",
        (token_id,),
    )
    if cur.rowcount == 0:
        raise NotFound(f"token {token_id}")


# --- consent ----------------------------------------------------------------------------------


class ConsentPurpose(StrEnum):
    # 개인정보제공동의서: share follow-up needs (never values) with the liaison officer
    LIAISON_SHARING = "liaison-sharing"
    CARE_COORDINATION = "care-coordination"


@dataclass(frozen=True, slots=True)
class Consent:
    id: str
    resident_id: str
    purpose: ConsentPurpose
    recipient_roles: tuple[str, ...]
    period_start: datetime
    period_end: datetime | None
    source: str | None
    recorded_by: str | None
    recorded_at: datetime
    withdrawn_at: datetime | None
    withdrawn_by: str | None
    reason: str | None = None
    withdraw_reason: str | None = None
    cancelled_at: datetime | None = None

    def active_at(self, when: datetime) -> bool:
        return (
            self.withdrawn_at is None
            and self.period_start <= when
            and (self.period_end is None or self.period_end > when)
        )


_CONSENT_COLUMNS = (
    "id::text AS id, resident_id, purpose, recipient_roles, period_start, period_end, source, "
    "recorded_by, recorded_at, withdrawn_at, withdrawn_by, reason, withdraw_reason, cancelled_at"
)


def consent_resource(c: Consent) -> dict[str, Any]:
    """The FHIR R4 Consent a decision is (pure): ``active``; ``inactive`` after a withdrawal
    (the provision's period ends then); ``entered-in-error`` when a grant was undone. The
    purpose is the policy rule, the recipients the provision's actors by role."""
    status = (
        "entered-in-error"
        if c.cancelled_at is not None
        else ("inactive" if c.withdrawn_at is not None else "active")
    )
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": c.id,
        "status": status,
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [
            {
                "coding": [{"system": "http://loinc.org", "code": "59284-0"}],
                "text": "개인정보제공동의서 / consent to share information",
            }
        ],
        "patient": {"reference": f"Patient/{c.resident_id}"},
        "dateTime": c.recorded_at.isoformat(),
        "performer": [{"reference": f"Patient/{c.resident_id}"}],
        "policyRule": {"text": str(c.purpose)},
        "provision": {
            "type": "permit",
            "period": {
                "start": c.period_start.isoformat(),
                **({"end": c.period_end.isoformat()} if c.period_end else {}),
            },
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "IRCP",
                            }
                        ],
                        "text": role,
                    },
                    "reference": {"display": role},
                }
                for role in c.recipient_roles
            ],
        },
    }
    if c.source or c.reason:
        resource["sourceAttachment"] = {"title": c.source or c.reason}
    if c.withdrawn_at is not None:
        # the withdrawal closes the permission's period (FHIR R4 has no withdrawn status)
        resource["provision"]["period"]["end"] = c.withdrawn_at.isoformat()
    return resource


async def _store_resource(conn: Conn, consent: Consent) -> None:
    await conn.execute(
        "UPDATE consent SET resource = %s::jsonb WHERE id::text = %s",
        (json.dumps(consent_resource(consent), ensure_ascii=False), consent.id),
    )


def _consent(*, purpose: str, recipient_roles: list[str], **fields: Any) -> Consent:
    """A Consent from _CONSENT_COLUMNS (a ``kwargs_row`` builder)."""
    return Consent(
        purpose=ConsentPurpose(purpose), recipient_roles=tuple(recipient_roles), **fields
    )


@dataclass(frozen=True, slots=True)
class _Liaison:
    liaison_id: str | None


async def _require_consent_authority(
    conn: Conn, actor: Actor, resident_id: str, capability: Capability
) -> None:
    """Nurses and admins within their scope; a liaison officer for her assigned residents."""
    actor.require(capability, resident_id)
    if actor.role is Role.LIAISON:
        found = await rows.fetch_one(
            conn, _Liaison, "SELECT liaison_id FROM resident WHERE id = %s", (resident_id,)
        )
        if found is None:
            raise NotFound(f"resident {resident_id}")
        if found.liaison_id != actor.user_id:
            raise AccessDenied(actor, str(capability), resident_id)
        return
    await require_resident(conn, actor, resident_id, capability)


async def record_consent(
    conn: Conn,
    actor: Actor,
    *,
    resident_id: str,
    purpose: ConsentPurpose,
    recipient_roles: Sequence[str],
    period_start: datetime,
    period_end: datetime | None = None,
    source: str | None = None,
    reason: str | None = None,
) -> Consent:
    """Record a signed consent form for a resident (kept as a FHIR Consent too)."""
    await _require_consent_authority(conn, actor, resident_id, Capability.MANAGE_CONSENT)
    roles = tuple(dict.fromkeys(recipient_roles))
    unknown = [r for r in roles if r not in Role.__members__.values()]
    if not roles or unknown:
        raise InvalidRequest(f"consent recipients must be roles, got {list(recipient_roles)}")
    if period_end is not None and period_end <= period_start:
        raise InvalidRequest("consent period must end after it starts")
    created = await rows.build_one(
        conn,
        _consent,
        f"""INSERT INTO consent (resident_id, purpose, recipient_roles, period_start, period_end,
                                 source, recorded_by, reason)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_CONSENT_COLUMNS}""".encode(),
        (
            resident_id,
            str(purpose),
            list(roles),
            period_start,
            period_end,
            source,
            actor.user_id,
            reason,
        ),
    )
    assert created is not None
    await _store_resource(conn, created)
    await record_audit(
        conn, actor, subtype="create", action="C", entity="Consent", residents=(resident_id,)
    )
    return created


async def consent_for_decision(
    conn: Conn, actor: Actor, consent_id: str, capability: Capability
) -> Consent:
    """A consent the actor may decide on (withdraw, undo), after checking their authority."""
    found = await rows.build_one(
        conn,
        _consent,
        f"SELECT {_CONSENT_COLUMNS} FROM consent WHERE id::text = %s".encode(),
        (consent_id,),
    )
    if found is None:
        raise NotFound(f"consent {consent_id}")
    await _require_consent_authority(conn, actor, found.resident_id, capability)
    return found


async def withdraw_consent(
    conn: Conn,
    actor: Actor,
    consent_id: str,
    *,
    reason: str | None = None,
    effective: datetime | None = None,
) -> Consent:
    """Record withdrawal (now, or ``effective`` when the resident withdrew earlier); every
    later query sees it (no caching anywhere)."""
    current = await consent_for_decision(conn, actor, consent_id, Capability.WITHDRAW_CONSENT)
    resident_id = current.resident_id
    updated = await rows.build_one(
        conn,
        _consent,
        f"""UPDATE consent SET withdrawn_at = least(now(), coalesce(%s, now())),
                   withdrawn_by = %s, withdraw_reason = %s
            WHERE id::text = %s AND withdrawn_at IS NULL RETURNING {_CONSENT_COLUMNS}""".encode(),
        (effective, actor.user_id, reason, consent_id),
    )
    if updated is None:
        raise InvalidRequest(f"consent {consent_id} was already withdrawn")
    await _store_resource(conn, updated)
    await record_audit(
        conn,
        actor,
        subtype="update",
        action="U",
        entity="Consent/withdraw",
        residents=(resident_id,),
    )
    return updated


async def undo_consent_decision(conn: Conn, actor: Actor, consent_id: str) -> Consent:
    """Undo the day's decision on a consent: a withdrawal recorded today is taken back (the
    consent is active again), or a grant recorded today is cancelled (kept, entered in error).
    Anything older stands: record a new decision instead."""
    current = await consent_for_decision(conn, actor, consent_id, Capability.WITHDRAW_CONSENT)
    today = "(now() AT TIME ZONE 'Asia/Seoul')::date"
    if current.cancelled_at is not None:
        raise InvalidRequest("이미 취소된 기록입니다 / this consent was already cancelled")
    if current.withdrawn_at is not None:
        sql = f"""UPDATE consent SET withdrawn_at = NULL, withdrawn_by = NULL,
                      withdraw_reason = NULL
                  WHERE id::text = %s AND (withdrawn_at AT TIME ZONE 'Asia/Seoul')::date = {today}
                  RETURNING {_CONSENT_COLUMNS}"""
        entity = "Consent/undo-withdraw"
    else:
        actor.require(Capability.MANAGE_CONSENT, current.resident_id)
        sql = f"""UPDATE consent SET cancelled_at = now(), cancelled_by = %s,
                      withdrawn_at = now(), withdrawn_by = %s,
                      withdraw_reason = '기록 취소 / recorded in error'
                  WHERE id::text = %s AND (recorded_at AT TIME ZONE 'Asia/Seoul')::date = {today}
                  RETURNING {_CONSENT_COLUMNS}"""
        entity = "Consent/undo-grant"
    params: tuple[Any, ...] = (
        (consent_id,)
        if current.withdrawn_at is not None
        else (actor.user_id, actor.user_id, consent_id)
    )
    updated = await rows.build_one(conn, _consent, sql.encode(), params)
    if updated is None:
        raise InvalidRequest(
            "당일에 한 기록만 되돌릴 수 있습니다 / only a decision recorded today can be undone"
        )
    await _store_resource(conn, updated)
    await record_audit(
        conn, actor, subtype="update", action="U", entity=entity, residents=(updated.resident_id,)
    )
    return updated


async def consents_for(conn: Conn, actor: Actor, resident_id: str) -> tuple[Consent, ...]:
    """A resident's consent records, newest first."""
    await _require_consent_authority(conn, actor, resident_id, Capability.WITHDRAW_CONSENT)
    found = tuple(
        await rows.build_all(
            conn,
            _consent,
            f"SELECT {_CONSENT_COLUMNS} FROM consent WHERE resident_id = %s "
            "ORDER BY recorded_at DESC".encode(),
            (resident_id,),
        )
    )
    await record_audit(
        conn, actor, subtype="read", action="R", entity="Consent", residents=(resident_id,)
    )
    return found


# --- audit ------------------------------------------------------------------------------------


class Outcome(StrEnum):
    """FHIR AuditEvent.outcome."""

    SUCCESS = "0"
    MINOR_FAILURE = "4"  # e.g. access denied
    SERIOUS_FAILURE = "8"
    MAJOR_FAILURE = "12"


#: DICOM event types used in AuditEvent.type.
TYPE_PATIENT_RECORD = "110110"
TYPE_USER_AUTHENTICATION = "110114"


_AUDIT_INSERT = """INSERT INTO audit_event (type_code, subtype, action, outcome, agent_user_id,
    agent_role, purpose_of_use, resident_id, entity, client_digest)"""


def audit_params(
    actor: Actor | None,
    *,
    subtype: str,
    action: str,
    entity: str,
    outcome: Outcome = Outcome.SUCCESS,
    type_code: str = TYPE_PATIENT_RECORD,
    client_digest: bytes | None = None,
    key: str = "audit",
) -> dict[str, Any]:
    """The values of an audit row but its resident, as the parameters of :func:`audit_select`
    (named ``{key}_…``, so that one statement can write rows of two entities)."""
    values = {
        "type": type_code,
        "subtype": subtype,
        "action": action,
        "outcome": str(outcome),
        "agent": actor.user_id if actor else None,
        "role": str(actor.role) if actor else None,
        "purpose": actor.purpose_of_use if actor else None,
        "entity": entity,
        "client": client_digest if client_digest is not None else _client_of(actor),
    }
    return {f"{key}_{name}": value for name, value in values.items()}


def audit_select(source: str, resident: str, *, key: str = "audit") -> str:
    """SQL: the audit rows of :func:`audit_params` (``key``), one per row of ``source`` (a FROM
    item and any WHERE) for the resident ``resident`` (an expression over it)."""
    return (
        f"SELECT %({key}_type)s, %({key}_subtype)s, %({key}_action)s, %({key}_outcome)s,"
        f" %({key}_agent)s, %({key}_role)s, %({key}_purpose)s, {resident}, %({key}_entity)s,"
        f" %({key}_client)s::bytea FROM {source}"
    )


def audit_insert(*selects: str) -> str:
    """SQL: one INSERT of the rows of the :func:`audit_select` statements, in their order. As a
    data-modifying CTE it travels with the read it records, in the same statement."""
    return f"{_AUDIT_INSERT} " + " UNION ALL ".join(selects)


async def record_audit(
    conn: Conn,
    actor: Actor | None,
    *,
    subtype: str,
    action: str,
    entity: str,
    residents: Iterable[str] = (),
    outcome: Outcome = Outcome.SUCCESS,
    type_code: str = TYPE_PATIENT_RECORD,
    client_digest: bytes | None = None,
) -> None:
    """Append audit events: one per resident touched (or one with no resident).

    ``entity`` names what was read without personal data: a resource type and the search
    parameter names, or a page name.
    """
    ids: list[str | None] = [*sorted(set(residents))]
    params = audit_params(
        actor,
        subtype=subtype,
        action=action,
        entity=entity,
        outcome=outcome,
        type_code=type_code,
        client_digest=client_digest,
    )
    params["residents"] = ids if ids else [None]
    await conn.execute(
        audit_insert(audit_select("unnest(%(residents)s::text[]) AS rid", "rid")).encode(),
        params,
    )


def _client_of(actor: Actor | None) -> bytes | None:
    return actor.client_digest if actor is not None else None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    recorded: datetime
    type_code: str
    subtype: str
    action: str
    outcome: Outcome
    agent_user_id: str | None
    agent_role: str | None
    agent_name: str | None
    purpose_of_use: str | None
    resident_id: str | None
    entity: str


async def audit_events(
    conn: Conn,
    actor: Actor,
    *,
    resident_id: str | None = None,
    agent_user_id: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> tuple[AuditRecord, ...]:
    """The audit trail, newest first (admins only). Reading it is itself audited."""
    actor.require(Capability.READ_AUDIT)
    found = await rows.build_all(
        conn,
        _audit_record,
        """SELECT a.id, a.recorded, a.type_code, a.subtype, a.action, a.outcome,
                  a.agent_user_id, a.agent_role, u.display_name AS agent_name, a.purpose_of_use,
                  a.resident_id, a.entity
           FROM audit_event a LEFT JOIN app_user u ON u.id = a.agent_user_id
           WHERE (%(rid)s::text IS NULL OR a.resident_id = %(rid)s)
             AND (%(agent)s::text IS NULL OR a.agent_user_id = %(agent)s)
             AND (%(since)s::timestamptz IS NULL OR a.recorded >= %(since)s)
             AND (%(before)s::bigint IS NULL OR a.id < %(before)s)
           ORDER BY a.id DESC LIMIT %(limit)s""",
        {
            "rid": resident_id,
            "agent": agent_user_id,
            "since": since,
            "before": before_id,
            "limit": max(1, min(limit, 1000)),
        },
    )
    await record_audit(
        conn,
        actor,
        subtype="search-type",
        action="E",
        entity="AuditEvent",
        residents=(resident_id,) if resident_id else (),
    )
    return tuple(found)


def _audit_record(*, outcome: str, **fields: Any) -> AuditRecord:
    return AuditRecord(outcome=Outcome(outcome), **fields)
