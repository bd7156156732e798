"""Template helpers: navigation by role, Korean-first labels, local-time formatting."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from api import glossary
from api.glossary import ago
from api.store.access import Actor, Capability, Role
from api.store.web_search import may_search
from ingest.fhir import vocab
from ingest.store.registry import RELATIONSHIPS

SEOUL = ZoneInfo("Asia/Seoul")

ROLE_LABELS: dict[Role, str] = {
    Role.NURSE: "방문간호사 / nurse",
    Role.THERAPIST: "재활운동사 / therapist",
    Role.LIAISON: "현장소통담당관 / liaison officer",
    Role.STATION: "측정대 / station",
    Role.GATEWAY: "게이트웨이 / gateway",
    Role.ADMIN: "관리자 / admin",
}

TASK_ROLE_LABELS: dict[str, str] = {
    "nurse": "방문간호사 / nurse",
    "nurse_lead": "간호팀장 / nurse lead",
    "rehab": "재활운동사 / therapist",
    "liaison": "현장소통담당관 / liaison",
}
PRIORITY_LABELS: dict[str, str] = {
    "stat": "즉시 / stat",
    "asap": "최대한 빨리 / asap",
    "urgent": "긴급 / urgent",
    "routine": "정기 / routine",
}
TASK_STATE_LABELS: dict[str, str] = {
    "open": "열림 / open",
    "requested": "요청됨 / requested",
    "accepted": "수락 / accepted",
    "in-progress": "진행 중 / in progress",
    "on-hold": "보류 / on hold",
    "completed": "완료 / completed",
    "acknowledged": "확인됨 / acknowledged",
    "snoozed": "미룸 / snoozed",
    "escalated": "상향 / escalated",
    "resolved": "해결 / resolved",
    "superseded": "대체됨 / superseded",
    "cancelled": "취소 / cancelled",
}

SEVERITY_LABELS: dict[str, str] = {
    "critical": "위급 / critical",
    "urgent": "긴급 / urgent",
    "routine": "정기 / routine",
    "info": "참고 / info",
}


#: Agents of the audit trail that are not roles of an account.
AGENT_LABELS: dict[str, str] = {
    "subscription": "외부 알림 수신처 / subscription",
}


def role_label(role: Role | str) -> str:
    """A role's Korean-first label; the audit trail's other agents (a FHIR Subscription the
    deliverer sent to) by theirs."""
    try:
        return ROLE_LABELS.get(Role(role), str(role))
    except ValueError:
        return AGENT_LABELS.get(str(role), str(role))


def nav(actor: Actor) -> list[tuple[str, str]]:
    """The menu for this user's role (pages they cannot use are not offered)."""
    items: list[tuple[str, str]] = []
    if actor.role in (Role.NURSE, Role.ADMIN):
        items += [("/worklist", "작업 목록 / Worklist"), ("/visits", "방문 계획 / Visits")]
    if actor.role in (Role.THERAPIST, Role.ADMIN):
        items.append(("/rehab", "재활 / Rehab"))
    if actor.role is Role.LIAISON:
        items.append(("/liaison", "담당 주민 / My residents"))
        items.append(("/visits", "월간 방문 / Monthly visits"))
    if actor.can(Capability.RESOLVE_UNBOUND):
        items.append(("/unbound", "미배정 측정값 / Unbound"))
    if actor.can(Capability.CASE_REPORT):
        items.append(("/reports/case-meeting", "사례회의 / Case meeting"))
    if actor.role is Role.STATION:
        items.append(("/station", "측정대 / Station"))
    elif actor.can(Capability.CHECK_IN):
        items.append(("/stations", "측정대 잠금 / Station locks"))
    if actor.can(Capability.MANAGE_USERS):
        items += [
            ("/admin/users", "사용자 / Users"),
            ("/admin/tokens", "토큰 / Tokens"),
            ("/admin/registry", "등록 / Register"),
            ("/admin/dead-letters", "처리 불가 / Dead letters"),
        ]
    if actor.can(Capability.READ_AUDIT):
        items.append(("/admin/audit", "감사 기록 / Audit"))
    if actor.role is Role.ADMIN and actor.can(Capability.MANAGE_SUBSCRIPTIONS):
        items.append(("/admin/delivery", "알림 전송 / Delivery"))
    return items


def local(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A time in Asia/Seoul, or an em dash."""
    if value is None:
        return "—"
    return value.astimezone(SEOUL).strftime(fmt)


def local_date(value: date | datetime | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.astimezone(SEOUL).strftime("%Y-%m-%d")
    return value.isoformat()


def say(key: str, br: bool = False, **values: object) -> Markup:
    """A note of the glossary as HTML: the Korean, then the English smaller (on its own line
    with ``br``)."""
    said = glossary.note(key, **values)
    english = Markup('<span class="en">{}</span>').format(said.en) if said.en else Markup("")
    return Markup("{}{}{}").format(said.ko, Markup("<br>") if br else " ", english)


def okbox(page: str, key: str | None, **values: object) -> Markup:
    """The page's message after an action (``?m=key``), Korean first, or nothing."""
    said = glossary.message(page, key, **values)
    if said is None:
        return Markup("")
    return Markup('<p class="okbox" role="status">{} <span class="en">{}</span></p>').format(
        said.ko, said.en
    )


def install(templates: Jinja2Templates) -> None:
    env: Any = templates.env
    env.globals.update(
        nav=nav,
        can_search=may_search,
        role_label=role_label,
        severity_labels=SEVERITY_LABELS,
        code_label=code_label,
        reading_value=reading_value,
        Capability=Capability,
        task_roles=TASK_ROLE_LABELS,
        priorities=PRIORITY_LABELS,
        task_states=TASK_STATE_LABELS,
        relationships=RELATIONSHIPS,
        rule_name=glossary.rule_name,
        reason_label=glossary.reason,
        audit_subtype=glossary.audit_subtype,
        audit_entity=glossary.audit_entity,
        purpose_label=glossary.purpose,
        station_label=glossary.station,
        gateway_label=glossary.gateway,
        say=say,
        okbox=okbox,
        device_kind=glossary.device_kind,
    )
    env.filters.update(
        local=local,
        local_date=local_date,
        ago=ago,
        summary=glossary.summary,
        flag_text=glossary.flag_text,
    )


#: Korean-first labels for the codes staff see most (fhir-mapping-and-anchors.md §1.1).
CODE_LABELS: dict[str, str] = {
    "85354-9": "혈압 / Blood pressure",
    "8867-4": "맥박 / Pulse",
    "41653-7": "혈당 / Glucose",
    "14743-9": "혈당 / Glucose",
    "2339-0": "혈당 / Glucose",
    "41604-0": "공복혈당 / Fasting glucose",
    "29463-7": "체중 / Weight",
    "8302-2": "키 / Height",
    "39156-5": "체질량지수 / BMI",
    "41982-0": "체지방률 / Body fat",
    "73708-0": "체지방량 / Fat mass",
    "73964-9": "근육량 / Muscle mass",
    "73965-6": "근육률 / Muscle %",
    "101683-1": "체수분 / Body water",
    "8280-0": "허리둘레 / Waist",
    "56115-9": "허리둘레 / Waist",
    "4548-4": "당화혈색소 / HbA1c",
    "daon-grip": "악력 / Handgrip",
    "daon-gait-speed": "보행 속도 / Gait speed",
    "daon-chair-stand": "의자 일어서기 5회 / Chair stand",
}


def _vocabulary_labels() -> dict[str, str]:
    """Every code ingest's vocabulary names ("식사 상태 (Meal context)"), as "식사 상태 / Meal
    context", for the codes CODE_LABELS does not list."""
    labels: dict[str, str] = {}
    concepts = [c for c in vars(vocab).values() if isinstance(c, vocab.Concept)]
    concepts += list(vocab.MEALS.values())
    for concept in concepts:
        if concept.text and glossary.HANGUL.search(concept.text):
            korean, _, english = concept.text.partition(" (")
            labels.setdefault(
                concept.primary.code, f"{korean} / {english.rstrip(')')}" if english else korean
            )
    return labels


VOCABULARY_LABELS = _vocabulary_labels()


def code_label(code: str, display: str | None = None) -> str:
    """Korean first: our label, else the vocabulary's, else a Korean stored display, else a
    neutral "기타 항목" with the stored display or code after it."""
    found = CODE_LABELS.get(code) or VOCABULARY_LABELS.get(code)
    if found:
        return found
    if display and glossary.HANGUL.search(display):
        return display
    return f"기타 항목 / other: {display or code}"


def reading_value(
    code: str, value: float | None, unit: str | None, components: dict[str, float]
) -> str:
    """'128/82 mmHg' for a BP panel, '104 mg/dL' otherwise, '—' when absent."""
    if code == "85354-9" and "8480-6" in components and "8462-4" in components:
        return f"{components['8480-6']:.0f}/{components['8462-4']:.0f} mmHg"
    if value is None:
        return "—"
    shown = f"{value:.3f}".rstrip("0").rstrip(".")  # the stored precision, up to 3 decimals
    unit_text = glossary.unit(unit)
    return f"{shown} {unit_text}".strip()
