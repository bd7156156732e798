"""The nurse worklist (TIDE-style triage), flag actions, the month's visit plan and the printable
case-meeting report."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from api import glossary
from api.deps import Conn, CsrfChecked, WebSession
from api.routes.web import render
from api.security import local_path
from api.store import access, contacts, queries, web_worklist
from api.store.web_worklist import Category

router = APIRouter(include_in_schema=False)
SEOUL = ZoneInfo("Asia/Seoul")

CATEGORY_LABELS: dict[Category, tuple[str, str, str]] = {
    c: glossary.category(c.value) for c in Category
}
GROUP_LABELS = {
    "intensive": "집중관리군 / intensive",
    "regular": "정기관리군 / regular",
    "self_management": "자기역량지원군 / self-management",
    "none": "해당 없음 / none",
}
NbQuery = Annotated[str | None, Query(max_length=20)]


def _month(value: str | None) -> date:
    if not value:
        return datetime.now(SEOUL).date().replace(day=1)
    try:
        return datetime.strptime(value, "%Y-%m").date()
    except ValueError as exc:
        raise access.InvalidRequest("month must look like 2026-03") from exc


@router.get("/worklist")
async def worklist(
    request: Request,
    conn: Conn,
    session: WebSession,
    nb: NbQuery = None,
    scope: Annotated[str, Query(pattern="^(mine|all)$")] = "mine",
    group: Annotated[str, Query(pattern="^(|intensive|regular|self_management|none)$")] = "",
    rule: Annotated[str, Query(max_length=40, pattern="^[A-Za-z0-9-]*$")] = "",
    sort: Annotated[str, Query(pattern="^(alert|name|measured|reviewed)$")] = "alert",
    show: Annotated[str, Query(pattern="^(|critical|urgent|routine|no-data|device)$")] = "",
    page: Annotated[int, Query(ge=1, le=10000)] = 1,
) -> Response:
    actor = session.actor
    data = await web_worklist.worklist(
        conn,
        actor,
        neighbourhood=nb or None,
        mine=scope == "mine",
        group=group or None,
        rule=rule or None,
        sort=web_worklist.Sort(sort),
        only=Category(show) if show else None,
        page=page,
    )
    filters = {"scope": scope, "nb": nb or "", "group": group, "rule": rule, "sort": sort}
    listed = [row.resident_id for rows in data.sections.values() for row in rows]
    phones = await contacts.contacts(conn, actor, listed, entity="page:worklist contacts")
    return render(
        request,
        "worklist.html",
        {
            "actor": actor,
            "csrf_token": session.csrf_token,
            "w": data,
            "contacts": phones,
            "labels": CATEGORY_LABELS,
            "groups": GROUP_LABELS,
            "nb": nb or "",
            "scope": scope,
            "group": group,
            "rule": rule,
            "sort": sort,
            "show": show,
            "page": page,
            "query": lambda **changes: urlencode(
                {k: v for k, v in {**filters, **changes}.items() if v not in ("", None)}
            ),
            "snooze_default": (datetime.now(SEOUL) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
            "message": request.query_params.get("m"),
        },
    )


def _back(next_url: str, message: str) -> RedirectResponse:
    target = local_path(next_url, "/worklist")
    joiner = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{joiner}m={message}", status_code=303)


@router.post("/flags/{flag_id}/acknowledge")
async def acknowledge(
    flag_id: int, conn: Conn, session: CsrfChecked, next: Annotated[str, Form()] = "/worklist"
) -> Response:
    await web_worklist.acknowledge(conn, session.actor, flag_id)
    return _back(next, "acknowledged")


@router.post("/flags/{flag_id}/reached")
async def reached(
    flag_id: int, conn: Conn, session: CsrfChecked, next: Annotated[str, Form()] = "/worklist"
) -> Response:
    """The nurse spoke with the resident: no welfare check at 60 minutes (§0)."""
    await web_worklist.reached(conn, session.actor, flag_id)
    return _back(next, "reached")


@router.post("/flags/{flag_id}/snooze")
async def snooze(
    flag_id: int,
    conn: Conn,
    session: CsrfChecked,
    until: Annotated[datetime, Form()],
    reason: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form()] = "/worklist",
) -> Response:
    when = until if until.tzinfo else until.replace(tzinfo=SEOUL)
    await web_worklist.snooze(conn, session.actor, flag_id, when, reason)
    return _back(next, "snoozed")


@router.post("/flags/{flag_id}/resolve")
async def resolve(
    flag_id: int,
    conn: Conn,
    session: CsrfChecked,
    note: Annotated[str, Form(max_length=2000)] = "",
    next: Annotated[str, Form()] = "/worklist",
) -> Response:
    await web_worklist.resolve(conn, session.actor, flag_id, note)
    return _back(next, "resolved")


@router.post("/tasks/{task_id}/status")
async def task_status(
    task_id: int,
    conn: Conn,
    session: CsrfChecked,
    status: Annotated[str, Form()],
    note: Annotated[str, Form(max_length=2000)] = "",
    next: Annotated[str, Form()] = "/worklist",
) -> Response:
    await queries.update_task_status(conn, session.actor, str(task_id), status, note)
    return _back(next, "task")


@router.get("/visits")
async def visits(
    request: Request,
    conn: Conn,
    session: WebSession,
    month: Annotated[str | None, Query(max_length=7)] = None,
    nb: NbQuery = None,
) -> Response:
    actor = session.actor
    chosen = _month(month)
    if actor.role is access.Role.LIAISON:  # her own month, without clinical values
        planned = await web_worklist.liaison_visit_plan(conn, actor, chosen)
        phones = await contacts.contacts(
            conn, actor, [r.resident_id for r in planned], entity="page:visits contacts"
        )
        return render(
            request,
            "liaison_visits.html",
            {
                "actor": actor,
                "csrf_token": session.csrf_token,
                "rows": planned,
                "contacts": phones,
                "month": chosen,
            },
        )
    rows = await web_worklist.visit_plan(conn, actor, chosen, neighbourhood=nb or None)
    phones = await contacts.contacts(
        conn, actor, [r.resident_id for r in rows], entity="page:visits contacts"
    )
    return render(
        request,
        "visits.html",
        {
            "actor": actor,
            "csrf_token": session.csrf_token,
            "rows": rows,
            "contacts": phones,
            "month": chosen,
            "groups": GROUP_LABELS,
            "nb": nb or "",
            "areas": actor.neighbourhoods or await web_worklist.neighbourhoods(conn, actor),
            "today": datetime.now(SEOUL).date(),
        },
    )


@router.get("/reports/case-meeting")
async def case_meeting(
    request: Request,
    conn: Conn,
    session: WebSession,
    month: Annotated[str | None, Query(max_length=7)] = None,
    nb: NbQuery = None,
) -> Response:
    actor = session.actor
    actor.require(access.Capability.CASE_REPORT)
    chosen = _month(month)
    choices = list(actor.neighbourhoods) or list(await web_worklist.neighbourhoods(conn, actor))
    neighbourhood = nb or (choices[0] if choices else None)
    report = None
    if neighbourhood:
        report = await web_worklist.case_meeting_report(conn, actor, neighbourhood, chosen)
    return render(
        request,
        "case_meeting.html",
        {
            "actor": actor,
            "csrf_token": session.csrf_token,
            "report": report,
            "choices": choices,
            "nb": neighbourhood or "",
            "month": chosen,
            "groups": GROUP_LABELS,
            "now": datetime.now(UTC),
        },
    )
