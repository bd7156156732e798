"""Administration in the browser (issue 14.7): users, passwords, API tokens, residents and
devices (with a CSV import of residents), dead letters, and the audit trail one line per request.

Everything here but :func:`change_own_password` needs :attr:`Capability.MANAGE_USERS` (admins),
and every change is audited in the same transaction. Passwords arrive already hashed (the
route hashes with the app's scrypt parameters); a reset password is generated here and shown
once, never stored in the clear.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from api.store import access, rows
from api.store.access import Actor, Capability, Conn, InvalidRequest, NotFound, Role
from ingest.store import deadletter, registry

MIN_PASSWORD = 10
_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,39}")
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,39}")
_RESIDENT_ID = re.compile(r"R[0-9]{7}")
_CARD = re.compile(r"[0-9]{8,20}")
STAFF_ROLES = (Role.NURSE, Role.THERAPIST, Role.LIAISON, Role.ADMIN, Role.STATION)


def check_new_password(password: str, again: str) -> None:
    """The same rule for everyone: at least MIN_PASSWORD characters, typed twice alike."""
    if password != again:
        raise InvalidRequest("새 비밀번호가 서로 다릅니다 / the new passwords differ")
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(
            f"비밀번호는 {MIN_PASSWORD}자 이상 "
            f"/ a password needs at least {MIN_PASSWORD} characters"
        )


def temporary_password() -> str:
    """A one-time password an admin reads out to the user (who changes it at /account)."""
    return "-".join(secrets.token_hex(3) for _ in range(3))


async def change_own_password(conn: Conn, actor: Actor, new_hash: str) -> None:
    """The caller verified the current password; every signed-in user may do this."""
    await access.set_password_hash(conn, actor.user_id, new_hash)
    await access.record_audit(conn, actor, subtype="update", action="U", entity="User/password")


# --- users ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserRow:
    user_id: str
    username: str
    display_name: str
    role: str
    neighbourhoods: list[str]
    station_id: str | None
    active: bool
    caseload: int  # residents assigned (nurse_id / liaison_id)
    last_login: datetime | None


async def users(conn: Conn, actor: Actor) -> tuple[UserRow, ...]:
    actor.require(Capability.MANAGE_USERS)
    found = await rows.fetch_all(
        conn,
        UserRow,
        """SELECT u.id AS user_id, u.username, u.display_name, u.role,
                  coalesce((SELECT array_agg(n.neighbourhood ORDER BY n.neighbourhood)
                            FROM user_neighbourhood n WHERE n.user_id = u.id), '{}')
                      AS neighbourhoods,
                  u.station_id, u.active,
                  (SELECT count(*) FROM resident r WHERE r.active
                     AND (r.nurse_id = u.id OR r.liaison_id = u.id))::int AS caseload,
                  (SELECT max(s.created_at) FROM user_session s WHERE s.user_id = u.id)
                      AS last_login
           FROM app_user u WHERE u.role <> 'gateway'
           ORDER BY u.active DESC, u.role, u.id""",
    )
    await access.record_audit(conn, actor, subtype="search-type", action="E", entity="User")
    return tuple(found)


async def neighbourhood_choices(conn: Conn) -> tuple[str, ...]:
    found = await rows.scalars(
        conn,
        "SELECT neighbourhood FROM centre UNION SELECT neighbourhood FROM resident ORDER BY 1",
    )
    return tuple(str(n) for n in found)


async def create_user(
    conn: Conn,
    actor: Actor,
    *,
    user_id: str,
    username: str,
    display_name: str,
    role: str,
    password_hash: str,
    neighbourhoods: Sequence[str],
    station_id: str | None,
) -> None:
    actor.require(Capability.MANAGE_USERS)
    if not _USER_ID.fullmatch(user_id):
        raise InvalidRequest("사용자 번호: 영문·숫자·- / user id: letters, digits and '-'")
    if not _USERNAME.fullmatch(username.lower()):
        raise InvalidRequest("로그인 이름: 영문 소문자·숫자 2-40자 / login name: 2-40 a-z, 0-9")
    if role not in [str(r) for r in STAFF_ROLES]:
        raise InvalidRequest(f"역할 / role must be one of {', '.join(map(str, STAFF_ROLES))}")
    if not display_name.strip():
        raise InvalidRequest("이름을 입력하세요 / enter a name")
    if role == Role.STATION and not station_id:
        raise InvalidRequest(
            "측정대 계정에는 측정대가 필요합니다 / a station account needs a station"
        )
    taken = await rows.scalar(
        conn,
        "SELECT count(*) FROM app_user WHERE id = %s OR username = %s",
        (user_id, username.lower()),
    )
    if taken:
        raise InvalidRequest("이미 있는 사용자 번호 또는 로그인 이름 / user id or login name taken")
    await access.upsert_user(
        conn,
        user_id=user_id,
        username=username,
        display_name=display_name.strip(),
        role=Role(role),
        password_hash=password_hash,
        neighbourhoods=neighbourhoods,
        station_id=station_id or None,
    )
    await access.record_audit(conn, actor, subtype="create", action="C", entity=f"User/{user_id}")


async def _require_user(conn: Conn, user_id: str) -> None:
    if not await rows.scalar(
        conn, "SELECT count(*) FROM app_user WHERE id = %s AND role <> 'gateway'", (user_id,)
    ):
        raise NotFound(f"user {user_id}")


async def update_user(
    conn: Conn,
    actor: Actor,
    user_id: str,
    *,
    display_name: str,
    role: str,
    neighbourhoods: Sequence[str],
) -> None:
    """Role, name and neighbourhoods; an admin cannot take away their own admin role."""
    actor.require(Capability.MANAGE_USERS)
    await _require_user(conn, user_id)
    if role not in [str(r) for r in STAFF_ROLES if r is not Role.STATION]:
        raise InvalidRequest("역할을 고르세요 / choose a role")
    if user_id == actor.user_id and role != Role.ADMIN:
        raise InvalidRequest("자신의 관리자 역할은 바꿀 수 없습니다 / you cannot demote yourself")
    await conn.execute(
        "UPDATE app_user SET display_name = %s, role = %s WHERE id = %s AND role <> 'station'",
        (display_name.strip(), role, user_id),
    )
    await conn.execute("DELETE FROM user_neighbourhood WHERE user_id = %s", (user_id,))
    nbs = sorted(set(neighbourhoods))
    if nbs:
        await conn.execute(
            "INSERT INTO user_neighbourhood (user_id, neighbourhood) SELECT %s, unnest(%s::text[])",
            (user_id, nbs),
        )
    await access.record_audit(conn, actor, subtype="update", action="U", entity=f"User/{user_id}")


async def set_active(conn: Conn, actor: Actor, user_id: str, active: bool) -> None:
    """Deactivating ends the user's sessions and stops their tokens at once (both check
    ``active``); the account and its history stay."""
    actor.require(Capability.MANAGE_USERS)
    await _require_user(conn, user_id)
    if user_id == actor.user_id and not active:
        raise InvalidRequest("자신을 비활성화할 수 없습니다 / you cannot deactivate yourself")
    await conn.execute("UPDATE app_user SET active = %s WHERE id = %s", (active, user_id))
    if not active:
        await conn.execute("DELETE FROM user_session WHERE user_id = %s", (user_id,))
    entity = f"User/{user_id}/{'activate' if active else 'deactivate'}"
    await access.record_audit(conn, actor, subtype="update", action="U", entity=entity)


async def reset_password(conn: Conn, actor: Actor, user_id: str, new_hash: str) -> None:
    actor.require(Capability.MANAGE_USERS)
    await _require_user(conn, user_id)
    await access.set_password_hash(conn, user_id, new_hash)
    await conn.execute("DELETE FROM user_session WHERE user_id = %s", (user_id,))
    await access.record_audit(
        conn, actor, subtype="update", action="U", entity=f"User/{user_id}/password-reset"
    )


async def assign_caseload(
    conn: Conn, actor: Actor, user_id: str, resident_ids: Iterable[str]
) -> int:
    """Make ``user_id`` the nurse (or liaison officer) of these residents; returns how many."""
    actor.require(Capability.MANAGE_USERS)
    role = await rows.scalar(conn, "SELECT role FROM app_user WHERE id = %s", (user_id,))
    if role not in ("nurse", "liaison"):
        raise InvalidRequest("담당은 간호사·현장소통담당관만 / only nurses and liaison officers")
    ids = sorted({r.strip().upper() for r in resident_ids if r.strip()})
    bad = [r for r in ids if not _RESIDENT_ID.fullmatch(r)]
    if bad:
        raise InvalidRequest(f"주민 번호 형식 / resident ids look like R0000001: {bad[:5]}")
    column = "nurse_id" if role == "nurse" else "liaison_id"
    cur = await conn.execute(
        f"UPDATE resident SET {column} = %s WHERE id = ANY(%s)".encode(), (user_id, ids)
    )
    await access.record_audit(
        conn,
        actor,
        subtype="update",
        action="U",
        entity=f"User/{user_id}/caseload",
        residents=ids,
    )
    return cur.rowcount


# --- API tokens -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenRow:
    id: str
    user_id: str
    display_name: str
    role: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


async def tokens(conn: Conn, actor: Actor) -> tuple[TokenRow, ...]:
    actor.require(Capability.MANAGE_USERS)
    found = await rows.fetch_all(
        conn,
        TokenRow,
        """SELECT t.id, t.user_id, u.display_name, u.role, t.name, t.created_at, t.expires_at,
                  t.revoked_at, t.last_used_at
           FROM api_token t JOIN app_user u ON u.id = t.user_id
           ORDER BY (t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now()))
                    DESC, t.created_at DESC LIMIT 500""",
    )
    return tuple(found)


async def issue_token(
    conn: Conn, actor: Actor, user_id: str, name: str, days: int
) -> access.NewToken:
    """A bearer token for a user or service account (its scope is that account's role and
    neighbourhoods), valid ``days`` days; shown once."""
    actor.require(Capability.MANAGE_USERS)
    if not 1 <= days <= 730:
        raise InvalidRequest("유효 기간은 1-730일 / a token lasts 1 to 730 days")
    if not name.strip():
        raise InvalidRequest("용도를 적어 주세요 / say what the token is for")
    if not await rows.scalar(
        conn, "SELECT count(*) FROM app_user WHERE id = %s AND active", (user_id,)
    ):
        raise NotFound(f"user {user_id}")
    new = await access.create_token(conn, user_id, name.strip(), lifetime=timedelta(days=days))
    await access.record_audit(
        conn, actor, subtype="create", action="C", entity=f"ApiToken/{new.token_id}"
    )
    return new


async def revoke_token(conn: Conn, actor: Actor, token_id: str) -> None:
    await access.revoke_token(conn, actor, token_id)
    await access.record_audit(
        conn, actor, subtype="update", action="U", entity=f"ApiToken/{token_id}/revoke"
    )


async def token_accounts(conn: Conn) -> tuple[tuple[str, str, str], ...]:
    """(id, name, role) of the active accounts a token can be issued for."""
    found = await rows.fetch_all(
        conn,
        _Account,
        "SELECT id, display_name AS name, role FROM app_user WHERE active ORDER BY role, id",
    )
    return tuple((a.id, a.name, a.role) for a in found)


@dataclass(frozen=True, slots=True)
class _Account:
    id: str
    name: str
    role: str


# --- residents and devices --------------------------------------------------------------------

#: The columns of the residents CSV (UTF-8, a header row; the first three are required).
CSV_COLUMNS = (
    "id",
    "display_name",
    "neighbourhood",
    "card_number",
    "birth_date",
    "sex",
    "height_cm",
    "nurse_id",
    "liaison_id",
    "rehab",
    "moved_in_on",
    "welfare_recipient",
    "consent",
)


@dataclass(frozen=True, slots=True)
class ResidentForm:
    id: str
    display_name: str
    neighbourhood: str
    card_number: str | None = None
    birth_date: date | None = None
    sex: str | None = None
    height_cm: Decimal | None = None
    nurse_id: str | None = None
    liaison_id: str | None = None
    rehab: bool = False
    moved_in_on: date | None = None
    welfare_recipient: bool = False
    consent: bool = False  # signed the consent form (sharing with the liaison officer)


def parse_resident(values: dict[str, str], where: str = "") -> ResidentForm:
    """One resident from form or CSV fields; raises InvalidRequest naming the field."""

    def text(name: str) -> str | None:
        value = (values.get(name) or "").strip()
        return value or None

    def day(name: str) -> date | None:
        value = text(name)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError as exc:
            raise InvalidRequest(
                f"{where}{name}: 날짜는 2026-03-01 형식 / a date: {value!r}"
            ) from exc

    def flag(name: str) -> bool:
        return (text(name) or "").lower() in ("1", "true", "yes", "y", "예", "on")

    rid = (text("id") or "").upper()
    if not _RESIDENT_ID.fullmatch(rid):
        raise InvalidRequest(f"{where}id: 주민 번호는 R과 숫자 7자리 / like R0000001: {rid!r}")
    name = text("display_name")
    neighbourhood = text("neighbourhood")
    if not name or not neighbourhood:
        raise InvalidRequest(
            f"{where}이름과 동은 필수 / display_name and neighbourhood are required"
        )
    card = text("card_number")
    if card is not None and not _CARD.fullmatch(card.replace("-", "")):
        raise InvalidRequest(f"{where}card_number: 숫자 8-20자리 / 8-20 digits")
    sex = text("sex")
    if sex is not None and sex.upper() not in ("M", "F"):
        raise InvalidRequest(f"{where}sex: M 또는 F / M or F")
    height: Decimal | None = None
    if text("height_cm"):
        try:
            height = Decimal(str(text("height_cm")))
        except InvalidOperation as exc:
            raise InvalidRequest(f"{where}height_cm: 숫자 / a number") from exc
        if not Decimal(100) <= height <= Decimal(220):  # clinical-rules.md §2 Q-07
            raise InvalidRequest(f"{where}height_cm: 100-220 cm (§2)")
    return ResidentForm(
        id=rid,
        display_name=name,
        neighbourhood=neighbourhood,
        card_number=card.replace("-", "") if card else None,
        birth_date=day("birth_date"),
        sex=sex.upper() if sex else None,
        height_cm=height,
        nurse_id=text("nurse_id"),
        liaison_id=text("liaison_id"),
        rehab=flag("rehab"),
        moved_in_on=day("moved_in_on"),
        welfare_recipient=flag("welfare_recipient"),
        consent=flag("consent"),
    )


def parse_residents_csv(data: bytes) -> list[ResidentForm]:
    """Every row of a residents CSV, or InvalidRequest naming the first bad row (nothing is
    stored unless every row is good)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest("CSV는 UTF-8이어야 합니다 / the CSV must be UTF-8") from exc
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in CSV_COLUMNS[:3] if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if missing or unknown:
        raise InvalidRequest(
            f"CSV 머리글 / header: missing {missing}, unknown {unknown}; "
            f"columns: {', '.join(CSV_COLUMNS)}"
        )
    out = []
    for line, row in enumerate(reader, start=2):
        clean = {str(k).strip(): str(v or "") for k, v in row.items() if k is not None}
        out.append(parse_resident(clean, where=f"{line}행 / line {line}: "))
    if not out:
        raise InvalidRequest("CSV에 주민이 없습니다 / the CSV has no rows")
    if len(out) > 20000:
        raise InvalidRequest("한 번에 20,000명까지 / at most 20,000 rows at once")
    ids = [r.id for r in out]
    if len(set(ids)) != len(ids):
        raise InvalidRequest("CSV에 같은 주민 번호가 두 번 있습니다 / an id appears twice")
    return out


async def register_residents(
    conn: Conn, actor: Actor, residents: Sequence[ResidentForm]
) -> tuple[int, int]:
    """Create or update residents (by id); returns (created, updated). New residents who moved
    in get their contact task (api.store.web_newcomers)."""
    from api.store import web_newcomers  # the new-resident plan (issue 14.4)

    actor.require(Capability.MANAGE_USERS)
    ids = [r.id for r in residents]
    existing = set(await rows.scalars(conn, "SELECT id FROM resident WHERE id = ANY(%s)", (ids,)))
    staff_ids = {r.nurse_id for r in residents if r.nurse_id} | {
        r.liaison_id for r in residents if r.liaison_id
    }
    if staff_ids:
        known = set(
            await rows.scalars(
                conn, "SELECT id FROM app_user WHERE id = ANY(%s)", (sorted(staff_ids),)
            )
        )
        if staff_ids - known:
            raise InvalidRequest(f"없는 담당자 / unknown staff: {sorted(staff_ids - known)[:5]}")
    await registry.upsert_residents(
        conn,
        [
            registry.Resident(
                id=r.id,
                display_name=r.display_name,
                neighbourhood=r.neighbourhood,
                card_number=r.card_number,
                birth_date=r.birth_date,
                sex=r.sex,
                height_cm=r.height_cm,
                nurse_id=r.nurse_id,
                liaison_id=r.liaison_id,
                rehab=r.rehab,
            )
            for r in residents
        ],
    )
    async with conn.cursor() as cur:
        await cur.executemany(
            "UPDATE resident SET moved_in_on = %s, welfare_recipient = %s WHERE id = %s",
            [(r.moved_in_on, r.welfare_recipient, r.id) for r in residents],
        )
    for r in residents:
        if r.consent and r.id not in existing:
            await access.record_consent(
                conn,
                actor,
                resident_id=r.id,
                purpose=access.ConsentPurpose.LIAISON_SHARING,
                recipient_roles=("liaison", "nurse"),
                period_start=datetime.now().astimezone(),
                source="등록 시 동의서 / consent form at registration",
            )
    await web_newcomers.plan_contacts(conn, [r.id for r in residents if r.moved_in_on])
    await access.record_audit(
        conn, actor, subtype="create", action="C", entity="Patient (registration)", residents=ids
    )
    return len(set(ids) - existing), len(set(ids) & existing)


@dataclass(frozen=True, slots=True)
class DeviceForm:
    id: str
    kind: str
    model: str | None
    station_id: str | None
    owner_id: str | None


DEVICE_KINDS = ("blood-pressure", "glucose", "weight", "body-composition")


async def register_device(conn: Conn, actor: Actor, form: DeviceForm) -> None:
    actor.require(Capability.MANAGE_USERS)
    if not form.id.strip():
        raise InvalidRequest("기기 번호를 입력하세요 / enter the device id (serial or address)")
    if form.kind not in DEVICE_KINDS:
        raise InvalidRequest(f"기기 종류 / kind must be one of {', '.join(DEVICE_KINDS)}")
    if bool(form.station_id) == bool(form.owner_id):
        raise InvalidRequest(
            "측정대 기기 또는 개인 기기 중 하나 / either a station device or a resident's own"
        )
    if form.owner_id and not await rows.scalar(
        conn, "SELECT count(*) FROM resident WHERE id = %s", (form.owner_id,)
    ):
        raise NotFound(f"resident {form.owner_id}")
    if form.station_id and not await rows.scalar(
        conn, "SELECT count(*) FROM station WHERE id = %s", (form.station_id,)
    ):
        raise NotFound(f"station {form.station_id}")
    address = form.id if re.fullmatch(r"([0-9A-F]{2}:){5}[0-9A-F]{2}", form.id.upper()) else None
    await registry.upsert_devices(
        conn,
        [
            registry.Device(
                id=form.id.strip(),
                kind=form.kind,
                address=address.upper() if address else None,
                model=form.model or None,
                station_id=form.station_id or None,
                owner_id=form.owner_id or None,
            )
        ],
    )
    await access.record_audit(
        conn,
        actor,
        subtype="create",
        action="C",
        entity="Device (registration)",
        residents=[form.owner_id] if form.owner_id else [],
    )


# --- dead letters -----------------------------------------------------------------------------


async def dead_letters(conn: Conn, actor: Actor, state: str) -> list[deadletter.DeadLetterRow]:
    actor.require(Capability.MANAGE_USERS)
    if state not in ("new", "replayed", "dismissed"):
        raise InvalidRequest("state: new, replayed or dismissed")
    found = await deadletter.list_dead_letters(conn, state=state, limit=200)
    await access.record_audit(conn, actor, subtype="search-type", action="E", entity="DeadLetter")
    return found


async def replay_dead_letter(conn: Conn, actor: Actor, letter_id: int) -> deadletter.ReplayResult:
    actor.require(Capability.MANAGE_USERS)
    try:
        result = await deadletter.replay_dead_letter(conn, letter_id, actor.user_id)
    except deadletter.ReplayConflict as exc:
        raise InvalidRequest(str(exc)) from exc
    await access.record_audit(
        conn, actor, subtype="update", action="U", entity=f"DeadLetter/{letter_id}/replay"
    )
    return result


async def dismiss_dead_letter(conn: Conn, actor: Actor, letter_id: int, reason: str) -> None:
    actor.require(Capability.MANAGE_USERS)
    if not reason.strip():
        raise InvalidRequest("버리는 이유를 적어 주세요 / give a reason to discard")
    if not await deadletter.dismiss_dead_letter(conn, letter_id, actor.user_id):
        raise InvalidRequest(f"처리할 수 없는 메시지 / dead letter {letter_id} is not new")
    await conn.execute(
        "UPDATE dead_letter SET resolution_note = %s WHERE id = %s", (reason.strip(), letter_id)
    )
    await access.record_audit(
        conn, actor, subtype="update", action="U", entity=f"DeadLetter/{letter_id}/discard"
    )


# --- the audit trail, one line per request ----------------------------------------------------


#: Rows one audit page looks through (newest first from its cursor): 50 lines of requests that
#: each touched up to a few hundred residents. Lines beyond are on the next page.
AUDIT_WINDOW = 20000


@dataclass(frozen=True, slots=True)
class AuditLine:
    """The rows one request wrote (its transaction): what it touched and whom."""

    first_id: int
    recorded: datetime
    agent_user_id: str | None
    agent_name: str | None
    agent_role: str | None
    subtype: str
    action: str
    outcome: str
    entity: str
    residents: list[str]
    resident_count: int


async def audit_lines(
    conn: Conn,
    actor: Actor,
    *,
    resident_id: str | None = None,
    agent_user_id: str | None = None,
    entity: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> tuple[AuditLine, ...]:
    """The audit trail, newest first, one line per request: the rows a request writes share
    its transaction (``audit_event.txid``), so a page showing 50 residents is one line naming
    them, with everything it read. Paged by ``before_id`` (the oldest line's first row)."""
    actor.require(Capability.READ_AUDIT)
    found = await rows.fetch_all(
        conn,
        AuditLine,
        """SELECT min(a.id) AS first_id, min(a.recorded) AS recorded, a.agent_user_id,
                  max(u.display_name) AS agent_name, a.agent_role,
                  string_agg(DISTINCT a.subtype, ', ') AS subtype,
                  string_agg(DISTINCT a.action, ', ') AS action,
                  max(a.outcome::int)::text AS outcome,
                  string_agg(DISTINCT a.entity, ', ') AS entity,
                  coalesce((array_agg(DISTINCT a.resident_id)
                      FILTER (WHERE a.resident_id IS NOT NULL))[1:5], '{}') AS residents,
                  count(DISTINCT a.resident_id)::int AS resident_count
           FROM audit_event a LEFT JOIN app_user u ON u.id = a.agent_user_id
           WHERE (%(agent)s::text IS NULL OR a.agent_user_id = %(agent)s)
             AND (%(since)s::timestamptz IS NULL OR a.recorded >= %(since)s)
             AND (%(before)s::bigint IS NULL OR a.id < %(before)s)
             AND (%(rid)s::text IS NULL OR coalesce(a.txid, -a.id) IN (
                  SELECT coalesce(b.txid, -b.id) FROM audit_event b
                  WHERE b.resident_id = %(rid)s))
             -- a page reads at most the newest WINDOW rows before its cursor (the index on
             -- id walks them), so the page costs the same for a trail of any length
             AND a.id >= coalesce((SELECT min(w.id) FROM (
                  SELECT c.id FROM audit_event c
                  WHERE (%(before)s::bigint IS NULL OR c.id < %(before)s)
                    AND (%(agent)s::text IS NULL OR c.agent_user_id = %(agent)s)
                  ORDER BY c.id DESC LIMIT %(window)s) w), 0)
           GROUP BY coalesce(a.txid, -a.id), a.agent_user_id, a.agent_role
           HAVING (%(entity)s::text IS NULL OR bool_or(a.entity ILIKE %(entity_like)s))
              AND (%(outcome)s::text IS NULL OR bool_or(a.outcome = %(outcome)s))
              AND (%(rid)s::text IS NULL OR bool_or(a.resident_id = %(rid)s))
           ORDER BY min(a.id) DESC LIMIT %(limit)s""",
        {
            "agent": agent_user_id,
            "entity": entity,
            "entity_like": f"%{entity}%" if entity else None,
            "outcome": outcome,
            "since": since,
            "before": before_id,
            "rid": resident_id,
            "limit": max(1, min(limit, 200)),
            "window": AUDIT_WINDOW,
        },
    )
    await access.record_audit(
        conn,
        actor,
        subtype="search-type",
        action="E",
        entity="AuditEvent",
        residents=(resident_id,) if resident_id else (),
    )
    return tuple(found)
