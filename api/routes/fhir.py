"""FHIR R4 REST under /fhir (application/fhir+json; errors are OperationOutcome).

Reads and searches go through :mod:`api.store.queries`, which enforces scope and writes the
audit trail; this module only translates HTTP and FHIR syntax.
"""

from __future__ import annotations

import json
from decimal import Decimal
from importlib.metadata import version
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response

from api import fhirjson, fhirsearch, manual
from api.deps import Config, Conn, CurrentActor
from api.store import access, contacts, queries, web_readings

router = APIRouter(prefix="/fhir", tags=["FHIR"])

ListParam = Annotated[list[str] | None, Query()]
_FHIR_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {fhirjson.MEDIA_TYPE: {}}, "description": "FHIR resource or Bundle"},
}

#: Resource types whose read is wired (the CapabilityStatement lists exactly these).
READABLE: list[str] = [
    "Patient",
    "Observation",
    "Device",
    "Flag",
    "RiskAssessment",
    "Task",
    "AuditEvent",
]


class BundleError(access.InvalidRequest):
    """A request body (transaction Bundle, Task update) is malformed; the message says where."""


def fhir(body: str | dict[str, object], status: int = 200) -> Response:
    text = body if isinstance(body, str) else fhirjson.dumps(body)
    return Response(content=text, status_code=status, media_type=fhirjson.MEDIA_TYPE)


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


@router.get("/metadata", responses=_FHIR_RESPONSES, summary="CapabilityStatement")
async def metadata(request: Request) -> Response:
    statement = fhirjson.capability_statement(
        base_url(request), READABLE, version("daon"), transaction=True
    )
    return fhir(statement)


@router.get("/Patient/{resident_id}", responses=_FHIR_RESPONSES, summary="Patient read")
async def read_patient(resident_id: str, conn: Conn, actor: CurrentActor) -> Response:
    record = await queries.read_resident(conn, actor, resident_id)
    found = await contacts.contacts(conn, actor, [resident_id])
    return fhir(fhirjson.patient(record, found.get(resident_id)))


def _observation_query(
    request: Request,
    config: Config,
    *,
    patient: list[str] | None,
    subject: list[str] | None,
    code: list[str] | None,
    category: list[str] | None,
    date: list[str] | None,
    device: list[str] | None,
    identifier: list[str] | None,
    status: list[str] | None,
    count: list[str] | None,
    sort: list[str] | None,
    cursor: str | None,
) -> queries.ObservationQuery:
    residents = fhirsearch.references("patient", patient or [], "Patient")
    residents += fhirsearch.references("subject", subject or [], "Patient")
    sorts = sort or ["-date"]
    if sorts[-1] not in ("date", "-date"):
        raise fhirsearch.SearchError("_sort", "only date and -date are supported")
    return queries.ObservationQuery(
        residents=residents,
        codes=fhirsearch.tokens("code", code or []),
        categories=fhirsearch.tokens("category", category or []),
        dates=fhirsearch.date_conditions(date or []),
        devices=fhirsearch.references("device", device or [], "Device"),
        identifiers=fhirsearch.tokens("identifier", identifier or []),
        statuses=tuple(s for value in status or [] for s in value.split(",") if s),
        newest_first=sorts[-1] == "-date",
        count=fhirsearch.count(count or [], config.page_size, config.max_page_size),
        after=fhirsearch.decode_cursor(cursor) if cursor else None,
    )


@router.get("/Observation", responses=_FHIR_RESPONSES, summary="Observation search")
async def search_observations(
    request: Request,
    conn: Conn,
    actor: CurrentActor,
    config: Config,
    patient: ListParam = None,
    subject: ListParam = None,
    code: ListParam = None,
    category: ListParam = None,
    date: ListParam = None,
    device: ListParam = None,
    identifier: ListParam = None,
    status: ListParam = None,
    count: Annotated[list[str] | None, Query(alias="_count")] = None,
    sort: Annotated[list[str] | None, Query(alias="_sort")] = None,
    cursor: Annotated[str | None, Query(alias="_cursor")] = None,
) -> Response:
    query = _observation_query(
        request,
        config,
        patient=patient,
        subject=subject,
        code=code,
        category=category,
        date=date,
        device=device,
        identifier=identifier,
        status=status,
        count=count,
        sort=sort,
        cursor=cursor,
    )
    page = await queries.search_observations(conn, actor, query)
    base = base_url(request)
    next_url = None
    if page.next_after is not None:
        next_url = str(
            request.url.include_query_params(_cursor=fhirsearch.encode_cursor(page.next_after))
        )
    body = fhirjson.searchset(
        str(request.url),
        next_url,
        ((f"{base}/Observation/{r.id}", r.json) for r in page.resources),
    )
    return fhir(body)


@router.get("/Observation/$lastn", responses=_FHIR_RESPONSES, summary="Observation $lastn")
async def observation_lastn(
    request: Request,
    conn: Conn,
    actor: CurrentActor,
    patient: ListParam = None,
    subject: ListParam = None,
    code: ListParam = None,
    category: ListParam = None,
    max: Annotated[str | None, Query()] = None,
) -> Response:
    residents = fhirsearch.references("patient", patient or [], "Patient")
    residents += fhirsearch.references("subject", subject or [], "Patient")
    if len(set(residents)) != 1:
        raise fhirsearch.SearchError("patient", "$lastn needs exactly one patient")
    try:
        max_per_code = int(max) if max is not None else 1
    except ValueError as exc:
        raise fhirsearch.SearchError("max", "must be a whole number") from exc
    if not 1 <= max_per_code <= 100:
        raise fhirsearch.SearchError("max", "must be between 1 and 100")
    found = await queries.last_n(
        conn,
        actor,
        residents[0],
        max_per_code=max_per_code,
        codes=fhirsearch.tokens("code", code or []),
        categories=fhirsearch.tokens("category", category or []),
    )
    base = base_url(request)
    body = fhirjson.searchset(
        str(request.url),
        None,
        ((f"{base}/Observation/{r.id}", r.json) for r in found),
        total=len(found),
    )
    return fhir(body)


@router.get("/Observation/{observation_id}", responses=_FHIR_RESPONSES, summary="Observation read")
async def read_observation(observation_id: str, conn: Conn, actor: CurrentActor) -> Response:
    stored = await queries.read_observation(conn, actor, observation_id)
    return fhir(stored.json)


@router.get("/Device/{device_id}", responses=_FHIR_RESPONSES, summary="Device read")
async def read_device(device_id: str, conn: Conn, actor: CurrentActor) -> Response:
    record = await queries.read_device(conn, actor, device_id)
    if record.resource_json is not None:
        return fhir(record.resource_json)
    return fhir(fhirjson.device(record))


@router.get("/Flag/{flag_id}", responses=_FHIR_RESPONSES, summary="Flag read")
async def read_flag(flag_id: str, conn: Conn, actor: CurrentActor) -> Response:
    record = await queries.read_flag(conn, actor, flag_id)
    return fhir(record.flag_json or fhirjson.flag(record))


@router.get(
    "/RiskAssessment/{assessment_id}", responses=_FHIR_RESPONSES, summary="RiskAssessment read"
)
async def read_risk_assessment(assessment_id: str, conn: Conn, actor: CurrentActor) -> Response:
    record = await queries.read_flag(conn, actor, assessment_id, entity="RiskAssessment")
    return fhir(record.assessment_json or fhirjson.risk_assessment(record))


@router.get("/Task/{task_id}", responses=_FHIR_RESPONSES, summary="Task read")
async def read_task(task_id: str, conn: Conn, actor: CurrentActor) -> Response:
    stored = await queries.read_task(conn, actor, task_id)
    return fhir(stored.json)


@router.put("/Task/{task_id}", responses=_FHIR_RESPONSES, summary="Task update (status only)")
async def update_task(
    task_id: str,
    conn: Conn,
    actor: CurrentActor,
    task: Annotated[dict[str, Any], Body(media_type=fhirjson.MEDIA_TYPE)],
) -> Response:
    """Update a Task's status (accepted, in-progress, on-hold, completed); a new ``note`` is
    appended. Other elements are owned by the clinical runner and must not change."""
    if task.get("resourceType") != "Task":
        raise BundleError("the body must be a Task")
    if str(task.get("id", task_id)) != task_id:
        raise BundleError("the Task id in the body does not match the URL")
    status = task.get("status")
    if not isinstance(status, str):
        raise BundleError("Task.status is required")
    current = json.loads((await queries.read_task(conn, actor, task_id)).json)
    changed = sorted(
        k
        for k in set(task) | set(current)
        if k not in ("status", "note", "meta", "text", "lastModified")
        and task.get(k, current.get(k)) != current.get(k)
    )
    if changed:
        raise BundleError(
            f"only status (and a note) may change; also changed: {', '.join(changed)}"
        )
    notes = task.get("note") or []
    new_note = None
    if isinstance(notes, list) and len(notes) > len(current.get("note") or []):
        last = notes[-1]
        new_note = str(last.get("text", "")) if isinstance(last, dict) else None
    stored = await queries.update_task_status(conn, actor, task_id, status, new_note)
    return fhir(stored.json)


@router.get("/AuditEvent", responses=_FHIR_RESPONSES, summary="AuditEvent search (admins)")
async def search_audit(
    request: Request,
    conn: Conn,
    actor: CurrentActor,
    config: Config,
    patient: ListParam = None,
    agent: Annotated[str | None, Query()] = None,
    date: Annotated[str | None, Query()] = None,
    count: Annotated[list[str] | None, Query(alias="_count")] = None,
) -> Response:
    residents = fhirsearch.references("patient", patient or [], "Patient")
    if len(residents) > 1:
        raise fhirsearch.SearchError("patient", "one patient at a time")
    since = None
    if date is not None:
        if not date.startswith("ge"):
            raise fhirsearch.SearchError("date", "only ge is supported")
        since = fhirsearch.date_range(date[2:])[0]
    records = await access.audit_events(
        conn,
        actor,
        resident_id=residents[0] if residents else None,
        agent_user_id=agent.rpartition("/")[2] if agent else None,
        since=since,
        limit=fhirsearch.count(count or [], config.page_size, config.max_page_size),
    )
    base = base_url(request)
    body = fhirjson.searchset(
        str(request.url),
        None,
        ((f"{base}/AuditEvent/{r.id}", fhirjson.dumps(fhirjson.audit_event(r))) for r in records),
    )
    return fhir(body)


MAX_ENTRIES = 200


def _entries(bundle: Any) -> list[web_readings.ManualEntry]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BundleError("a Bundle resource is required")
    if bundle.get("type") != "transaction":
        raise BundleError("only transaction Bundles are supported (type = transaction)")
    raw_entries = bundle.get("entry") or []
    if not isinstance(raw_entries, list) or not raw_entries:
        raise BundleError("the Bundle has no entries")
    if len(raw_entries) > MAX_ENTRIES:
        raise BundleError(f"at most {MAX_ENTRIES} entries per transaction")
    out = []
    for i, entry in enumerate(raw_entries):
        if not isinstance(entry, dict):
            raise BundleError(f"entry[{i}] is not an object")
        request = entry.get("request") or {}
        if request.get("method") != "POST" or request.get("url") != "Observation":
            raise BundleError(f"entry[{i}]: only POST Observation (create) is supported")
        tokens: tuple[queries.Token, ...] = ()
        condition = request.get("ifNoneExist")
        if condition is not None:
            name, _, value = str(condition).partition("=")
            if name != "identifier" or not value:
                raise BundleError(f"entry[{i}]: ifNoneExist supports identifier=[system|]value")
            tokens = fhirsearch.tokens("ifNoneExist", [value])
        try:
            reading = manual.from_observation(entry.get("resource") or {})
        except manual.ManualEntryError as exc:
            raise BundleError(f"entry[{i}]: {exc}") from exc
        out.append(web_readings.ManualEntry(reading.resident_id, reading.measurement, tokens))
    return out


@router.post("", responses=_FHIR_RESPONSES, summary="transaction Bundle (hand-entered readings)")
async def transaction(
    request: Request,
    conn: Conn,
    actor: CurrentActor,
    bundle: Annotated[dict[str, Any], Body(media_type=fhirjson.MEDIA_TYPE)],
) -> Response:
    """Observations a nurse entered by hand, with conditional create (``ifNoneExist``).

    All or nothing: any entry that cannot be stored fails the whole transaction (400).
    """
    body = await request.body()
    try:  # re-read with Decimal so the typed precision survives (5.60 stays 5.60)
        parsed = json.loads(body, parse_float=Decimal)
    except ValueError as exc:
        raise BundleError("the body is not JSON") from exc
    del bundle
    outcomes = await web_readings.enter_readings(conn, actor, _entries(parsed))
    entries = [
        {
            "response": {
                "status": "201 Created" if o.created else "200 OK",
                "location": f"Observation/{o.observation_ids[0]}",
            }
        }
        for o in outcomes
    ]
    return fhir(fhirjson.transaction_response(entries))
