"""FHIR R4 REST under /fhir (application/fhir+json; errors are OperationOutcome, Korean first).

Reads and searches go through :mod:`api.store.queries` and :mod:`api.store.fhir_resources`,
which enforce scope and write the audit trail; resources are built by ``ingest.fhir`` (the one
home of FHIR); this module translates HTTP and FHIR syntax: search parameter rules (strict or
lenient), paging, ``_include``, ``_summary=count``, versions (``ETag``, ``If-Match``,
``_history``), content negotiation and the write interactions.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib.metadata import version
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from starlette.exceptions import HTTPException

from api import fhirjson, fhirsearch, manual
from api.deps import Config, Conn, CurrentActor
from api.fhirsearch import SearchParams
from api.store import access, fhir_resources, fhir_writes, queries, web_readings
from ingest.errors import HeldForReview, RejectedReading
from ingest.fhir import ReadingContext, entered, people, to_observations
from ingest.fhir import devices as fhir_devices
from ingest.fhir.encoding import loads

#: XML is not served; JSON under any of its names is.
_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir", "json")
_XML_TYPES = ("application/fhir+xml", "application/xml", "text/xml", "xml", "application/xml+fhir")


async def negotiate(request: Request) -> None:
    """``_format`` and ``Accept``: JSON is served, XML (or anything else) is 406. (``async``
    though it never waits: FastAPI runs a plain ``def`` dependency in a worker thread, a thread
    hop per request.)"""
    fmt = request.query_params.get("_format")
    if fmt is not None and fmt.split(";")[0].strip().lower() not in _JSON_TYPES:
        raise HTTPException(
            406, f"JSON만 제공합니다 / only JSON is served (_format={fmt!r} is not supported)"
        )
    accept = request.headers.get("accept")
    if not accept:
        return
    ranges = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if any(r in _JSON_TYPES or r in ("*/*", "application/*") for r in ranges):
        return
    raise HTTPException(
        406, f"JSON만 제공합니다 / only application/fhir+json is served (Accept: {accept})"
    )


router = APIRouter(prefix="/fhir", tags=["FHIR"], dependencies=[Depends(negotiate)])

_FHIR_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {fhirjson.MEDIA_TYPE: {}}, "description": "FHIR resource or Bundle"},
}


class BundleError(access.InvalidRequest):
    """A request body (transaction Bundle, Task update) is malformed; the message says where."""


_VERSION_RE = re.compile(r'"versionId"\s*:\s*"([0-9]+)"')


def version_of(text: str) -> str | None:
    match = _VERSION_RE.search(text)
    return match.group(1) if match else None


def fhir(
    body: str | dict[str, Any],
    status: int = 200,
    *,
    etag: bool = False,
    headers: dict[str, str] | None = None,
) -> Response:
    text = body if isinstance(body, str) else fhirjson.dumps(body)
    out = dict(headers or {})
    if etag:
        found = version_of(text)
        if found is not None:
            out["ETag"] = f'W/"{found}"'
    return Response(content=text, status_code=status, media_type=fhirjson.MEDIA_TYPE, headers=out)


def outcome(status: int, code: str, text: str) -> Response:
    return fhir(fhirjson.operation_outcome(code, text), status)


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def params_of(
    request: Request, allowed: frozenset[str], includes: frozenset[str] = frozenset()
) -> SearchParams:
    return fhirsearch.search_params(
        request.query_params.multi_items(),
        allowed,
        strict=fhirsearch.strict_handling(request.headers.get("prefer")),
        includes=includes,
    )


def self_link(request: Request, params: SearchParams) -> str:
    query = params.self_query
    url = f"{base_url(request)}{request.url.path.removeprefix('/fhir')}"
    return f"{url}?{query}" if query else url


def searchset(
    request: Request,
    params: SearchParams,
    entries: list[tuple[str, str]],
    *,
    total: int | None = None,
    next_url: str | None = None,
    included: list[tuple[str, str]] | None = None,
) -> Response:
    return fhir(
        fhirjson.searchset(
            self_link(request, params),
            next_url,
            entries,
            total=total,
            included=included or [],
        )
    )


def _many(params: SearchParams, name: str) -> list[str]:
    return [v for value in params.values(name) for v in value.split(",") if v]


def _residents(params: SearchParams) -> tuple[str, ...]:
    return fhirsearch.references("patient", params.values("patient"), "Patient") + (
        fhirsearch.references("subject", params.values("subject"), "Patient")
    )


def _page_size(params: SearchParams, config: Any) -> int:
    return fhirsearch.page_size(params, config.page_size, config.max_page_size)


# --- CapabilityStatement ------------------------------------------------------------------------


@router.get("/metadata", responses=_FHIR_RESPONSES, summary="CapabilityStatement")
async def metadata(request: Request) -> Response:
    statement = fhirjson.capability_statement(base_url(request), version("daon"))
    return fhir(statement)


# --- Patient ------------------------------------------------------------------------------------

PATIENT_SEARCH = fhirjson.search_names("Patient")


def _patient(row: Any) -> dict[str, Any]:
    return fhirjson.with_meta(
        people.patient(
            people.PatientFacts(
                id=row.id,
                display_name=row.display_name,
                neighbourhood=row.neighbourhood,
                birth_date=row.birth_date,
                sex=row.sex,
                active=row.active,
            )
        ),
        "1",
        row.created_at,
    )


@router.get("/Patient", responses=_FHIR_RESPONSES, summary="Patient search")
async def search_patients(
    request: Request, conn: Conn, actor: CurrentActor, config: Config
) -> Response:
    params = params_of(request, PATIENT_SEARCH)
    ids = [*_many(params, "_id")]
    for token in fhirsearch.tokens("identifier", params.values("identifier")):
        if token.system not in (None, fhirjson.RESIDENT_SYSTEM):
            ids.append("\x00no-such-id")  # another system: nothing of ours matches
        else:
            ids.append(token.code)
    limit = _page_size(params, config)
    found = await fhir_resources.search_patients(
        conn,
        actor,
        ids=ids,
        names=params.values("name"),
        birth_dates=fhirsearch.dates_only("birthdate", params.values("birthdate")),
        limit=max(limit, 1) if not params.total_wanted else config.max_page_size,
    )
    total = len(found) if params.total_wanted else None
    base = base_url(request)
    entries = [(f"{base}/Patient/{r.id}", fhirjson.dumps(_patient(r))) for r in found[:limit]]
    return searchset(request, params, entries, total=total)


@router.get("/Patient/{resident_id}", responses=_FHIR_RESPONSES, summary="Patient read")
async def read_patient(resident_id: str, conn: Conn, actor: CurrentActor) -> Response:
    # the audit rows are committed with the read, in its round trip
    found = await queries.read_patient(conn, actor, resident_id, commit=True)
    resource = fhirjson.patient(found.record, found.contacts)
    return fhir(fhirjson.with_meta(resource, "1", None), etag=True)


# --- Practitioner -------------------------------------------------------------------------------

PRACTITIONER_SEARCH = fhirjson.search_names("Practitioner")


def _practitioner(row: fhir_resources.StaffRecord) -> dict[str, Any]:
    return fhirjson.with_meta(
        people.practitioner(
            people.PractitionerFacts(row.id, row.display_name, row.role, row.active)
        ),
        "1",
        row.created_at,
    )


@router.get("/Practitioner", responses=_FHIR_RESPONSES, summary="Practitioner search")
async def search_practitioners(
    request: Request, conn: Conn, actor: CurrentActor, config: Config
) -> Response:
    params = params_of(request, PRACTITIONER_SEARCH)
    identifiers = [
        t.code if t.system in (None, fhirjson.STAFF_SYSTEM) else "\x00no-such-id"
        for t in fhirsearch.tokens("identifier", params.values("identifier"))
    ]
    limit = _page_size(params, config)
    found = await fhir_resources.search_staff(
        conn,
        actor,
        ids=_many(params, "_id"),
        identifiers=identifiers,
        names=params.values("name"),
        limit=config.max_page_size,
    )
    total = len(found) if params.total_wanted else None
    base = base_url(request)
    entries = [
        (f"{base}/Practitioner/{r.id}", fhirjson.dumps(_practitioner(r))) for r in found[:limit]
    ]
    return searchset(request, params, entries, total=total)


@router.get("/Practitioner/{user_id}", responses=_FHIR_RESPONSES, summary="Practitioner read")
async def read_practitioner(user_id: str, conn: Conn, actor: CurrentActor) -> Response:
    row = await fhir_resources.read_staff(conn, actor, user_id)
    return fhir(_practitioner(row), etag=True)


# --- Observation --------------------------------------------------------------------------------

OBSERVATION_SEARCH = fhirjson.search_names("Observation")
OBSERVATION_INCLUDES = frozenset(fhirjson.INCLUDES["Observation"])


def _observation_query(params: SearchParams, config: Any) -> queries.ObservationQuery:
    sorts = params.values("_sort") or ["-date"]
    if sorts[-1] not in ("date", "-date"):
        raise fhirsearch.SearchError("_sort", "only date and -date are supported")
    cursor = params.last("_cursor")
    return queries.ObservationQuery(
        residents=_residents(params),
        codes=fhirsearch.tokens("code", params.values("code")),
        categories=fhirsearch.tokens("category", params.values("category")),
        dates=fhirsearch.date_conditions(params.values("date")),
        devices=fhirsearch.references("device", params.values("device"), "Device"),
        identifiers=fhirsearch.tokens("identifier", params.values("identifier")),
        statuses=tuple(_many(params, "status")),
        ids=tuple(_many(params, "_id")),
        newest_first=sorts[-1] == "-date",
        count=max(_page_size(params, config), 1),
        after=fhirsearch.decode_cursor(cursor) if cursor else None,
    )


_DEVICE_REF = re.compile(r'"device":\s*\{\s*"reference":\s*"Device/([A-Za-z0-9.\-]{1,64})"')
_SUBJECT_REF = re.compile(r'"subject":\s*\{\s*"reference":\s*"Patient/([A-Za-z0-9.\-]{1,64})"')


async def _included(
    conn: Conn, actor: Any, base: str, params: SearchParams, texts: list[str]
) -> list[tuple[str, str]]:
    """``_include`` targets of a page (mode ``include``); a target the actor may not read, or
    that does not exist, is left out."""
    wanted = set(params.values("_include"))
    out: list[tuple[str, str]] = []
    if wanted & {"Observation:patient", "Observation:subject"}:
        residents = sorted({m for t in texts for m in _SUBJECT_REF.findall(t)})
        if residents:
            for row in await fhir_resources.search_patients(
                conn, actor, ids=residents, limit=len(residents)
            ):
                out.append((f"{base}/Patient/{row.id}", fhirjson.dumps(_patient(row))))
    if "Observation:device" in wanted:
        for device_id in sorted({m for t in texts for m in _DEVICE_REF.findall(t)}):
            try:
                text = await _device_json(conn, actor, device_id)
            except (access.NotFound, access.AccessDenied):
                continue
            out.append((f"{base}/Device/{device_id}", text))
    return out


@router.get("/Observation", responses=_FHIR_RESPONSES, summary="Observation search")
async def search_observations(
    request: Request, conn: Conn, actor: CurrentActor, config: Config
) -> Response:
    params = params_of(request, OBSERVATION_SEARCH, OBSERVATION_INCLUDES)
    query = _observation_query(params, config)
    limit = _page_size(params, config)
    total = await queries.count_observations(conn, actor, query) if params.total_wanted else None
    base = base_url(request)
    if limit == 0:
        return searchset(request, params, [], total=total)
    page = await queries.search_observations(conn, actor, query)
    next_url = None
    if page.next_after is not None:
        next_url = (
            self_link(request, params)
            + ("&" if params.self_query else "?")
            + f"_cursor={fhirsearch.encode_cursor(page.next_after)}"
        )
    entries = [(f"{base}/Observation/{r.id}", r.json) for r in page.resources]
    included = await _included(conn, actor, base, params, [r.json for r in page.resources])
    return searchset(request, params, entries, total=total, next_url=next_url, included=included)


@router.get("/Observation/$lastn", responses=_FHIR_RESPONSES, summary="Observation $lastn")
async def observation_lastn(request: Request, conn: Conn, actor: CurrentActor) -> Response:
    params = params_of(request, frozenset({"patient", "subject", "code", "category", "max"}))
    residents = _residents(params)
    if len(set(residents)) != 1:
        raise fhirsearch.SearchError("patient", "$lastn needs exactly one patient")
    raw_max = params.last("max")
    try:
        max_per_code = int(raw_max) if raw_max is not None else 1
    except ValueError as exc:
        raise fhirsearch.SearchError("max", "must be a whole number") from exc
    if not 1 <= max_per_code <= 100:
        raise fhirsearch.SearchError("max", "must be between 1 and 100")
    found = await queries.last_n(
        conn,
        actor,
        residents[0],
        max_per_code=max_per_code,
        codes=fhirsearch.tokens("code", params.values("code")),
        categories=fhirsearch.tokens("category", params.values("category")),
        commit=True,  # the audit row is committed with the read, in its round trip
    )
    base = base_url(request)
    entries = [(f"{base}/Observation/{r.id}", r.json) for r in found]
    return searchset(request, params, entries, total=len(found))


@router.get("/Observation/{observation_id}", responses=_FHIR_RESPONSES, summary="Observation read")
async def read_observation(observation_id: str, conn: Conn, actor: CurrentActor) -> Response:
    stored = await queries.read_observation(conn, actor, observation_id)
    return fhir(stored.json, etag=True)


# --- Device -------------------------------------------------------------------------------------

DEVICE_SEARCH = fhirjson.search_names("Device")


async def _device_json(conn: Conn, actor: Any, device_id: str) -> str:
    """A PhgDevice (``phg-…``) or PhdDevice (``phd-…`` or a registry id) as served."""
    if device_id.startswith("phg-"):
        gateway = await fhir_resources.read_gateway(conn, actor, device_id.removeprefix("phg-"))
        resource = fhir_devices.gateway_resource(gateway.id, description=gateway.description)
        return fhirjson.dumps(fhirjson.with_meta(resource, "1", None))
    record = await queries.read_device(conn, actor, device_id)
    if record.resource_json is not None:
        return record.resource_json
    return fhirjson.dumps(fhirjson.device(record))


@router.get("/Device", responses=_FHIR_RESPONSES, summary="Device search")
async def search_devices(
    request: Request, conn: Conn, actor: CurrentActor, config: Config
) -> Response:
    params = params_of(request, DEVICE_SEARCH)
    actor.require(access.Capability.READ_DEVICES)
    wanted = [*_many(params, "_id")]
    wanted += await fhir_resources.device_ids(
        conn,
        identifiers=[t.code for t in fhirsearch.tokens("identifier", params.values("identifier"))],
        owners=list(fhirsearch.references("patient", params.values("patient"), "Patient")),
    )
    limit = _page_size(params, config)
    base = base_url(request)
    entries: list[tuple[str, str]] = []
    for device_id in dict.fromkeys(wanted):
        try:
            text = await _device_json(conn, actor, device_id)
        except (access.NotFound, access.AccessDenied):
            continue
        served = loads(text)["id"]
        entries.append((f"{base}/Device/{served}", text))
    total = len(entries) if params.total_wanted else None
    return searchset(request, params, entries[:limit], total=total)


@router.get("/Device/{device_id}", responses=_FHIR_RESPONSES, summary="Device read")
async def read_device(device_id: str, conn: Conn, actor: CurrentActor) -> Response:
    return fhir(await _device_json(conn, actor, device_id), etag=True)


# --- Flag and RiskAssessment --------------------------------------------------------------------

FLAG_SEARCH = fhirjson.search_names("Flag")
ASSESSMENT_SEARCH = fhirjson.search_names("RiskAssessment")


async def _flag_search(
    request: Request, conn: Conn, actor: Any, config: Any, *, assessment: bool
) -> Response:
    params = params_of(request, ASSESSMENT_SEARCH if assessment else FLAG_SEARCH)
    statuses = set(_many(params, "status"))
    if statuses - {"active", "inactive"}:
        raise fhirsearch.SearchError("status", "Flag.status is active or inactive")
    active = None if len(statuses) != 1 else "active" in statuses
    limit = _page_size(params, config)
    found = await fhir_resources.search_flags(
        conn,
        actor,
        residents=_residents(params),
        ids=_many(params, "_id"),
        active=active,
        assessment=assessment,
        limit=config.max_page_size,
    )
    kind = "RiskAssessment" if assessment else "Flag"
    base = base_url(request)
    entries = [(f"{base}/{kind}/{f.id}", f.json) for f in found[:limit]]
    return searchset(request, params, entries, total=len(found) if params.total_wanted else None)


@router.get("/Flag", responses=_FHIR_RESPONSES, summary="Flag search")
async def search_flags(
    request: Request, conn: Conn, actor: CurrentActor, config: Config
) -> Response:
    return await _flag_search(request, conn, actor, config, assessment=False)


@router.get("/Flag/{flag_id}", responses=_FHIR_RESPONSES, summary="Flag read")
async def read_flag(flag_id: str, conn: Conn, actor: CurrentActor) -> Response:
    record = await queries.read_flag(conn, actor, flag_id)
    return fhir(record.flag_json or fhirjson.flag(record), etag=True)


@router.get("/RiskAssessment", responses=_FHIR_RESPONSES, summary="RiskAssessment search")
async def search_risk_assessments(
    request: Request, conn: Conn, actor: CurrentActor, config: Config
) -> Response:
    return await _flag_search(request, conn, actor, config, assessment=True)


@router.get(
    "/RiskAssessment/{assessment_id}", responses=_FHIR_RESPONSES, summary="RiskAssessment read"
)
async def read_risk_assessment(assessment_id: str, conn: Conn, actor: CurrentActor) -> Response:
    record = await queries.read_flag(conn, actor, assessment_id, entity="RiskAssessment")
    return fhir(record.assessment_json or fhirjson.risk_assessment(record), etag=True)


def _history_bundle(request: Request, kind: str, rid: str, found: list[Any]) -> Response:
    base = base_url(request)
    entries = [(f"{base}/{kind}/{rid}/_history/{f.id}", f.json) for f in found]
    return fhir(fhirjson.history(f"{base}/{kind}/{rid}/_history", entries))


def _version_number(vid: str) -> int:
    if not vid.isascii() or not vid.isdigit() or len(vid) > 9:
        raise access.NotFound(f"version {vid}")
    return int(vid)


@router.get("/Flag/{flag_id}/_history", responses=_FHIR_RESPONSES, summary="Flag history")
async def flag_history(flag_id: str, request: Request, conn: Conn, actor: CurrentActor) -> Response:
    record = await queries.read_flag(conn, actor, flag_id)
    found = await fhir_resources.history(conn, "Flag", record.id)
    return _history_bundle(request, "Flag", flag_id, found)


@router.get(
    "/Flag/{flag_id}/_history/{vid}", responses=_FHIR_RESPONSES, summary="Flag version read"
)
async def flag_version(flag_id: str, vid: str, conn: Conn, actor: CurrentActor) -> Response:
    record = await queries.read_flag(conn, actor, flag_id)
    found = await fhir_resources.history(conn, "Flag", record.id, _version_number(vid))
    if not found:
        raise access.NotFound(f"Flag/{flag_id}/_history/{vid}")
    return fhir(found[0].json, etag=True)


# --- Task ---------------------------------------------------------------------------------------

TASK_SEARCH = fhirjson.search_names("Task")


@router.get("/Task", responses=_FHIR_RESPONSES, summary="Task search")
async def search_tasks(
    request: Request, conn: Conn, actor: CurrentActor, config: Config
) -> Response:
    params = params_of(request, TASK_SEARCH)
    limit = _page_size(params, config)
    found = await fhir_resources.search_tasks(
        conn,
        actor,
        residents=_residents(params),
        ids=_many(params, "_id"),
        statuses=_many(params, "status"),
        owners=list(fhirsearch.references("owner", params.values("owner"), "Practitioner")),
        limit=config.max_page_size,
    )
    base = base_url(request)
    entries = [(f"{base}/Task/{f.id}", f.json) for f in found[:limit]]
    return searchset(request, params, entries, total=len(found) if params.total_wanted else None)


@router.get("/Task/{task_id}", responses=_FHIR_RESPONSES, summary="Task read")
async def read_task(task_id: str, conn: Conn, actor: CurrentActor) -> Response:
    stored = await queries.read_task(conn, actor, task_id)
    return fhir(stored.json, etag=True)


@router.get("/Task/{task_id}/_history", responses=_FHIR_RESPONSES, summary="Task history")
async def task_history(task_id: str, request: Request, conn: Conn, actor: CurrentActor) -> Response:
    await queries.read_task(conn, actor, task_id)
    found = await fhir_resources.history(conn, "Task", int(task_id))
    return _history_bundle(request, "Task", task_id, found)


@router.get(
    "/Task/{task_id}/_history/{vid}", responses=_FHIR_RESPONSES, summary="Task version read"
)
async def task_version(task_id: str, vid: str, conn: Conn, actor: CurrentActor) -> Response:
    await queries.read_task(conn, actor, task_id)
    found = await fhir_resources.history(conn, "Task", int(task_id), _version_number(vid))
    if not found:
        raise access.NotFound(f"Task/{task_id}/_history/{vid}")
    return fhir(found[0].json, etag=True)


def _if_match(request: Request) -> int | None:
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    match = re.fullmatch(r'\s*(?:W/)?"?([0-9]{1,9})"?\s*', raw)
    if match is None:
        raise BundleError(f'If-Match {raw!r}: expected W/"<versionId>"')
    return int(match.group(1))


@router.put("/Task/{task_id}", responses=_FHIR_RESPONSES, summary="Task update (status only)")
async def update_task(
    task_id: str,
    request: Request,
    conn: Conn,
    actor: CurrentActor,
    task: Annotated[dict[str, Any], Body(media_type=fhirjson.MEDIA_TYPE)],
) -> Response:
    """Update a Task's status (accepted, in-progress, on-hold, completed); a new ``note`` is
    appended. Other elements are owned by the clinical runner and must not change.
    ``If-Match: W/"n"`` makes the update conditional on version n (412 when stale)."""
    if task.get("resourceType") != "Task":
        raise BundleError("the body must be a Task")
    if str(task.get("id", task_id)) != task_id:
        raise BundleError("the Task id in the body does not match the URL")
    status = task.get("status")
    if not isinstance(status, str):
        raise BundleError("Task.status is required")
    if_match = _if_match(request)
    current = json.loads((await queries.read_task(conn, actor, task_id)).json)
    changed = sorted(
        k
        for k in set(task) | set(current)
        if k not in ("status", "note", "meta", "text", "lastModified", "id")
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
    try:
        stored = await queries.update_task_status(
            conn, actor, task_id, status, new_note, if_match=if_match
        )
    except queries.VersionConflict as exc:
        return outcome(412, "conflict", str(exc))
    return fhir(stored.json, etag=True)


# --- AuditEvent ---------------------------------------------------------------------------------


@router.get("/AuditEvent", responses=_FHIR_RESPONSES, summary="AuditEvent search (admins)")
async def search_audit(
    request: Request, conn: Conn, actor: CurrentActor, config: Config
) -> Response:
    params = params_of(request, fhirjson.search_names("AuditEvent"))
    residents = fhirsearch.references("patient", params.values("patient"), "Patient")
    if len(residents) > 1:
        raise fhirsearch.SearchError("patient", "one patient at a time")
    since = None
    date = params.last("date")
    if date is not None:
        if not date.startswith("ge"):
            raise fhirsearch.SearchError("date", "only ge is supported")
        since = fhirsearch.date_range(date[2:])[0]
    agent = params.last("agent")
    records = await access.audit_events(
        conn,
        actor,
        resident_id=residents[0] if residents else None,
        agent_user_id=agent.rpartition("/")[2] if agent else None,
        since=since,
        limit=max(_page_size(params, config), 1),
    )
    base = base_url(request)
    entries = [
        (f"{base}/AuditEvent/{r.id}", fhirjson.dumps(fhirjson.audit_event(r))) for r in records
    ]
    return searchset(request, params, entries)


# --- writes: create, conditional create, batch and transaction ----------------------------------

MAX_ENTRIES = 200


def _create_of(
    resource: Any, actor: Any, tokens: tuple[queries.Token, ...], now: datetime
) -> fhir_writes.Create:
    """One Observation a client sent → the rows ``ingest.fhir`` builds (its identifiers and
    codings kept beside ours). Device-shaped values (BP, glucose, weight, ...) go through the
    device mapping; the single values of :data:`ingest.fhir.entered.ENTERED` through theirs."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Observation":
        raise BundleError("an Observation resource is required")
    codes = manual.loinc_codes(resource.get("code"))
    performer = f"Practitioner/{actor.user_id}"
    if any(code in manual.DEVICE_SHAPED for code in codes):
        try:
            reading = manual.from_observation(resource)
        except manual.ManualEntryError as exc:
            raise BundleError(str(exc)) from exc
        ctx = ReadingContext(
            device_id=web_readings.MANUAL_DEVICE,
            gateway_id=web_readings.MANUAL_DEVICE,
            received_at=now,
            patient=reading.resident_id,
            binding="staff",
            performer=performer,
            setting="visit",
        )
        try:
            rows = to_observations(reading.measurement, ctx)
        except (RejectedReading, HeldForReview) as exc:
            raise BundleError(exc.detail) from exc
        # the client's LOINC code becomes the row's code (what a code search matches), ours
        # stays a coding beside it
        client_code = next((c for c in codes if c in manual.DEVICE_SHAPED), rows[0].code)
        primary = rows[0]._replace(
            body=entered.merge_client_text(rows[0].resource, resource),
            code=client_code,
            template=None,  # the client's identifiers and codings: stored whole
            remainder=None,
        )
        return fhir_writes.Create(reading.resident_id, (primary, *rows[1:]), tokens)
    known = [code for code in codes if code in entered.ENTERED]
    if not known:
        supported = sorted({*manual.DEVICE_SHAPED, *entered.ENTERED})
        raise BundleError(
            "지원하지 않는 코드입니다 / unsupported code: use LOINC " + ", ".join(supported)
        )
    try:
        resident_id = manual.resident_of(resource)
        when = manual.measured_at(resource)
        value, unit = manual.quantity(resource.get("valueQuantity"), "valueQuantity")
        if when > now + timedelta(minutes=5):
            raise BundleError("측정 시각이 미래입니다 / effectiveDateTime is in the future")
        row = entered.entered_observation(
            resident_id=resident_id,
            code=known[0],
            value=value,
            unit=unit,
            effective=when,
            performer=performer,
            received_at=now,
            client=resource,
        )
    except (manual.ManualEntryError, entered.EntryError) as exc:
        raise BundleError(str(exc)) from exc
    return fhir_writes.Create(resident_id, (row,), tokens)


def _if_none_exist(condition: str | None, where: str) -> tuple[queries.Token, ...]:
    if condition is None:
        return ()
    name, _, value = condition.partition("=")
    if name != "identifier" or not value:
        raise BundleError(
            f"{where}: ifNoneExist (If-None-Exist) supports identifier=[system|]value only"
        )
    return fhirsearch.tokens("ifNoneExist", [value])


def _json_body(body: bytes) -> Any:
    try:  # Decimal keeps the precision typed (5.60 stays 5.60)
        return json.loads(body, parse_float=Decimal)
    except ValueError as exc:
        raise BundleError("the body is not JSON") from exc


def _created_response(base: str, found: fhir_writes.Created) -> Response:
    return fhir(
        found.json,
        201 if found.created else 200,
        etag=True,
        headers={"Location": f"{base}/Observation/{found.id}"},
    )


@router.post("/Observation", responses=_FHIR_RESPONSES, summary="Observation create")
async def create_observation(
    request: Request,
    conn: Conn,
    actor: CurrentActor,
    observation: Annotated[dict[str, Any], Body(media_type=fhirjson.MEDIA_TYPE)],
) -> Response:
    """A hand-entered Observation: 201 with Location; with ``If-None-Exist: identifier=…``
    200 and the stored resource when one matches. Another value under the same identity
    (patient, code, time) is 409."""
    del observation
    resource = _json_body(await request.body())
    tokens = _if_none_exist(request.headers.get("if-none-exist"), "If-None-Exist")
    create = _create_of(resource, actor, tokens, datetime.now(UTC))
    try:
        [found] = await fhir_writes.create_observations(conn, actor, [create])
    except fhir_writes.WriteConflict as exc:
        return outcome(409, "conflict", str(exc))
    return _created_response(base_url(request), found)


def _entries(bundle: Any) -> tuple[str, list[Any]]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BundleError("a Bundle resource is required")
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        raise BundleError("Bundle.type must be transaction or batch")
    raw_entries = bundle.get("entry") or []
    if not isinstance(raw_entries, list) or not raw_entries:
        raise BundleError("the Bundle has no entries")
    if len(raw_entries) > MAX_ENTRIES:
        raise BundleError(f"at most {MAX_ENTRIES} entries per Bundle")
    return str(kind), raw_entries


def _entry_create(i: int, entry: Any, actor: Any, now: datetime) -> fhir_writes.Create:
    if not isinstance(entry, dict):
        raise BundleError(f"entry[{i}] is not an object")
    request = entry.get("request") or {}
    if request.get("method") != "POST" or request.get("url") != "Observation":
        raise BundleError(f"entry[{i}]: only POST Observation (create) is supported")
    condition = request.get("ifNoneExist")
    tokens = _if_none_exist(None if condition is None else str(condition), f"entry[{i}]")
    try:
        return _create_of(entry.get("resource"), actor, tokens, now)
    except BundleError as exc:
        raise BundleError(f"entry[{i}]: {exc}") from exc


def _response_entry(found: fhir_writes.Created) -> dict[str, Any]:
    version = version_of(found.json)
    response: dict[str, Any] = {
        "status": "201 Created" if found.created else "200 OK",
        "location": f"Observation/{found.id}",
    }
    if version is not None:
        response["etag"] = f'W/"{version}"'
    return {"response": response}


@router.post("", responses=_FHIR_RESPONSES, summary="transaction or batch Bundle")
async def transaction(
    request: Request,
    conn: Conn,
    actor: CurrentActor,
    bundle: Annotated[dict[str, Any], Body(media_type=fhirjson.MEDIA_TYPE)],
) -> Response:
    """Hand-entered Observations with conditional create (``ifNoneExist``).

    transaction: all or nothing (any entry that cannot be stored fails the whole Bundle: 400,
    or 409 for a conflicting value). batch: each entry on its own, with its own outcome.
    """
    del bundle
    kind, raw = _entries(_json_body(await request.body()))
    now = datetime.now(UTC)
    if kind == "transaction":
        creates = [_entry_create(i, e, actor, now) for i, e in enumerate(raw)]
        try:
            found = await fhir_writes.create_observations(conn, actor, creates)
        except fhir_writes.WriteConflict as exc:
            return outcome(409, "conflict", str(exc))
        return fhir(
            fhirjson.bundle_response("transaction-response", [_response_entry(f) for f in found])
        )
    results: list[dict[str, Any]] = []
    for i, entry in enumerate(raw):
        try:
            async with conn.transaction():  # a savepoint: one entry's failure stays its own
                [one] = await fhir_writes.create_observations(
                    conn, actor, [_entry_create(i, entry, actor, now)]
                )
            results.append(_response_entry(one))
        except fhir_writes.WriteConflict as exc:
            results.append(_error_entry("409 Conflict", "conflict", str(exc)))
        except access.AccessDenied as exc:
            results.append(
                _error_entry(
                    "403 Forbidden", "forbidden", f"권한이 없습니다 / forbidden: {exc.what}"
                )
            )
        except access.InvalidRequest as exc:
            results.append(_error_entry("400 Bad Request", "invalid", str(exc)))
    return fhir(fhirjson.bundle_response("batch-response", results))


def _error_entry(status: str, code: str, text: str) -> dict[str, Any]:
    return {
        "response": {
            "status": status,
            "outcome": fhirjson.operation_outcome(code, text),
        }
    }
