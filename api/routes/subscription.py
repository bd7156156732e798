"""FHIR R4 Subscription (rest-hook) under /fhir, and the administrator's delivery page.

Create, read, search and delete; administrators, or bearer tokens with the
``system/Subscription.*`` scope. Validation is :mod:`api.subscription` (400 OperationOutcome
naming the element); storage and the delivery outbox are :mod:`api.store.delivery`.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import HTMLResponse

from api import fhirjson, subscription
from api.deps import Conn, CurrentActor, WebSession
from api.routes.web import render
from api.store import delivery

router = APIRouter(tags=["FHIR Subscription"])

_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {fhirjson.MEDIA_TYPE: {}}, "description": "Subscription or Bundle"},
}


def _fhir(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        fhirjson.dumps(body), status_code=status, media_type=fhirjson.MEDIA_TYPE, headers=headers
    )


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


@router.post("/fhir/Subscription", responses=_RESPONSES, summary="Subscription create")
async def create(
    request: Request,
    conn: Conn,
    actor: CurrentActor,
    body: Annotated[dict[str, Any], Body(media_type=fhirjson.MEDIA_TYPE)],
) -> Response:
    """A rest-hook subscription to Flags (``Flag`` or ``Flag?patient=<id>``)."""
    wanted = subscription.parse(body)
    stored = await delivery.create_subscription(conn, actor, wanted)
    location = f"{_base(request)}/Subscription/{stored.id}/_history/{stored.version}"
    return _fhir(subscription.resource(stored), 201, {"Location": location})


@router.get("/fhir/Subscription/{sub_id}", responses=_RESPONSES, summary="Subscription read")
async def read(sub_id: str, conn: Conn, actor: CurrentActor) -> Response:
    try:
        stored = await delivery.read_subscription(conn, actor, sub_id)
    except delivery.Gone as exc:
        return _fhir(fhirjson.operation_outcome("deleted", f"{exc.what} was deleted"), 410)
    return _fhir(subscription.resource(stored))


@router.get("/fhir/Subscription", responses=_RESPONSES, summary="Subscription search")
async def search(
    request: Request,
    conn: Conn,
    actor: CurrentActor,
    status: Annotated[list[str] | None, Query()] = None,
) -> Response:
    wanted = [s for value in status or [] for s in value.split(",") if s]
    unknown = set(wanted) - set(subscription.STATUSES)
    if unknown:
        raise subscription.InvalidSubscription(
            "status", f"unknown status {', '.join(sorted(unknown))}"
        )
    found = await delivery.search_subscriptions(conn, actor, status=wanted)
    base = _base(request)
    text = fhirjson.searchset(
        str(request.url),
        None,
        ((f"{base}/Subscription/{s.id}", fhirjson.dumps(subscription.resource(s))) for s in found),
        total=len(found),
    )
    return Response(text, media_type=fhirjson.MEDIA_TYPE)


@router.delete("/fhir/Subscription/{sub_id}", status_code=204, summary="Subscription delete")
async def delete(sub_id: str, conn: Conn, actor: CurrentActor) -> Response:
    """Stops notifications at once (status off); the delivery history is kept for the audit."""
    with contextlib.suppress(delivery.Gone):  # deleting twice is not an error in FHIR
        await delivery.delete_subscription(conn, actor, sub_id)
    return Response(status_code=204)


@router.get("/admin/delivery", response_class=HTMLResponse, summary="Delivery receivers (admins)")
async def receivers_page(request: Request, conn: Conn, session: WebSession) -> Response:
    """Every receiver with its health; failing receivers first and marked."""
    actor = session.actor
    found = await delivery.receivers(conn, actor)
    return render(
        request,
        "delivery.html",
        {
            "actor": actor,
            "csrf_token": session.csrf_token,
            "receivers": found,
            "error_after": subscription.ERROR_AFTER,
        },
    )
