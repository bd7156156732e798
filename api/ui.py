"""Template helpers: navigation by role, Korean-first labels, local-time formatting."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from api import glossary
from api.glossary import (
    AGENT_LABELS,
    CODE_LABELS,
    PRIORITY_LABELS,
    ROLE_LABELS,
    SEVERITY_LABELS,
    TASK_ROLE_LABELS,
    TASK_STATE_LABELS,
    ago,
)
from api.store.access import Actor, Capability, Role
from api.store.web_search import may_search
from ingest.fhir import vocab
from ingest.store.registry import RELATIONSHIPS

SEOUL = ZoneInfo("Asia/Seoul")


def role_label(role: Role | str) -> str:
    """A role's Korean-first label; the audit trail's other agents (a FHIR Subscription the
    deliverer sent to) by theirs."""
    try:
        return ROLE_LABELS.get(Role(role).value, str(role))
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


def today() -> date:
    """Today in Asia/Seoul, where the district is: the server's own zone (often UTC) is a day
    behind from 00:00 to 09:00 Seoul time."""
    return datetime.now(SEOUL).date()


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
