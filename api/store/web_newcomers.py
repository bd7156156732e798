"""New residents (junggu-district.md "New residents", issue 14.4).

The district contacts every resident who moves in and consents within a week: basic livelihood
(기초수급) recipients get a visit by their liaison officer, everyone else a health-needs survey
call and an introduction to the U-health centre by the health branch (the visiting nurses).
Registering a resident with a moving-in date creates that task, once, for the right person,
due a week after moving in; it shows on the nurse's worklist or in the liaison officer's view.
The tasks are FHIR Tasks without a flag (``follow_up_task.flag_id`` NULL).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from api.store import rows
from api.store.access import Conn

SEOUL = ZoneInfo("Asia/Seoul")
#: Contact within a week of moving in (junggu-district.md).
CONTACT_WITHIN = timedelta(days=7)
#: Older moves are not new any more: no task for someone who moved in long ago.
NEW_FOR = timedelta(days=90)

VISIT_TEXT = (
    "새로 전입한 기초수급 주민입니다. 전입 1주일 안에 방문해 주세요 (복지 연계). "
    "/ A benefit recipient moved in: visit within a week of moving in."
)
SURVEY_TEXT = (
    "새로 전입한 주민입니다. 1주일 안에 건강 요구도 조사 전화를 하고 U-건강센터를 안내해 주세요. "
    "/ A new resident moved in: call within a week for the health-needs survey and introduce "
    "the U-health centre."
)


@dataclass(frozen=True, slots=True)
class _Newcomer:
    id: str
    moved_in_on: date
    welfare_recipient: bool
    nurse_id: str | None
    liaison_id: str | None


def contact_task(n: _Newcomer) -> tuple[str, str | None, str, datetime]:
    """(role, owner, description, due) of the contact a newcomer needs (pure)."""
    due_day = n.moved_in_on + CONTACT_WITHIN
    due = datetime.combine(due_day, time(18, 0), SEOUL)
    if n.welfare_recipient and n.liaison_id:
        return "liaison", n.liaison_id, VISIT_TEXT, due
    return "nurse", n.nurse_id, SURVEY_TEXT, due


async def plan_contacts(conn: Conn, resident_ids: Sequence[str]) -> int:
    """Create the newcomer contact task of each resident who moved in recently (idempotent:
    the task's identifier is per resident and moving-in date). Returns how many were new."""
    if not resident_ids:
        return 0
    found = await rows.fetch_all(
        conn,
        _Newcomer,
        """SELECT id, moved_in_on, welfare_recipient, nurse_id, liaison_id FROM resident
           WHERE id = ANY(%s) AND active AND moved_in_on IS NOT NULL
             AND moved_in_on > current_date - %s""",
        (list(resident_ids), NEW_FOR),
    )
    now = datetime.now(UTC)
    created = 0
    for n in found:
        role, owner, text, due = contact_task(n)
        identifier = f"newcomer-{n.id}-{n.moved_in_on.isoformat()}"
        resource = {
            "resourceType": "Task",
            "identifier": [
                {"system": "https://daon.junggu.seoul.kr/fhir/sid/task", "value": identifier}
            ],
            "status": "requested",
            "intent": "plan",
            "priority": "routine",
            "code": {"text": "전입 주민 연락 / new-resident contact"},
            "description": text,
            "for": {"reference": f"Patient/{n.id}"},
            "authoredOn": now.isoformat(),
            "restriction": {"period": {"end": due.isoformat()}},
            **({"owner": {"reference": f"Practitioner/{owner}"}} if owner else {}),
        }
        cur = await conn.execute(
            """INSERT INTO follow_up_task (identifier, flag_id, resident_id, role, owner_id,
                   priority, status, business_status, due_at, description, resource,
                   created_at, updated_at)
               VALUES (%s, NULL, %s, %s, %s, 'routine', 'requested', 'open', %s, %s, %s::jsonb,
                       now(), now())
               ON CONFLICT (identifier) DO NOTHING""",
            (identifier, n.id, role, owner, due, text, json.dumps(resource, ensure_ascii=False)),
        )
        created += cur.rowcount
    return created
