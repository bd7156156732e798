"""The resident page: trend charts with guideline bands, the readings table, reviews, visits,
consents, and the actions staff take for one resident."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse
from markupsafe import Markup

from api import charts, entries, glossary, manual, ui
from api.deps import Conn, CsrfChecked, WebSession
from api.glossary import CHART
from api.routes.station import publish_checkin
from api.routes.web import render
from api.store import access, contacts, web_pages, web_readings, web_station, web_worklist
from api.store.access import Capability
from api.store.web_station import Reading
from clinical import staff

router = APIRouter(include_in_schema=False)

PERIODS = (7, 14, 30, 90, 180, 365)


def build_charts(
    readings: tuple[Reading, ...],
    start: datetime,
    end: datetime,
    sex: str | None,
    excluded: Mapping[str, staff.Excluded] | None = None,
) -> list[tuple[charts.Chart, Markup]]:
    """The resident's trend charts; readings in ``excluded`` (the quality filters' decisions,
    clinical-rules.md §2) are drawn apart from the valid ones, as open circles."""
    kept_out = excluded or {}

    def series(
        label: str, codes: tuple[str, ...], colour: str, component: str | None = None, **kw: bool
    ) -> charts.Series:
        valid: list[tuple[datetime, float]] = []
        out: list[tuple[datetime, float, str]] = []
        for r in readings:
            if r.code not in codes or r.status == "entered-in-error":
                continue
            value = r.components.get(component) if component else r.value
            if value is None:
                continue
            why = kept_out.get(r.id)
            if why is None:
                valid.append((r.effective_at, float(value)))
            else:
                out.append((r.effective_at, float(value), f"{why.rule} {why.reason}"))
        return charts.Series(label, valid, colour, excluded=out, **kw)

    bp = ("85354-9",)
    built = [
        charts.Chart(
            title=CHART["bp"],
            unit="mmHg",
            series=[
                series(CHART["systolic"], bp, "#0b4f8a", "8480-6"),
                series(CHART["diastolic"], bp, "#7a3e9d", "8462-4", dashed=True),
            ],
            start=start,
            end=end,
            bands=[charts.Band(90, 120, CHART["normal-systolic"], full_width=False)],
            lines=[
                charts.RefLine(140, CHART["office-htn"]),
                charts.RefLine(135, CHART["home-htn"], "#8a4b00"),
                charts.RefLine(90, CHART["diastolic-90"], "#5b616b"),
            ],
            y_floor=50,
            y_ceiling=160,
        ),
        charts.Chart(
            title=CHART["glucose"],
            unit="mg/dL",
            series=[series(CHART["glucose.series"], ("41653-7", "2339-0", "41604-0"), "#1d6b2f")],
            start=start,
            end=end,
            bands=[charts.Band(80, 130, CHART["pre-meal"])],
            lines=[
                charts.RefLine(70, CHART["low"]),
                charts.RefLine(180, CHART["after-meals"], "#8a4b00"),
            ],
            y_floor=50,
            y_ceiling=200,
        ),
        charts.Chart(
            title=CHART["weight"],
            unit="kg",
            series=[series(CHART["weight.series"], ("29463-7",), "#0b4f8a")],
            start=start,
            end=end,
        ),
    ]
    fat_limit = 25.0 if sex == "M" else 35.0
    built.append(
        charts.Chart(
            title=CHART["body"],
            unit="% · kg",
            series=[
                series(CHART["body-fat"], ("41982-0",), "#a4000f"),
                series(CHART["muscle"], ("73964-9",), "#0b4f8a", dashed=True),
            ],
            start=start,
            end=end,
            lines=[
                charts.RefLine(
                    fat_limit, CHART["fat-limit"].format(limit=f"{fat_limit:.0f}"), "#8a4b00"
                )
            ],
        )
    )
    return [(c, Markup(charts.render(c))) for c in built]


@router.get("/residents/{resident_id}")
async def resident(
    request: Request,
    resident_id: str,
    conn: Conn,
    session: WebSession,
    days: Annotated[int, Query(ge=7, le=730)] = 180,
) -> Response:
    actor = session.actor
    page = await web_pages.resident_page(conn, actor, resident_id, days=days)
    flags, tasks = await web_worklist.resident_flags_and_tasks(conn, actor, resident_id)
    consents: tuple[access.Consent, ...] = ()
    if actor.can(Capability.MANAGE_CONSENT):
        consents = await access.consents_for(conn, actor, resident_id)
    stations: tuple[web_station.Station, ...] = ()
    if actor.can(Capability.CHECK_IN):
        stations = await web_station.list_stations(conn)
    found = await contacts.contacts(conn, actor, [resident_id], entity="page:resident contacts")
    end = datetime.now(UTC)
    start = end - timedelta(days=days)
    excluded = await staff.quality_exclusions(conn, resident_id, start, end)
    return render(
        request,
        "resident.html",
        {
            "actor": actor,
            "csrf_token": session.csrf_token,
            "page": page,
            "contact": found.get(resident_id),
            "r": page.resident,
            "age": page.resident.age_on(ui.today()),
            "charts": build_charts(page.readings, start, end, page.resident.sex, excluded),
            "excluded": excluded,
            "legend": charts.legend,
            "days": days,
            "periods": PERIODS,
            "consents": consents,
            "flags": flags,
            "tasks": tasks,
            "snooze_default": (end + timedelta(days=1))
            .astimezone(charts.SEOUL)
            .strftime("%Y-%m-%dT%H:%M"),
            "stations": stations,
            "today": ui.today().isoformat(),
            "now": end,
            "now_local": end.astimezone(charts.SEOUL).strftime("%Y-%m-%dT%H:%M"),
            "message": request.query_params.get("m"),
            "entry_kinds": entries.KINDS,
            "today_seoul": datetime.now(charts.SEOUL).date().isoformat(),
            "symptom_labels": entries.SYMPTOMS,
        },
    )


def back(resident_id: str, message: str) -> RedirectResponse:
    return RedirectResponse(f"/residents/{resident_id}?m={message}", status_code=303)


@router.post("/residents/{resident_id}/review")
async def review(
    resident_id: str,
    conn: Conn,
    session: CsrfChecked,
    note: Annotated[str, Form(max_length=2000)] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    await web_pages.record_review(conn, session.actor, resident_id, note)
    if next == "worklist":
        return RedirectResponse("/worklist", status_code=303)
    return back(resident_id, "reviewed")


@router.post("/residents/{resident_id}/visits")
async def add_visit(
    resident_id: str,
    conn: Conn,
    session: CsrfChecked,
    visited_on: Annotated[date, Form()],
    kind: Annotated[str, Form()] = "home",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    await web_pages.record_visit(conn, session.actor, resident_id, visited_on, kind, note)
    return back(resident_id, "visit")


@router.post("/visits/{visit_id}/cancel")
async def cancel_visit(
    visit_id: int,
    conn: Conn,
    session: CsrfChecked,
    resident_id: Annotated[str, Form()] = "",
) -> Response:
    await web_pages.cancel_visit(conn, session.actor, visit_id)
    return back(resident_id, "visit-cancelled")


PURPOSE_LABELS = glossary.CONSENT_PURPOSES


def _day(value: date | None) -> datetime | None:
    return datetime.combine(value, datetime.min.time(), tzinfo=charts.SEOUL) if value else None


@router.post("/residents/{resident_id}/consents")
async def add_consent(
    request: Request,
    resident_id: str,
    conn: Conn,
    session: CsrfChecked,
    purpose: Annotated[str, Form()],
    period_start: Annotated[date, Form()],
    period_end: Annotated[date | None, Form()] = None,
    source: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
    confirm: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    """Granting consent: first a confirmation naming the resident, the purpose and the date,
    then the record (a FHIR Consent), which can be undone the same day."""
    actor = session.actor
    try:
        chosen = access.ConsentPurpose(purpose)
    except ValueError as exc:
        raise access.InvalidRequest(f"알 수 없는 목적 / unknown purpose {purpose!r}") from exc
    actor.require(Capability.MANAGE_CONSENT, resident_id)
    detail = await web_pages.resident_detail(conn, actor, resident_id)
    if confirm != "yes":
        return render(
            request,
            "consent_confirm.html",
            {
                "actor": actor,
                "csrf_token": session.csrf_token,
                "action": "grant",
                "r": detail,
                "purpose": chosen,
                "purpose_label": PURPOSE_LABELS[chosen],
                "period_start": period_start,
                "period_end": period_end,
                "source": source,
                "reason": reason,
                "today": ui.today().isoformat(),
            },
        )
    roles = (
        ("liaison",) if chosen is access.ConsentPurpose.LIAISON_SHARING else ("nurse", "therapist")
    )
    made = await access.record_consent(
        conn,
        actor,
        resident_id=resident_id,
        purpose=chosen,
        recipient_roles=roles,
        period_start=_day(period_start) or datetime.now(UTC),
        period_end=_day(period_end),
        source=source.strip() or None,
        reason=reason.strip() or None,
    )
    return RedirectResponse(
        f"/residents/{resident_id}?m=consent&c={made.id}#consent", status_code=303
    )


@router.get("/consents/{consent_id}/withdraw")
async def confirm_withdrawal(
    request: Request, consent_id: str, conn: Conn, session: WebSession
) -> Response:
    """The confirmation before a withdrawal: whose consent, for what, since when; the reason
    and the date the resident withdrew are asked for."""
    actor = session.actor
    consent = await access.consent_for_decision(
        conn, actor, consent_id, Capability.WITHDRAW_CONSENT
    )
    name = await _resident_name(conn, consent.resident_id)
    return render(
        request,
        "consent_confirm.html",
        {
            "actor": actor,
            "csrf_token": session.csrf_token,
            "action": "withdraw",
            "consent": consent,
            "name": name,
            "purpose_label": PURPOSE_LABELS.get(consent.purpose, consent.purpose),
            "today": ui.today().isoformat(),
        },
    )


async def _resident_name(conn: Conn, resident_id: str) -> str:
    """The name on the confirmation (the caller has checked the actor's authority)."""
    from api.store import rows

    name = await rows.scalar(
        conn, "SELECT display_name FROM resident WHERE id = %s", (resident_id,)
    )
    return str(name or resident_id)


@router.post("/consents/{consent_id}/withdraw")
async def withdraw(
    consent_id: str,
    conn: Conn,
    session: CsrfChecked,
    resident_id: Annotated[str, Form()] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
    effective_on: Annotated[date | None, Form()] = None,
    confirm: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    actor = session.actor
    consent = await access.consent_for_decision(
        conn, actor, consent_id, Capability.WITHDRAW_CONSENT
    )
    if confirm != "yes":  # not confirmed yet: to the confirmation page
        return RedirectResponse(f"/consents/{consent_id}/withdraw", status_code=303)
    if not reason.strip():
        raise access.InvalidRequest("철회 이유를 적어 주세요 / give the reason for the withdrawal")
    if effective_on is not None and effective_on > ui.today():
        raise access.InvalidRequest("철회일이 미래입니다 / the withdrawal date is in the future")
    effective = _day(effective_on) if effective_on and effective_on < ui.today() else None
    await access.withdraw_consent(
        conn, actor, consent_id, reason=reason.strip(), effective=effective
    )
    where = f"c={consent_id}&n={consent.resident_id}"
    if actor.role is access.Role.LIAISON:
        return RedirectResponse(f"/liaison?m=withdrawn&{where}", status_code=303)
    return RedirectResponse(
        f"/residents/{consent.resident_id}?m=withdrawn&{where}#consent", status_code=303
    )


@router.post("/consents/{consent_id}/undo")
async def undo_consent(consent_id: str, conn: Conn, session: CsrfChecked) -> Response:
    """Undo the day's grant or withdrawal (audited; older decisions stand)."""
    actor = session.actor
    done = await access.undo_consent_decision(conn, actor, consent_id)
    if actor.role is access.Role.LIAISON:
        return RedirectResponse("/liaison?m=undone", status_code=303)
    return RedirectResponse(f"/residents/{done.resident_id}?m=undone#consent", status_code=303)


@router.post("/residents/{resident_id}/checkin")
async def staff_checkin(
    request: Request,
    resident_id: str,
    conn: Conn,
    session: CsrfChecked,
    station_id: Annotated[str, Form()],
) -> Response:
    """A nurse checks a resident in at a station from her tablet (same path as the kiosk)."""
    checkin, card = await web_station.check_in_resident(
        conn, session.actor, resident_id, station_id
    )
    await publish_checkin(request, conn, checkin, card)
    return back(resident_id, "checked-in" if checkin.delivered else "checkin-not-delivered")


@router.post("/residents/{resident_id}/readings")
async def enter_reading(
    request: Request,
    resident_id: str,
    conn: Conn,
    session: CsrfChecked,
    kind: Annotated[str, Form()],
    measured_at: Annotated[datetime, Form()],
) -> Response:
    """A reading the nurse took on a home visit, typed in (the transaction Bundle's path)."""
    form = await request.form()
    values = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    try:
        reading = manual.from_form(resident_id, kind, measured_at, values)
    except manual.ManualEntryError as exc:
        raise access.InvalidRequest(str(exc)) from exc
    [outcome] = await web_readings.enter_readings(
        conn, session.actor, [web_readings.ManualEntry(resident_id, reading.measurement)]
    )
    return back(resident_id, "reading" if outcome.created else "reading-duplicate")


@router.post("/residents/{resident_id}/function-tests")
async def function_tests(
    request: Request,
    resident_id: str,
    conn: Conn,
    session: CsrfChecked,
    measured_at: Annotated[datetime, Form()],
) -> Response:
    """Grip, gait speed and chair-stand results the therapist (or nurse) measured."""
    form = await request.form()
    values: dict[str, Decimal] = {}
    for name in web_readings.FUNCTION_TESTS:
        text = str(form.get(name) or "").strip()
        if not text:
            continue
        try:
            values[name] = Decimal(text)
        except InvalidOperation as exc:
            raise access.InvalidRequest(
                f"{name}: {text!r} 은(는) 숫자가 아닙니다 / not a number"
            ) from exc
    when = measured_at if measured_at.tzinfo else measured_at.replace(tzinfo=charts.SEOUL)
    await web_readings.enter_function_tests(conn, session.actor, resident_id, when, values)
    return back(resident_id, "function-tests")


@router.post("/residents/{resident_id}/entries")
async def clinical_entry(
    request: Request,
    resident_id: str,
    conn: Conn,
    session: CsrfChecked,
    kind: Annotated[str, Form(max_length=20)],
    measured_at: Annotated[datetime, Form()],
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """What devices do not measure (PHQ-9, CIST, BMD, frailty, falls, symptoms, HbA1c,
    lipids, height, waist): stored, audited and evaluated at once (issue 14.2)."""
    form = await request.form()
    spec = entries.KINDS.get(kind)
    if spec is None:
        raise access.InvalidRequest(f"알 수 없는 항목 / unknown entry kind {kind!r}")
    values: dict[str, float] = {}
    for q in spec.quantities:
        text = str(form.get(q.name) or "").strip()
        if not text:
            continue
        try:
            values[q.name] = float(Decimal(text))
        except InvalidOperation as exc:
            raise access.InvalidRequest(
                f"{q.display}: {text!r} 은(는) 숫자가 아닙니다 / not a number"
            ) from exc
    cist = str(form.get("cist_result") or "")
    entry = entries.ClinicalEntry(
        kind=kind,
        resident_id=resident_id,
        measured_at=measured_at if measured_at.tzinfo else measured_at.replace(tzinfo=charts.SEOUL),
        values=values,
        symptoms=tuple(str(v) for v in form.getlist("symptom")),
        injury=form.get("injury") == "true",
        head_strike=form.get("head_strike") == "true",
        cist_decline={"decline": True, "normal": False}.get(cist),
        source=str(form.get("source") or "") or None,
        note=note.strip() or None,
    )
    outcome = await web_readings.enter_clinical(conn, session.actor, entry)
    message = "entry" if outcome.created else "reading-duplicate"
    return RedirectResponse(
        f"/residents/{resident_id}?m={message}&k={kind}#entry-result", status_code=303
    )
