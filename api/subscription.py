"""FHIR R4 Subscription (rest-hook) and the delivery policy: pure values in, values out.

What a client may ask for (https://hl7.org/fhir/R4/subscription.html, restricted to what we
deliver):

- ``criteria``: ``Flag`` (every flag) or ``Flag?patient=<id or Patient/id>`` (one resident);
- ``channel.type`` ``rest-hook`` with an ``http``/``https`` ``endpoint``, optional ``header``
  strings (``Name: value``) sent on every notification, and ``payload``: absent → an empty POST
  to the endpoint, ``application/fhir+json`` → the Flag is sent as an update (PUT) to
  ``<endpoint>/Flag/<id>``, as R4 defines for a payload;
- ``status`` ``requested`` (or ``off``); the server makes it ``active`` when the delivering
  service takes it up and ``error`` (with the ``error`` text) after :data:`ERROR_AFTER`
  consecutive failed attempts, and back to ``active`` on the next success.

Every notification carries ``Idempotency-Key`` (one per subscription and notify event, the same
on every retry), so a receiver drops repeats. Anything else is refused with
:class:`InvalidSubscription` naming the element (a 400 OperationOutcome).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from api.store.access import InvalidRequest

PAYLOAD_JSON = "application/fhir+json"
STATUSES = ("requested", "active", "error", "off")

#: Consecutive failed attempts after which a subscription's status becomes ``error``.
ERROR_AFTER = 5
#: Retry delays of a failing receiver: 1 s, 2 s, 4 s, ... capped at 5 minutes, so a receiver
#: that comes back after an hour down gets its backlog within 5 minutes.
BACKOFF_BASE = timedelta(seconds=1)
BACKOFF_CAP = timedelta(minutes=5)

_RESIDENT_ID = re.compile(r"^[A-Za-z0-9.-]{1,64}$")
_HEADER = re.compile(r"^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n]*)$")
#: Headers the server sets itself; a subscription may not replace them.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection",
     "idempotency-key"}
)  # fmt: skip


class InvalidSubscription(InvalidRequest):
    """A Subscription the server cannot accept; ``element`` names the offending element."""

    def __init__(self, element: str, problem: str) -> None:
        self.element = element
        super().__init__(f"Subscription.{element}: {problem}")


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    """A validated Subscription as the client asked for it."""

    criteria: str
    resident_id: str | None  # from the criteria; None = every resident
    endpoint: str
    headers: tuple[str, ...]
    payload: str | None
    reason: str
    status: str  # 'requested' or 'off'
    end: datetime | None
    recipient_id: str | None = None  # Communication?recipient=: one staff member's digests


def parse_criteria(criteria: Any) -> tuple[str, str | None]:
    """``(normalised criteria, resident id or None)`` for a criteria on Flag; a criteria on
    Communication (the weekly digests, :func:`parse_digest_criteria`) gives no resident."""
    if not isinstance(criteria, str) or not criteria.strip():
        raise InvalidSubscription("criteria", "required: 'Flag' or 'Flag?patient=<id>'")
    resource, _, query = criteria.strip().partition("?")
    if resource == "Communication":
        return parse_digest_criteria(criteria)[0], None
    if resource != "Flag":
        raise InvalidSubscription(
            "criteria", f"only Flag and Communication can be subscribed to here, not {resource!r}"
        )
    if not query:
        return "Flag", None
    try:
        params = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise InvalidSubscription("criteria", f"malformed search string {query!r}") from exc
    names = {name for name, _ in params}
    unsupported = names - {"patient"}
    if unsupported:
        raise InvalidSubscription(
            "criteria", f"unsupported search parameter(s) {', '.join(sorted(unsupported))}"
        )
    if len(params) != 1:
        raise InvalidSubscription("criteria", "give one patient")
    value = params[0][1].removeprefix("Patient/")
    if not _RESIDENT_ID.match(value):
        raise InvalidSubscription("criteria", f"patient {params[0][1]!r} is not a Patient id")
    return f"Flag?patient={value}", value


def parse_digest_criteria(criteria: str) -> tuple[str, str | None]:
    """``Communication`` (every weekly digest) or ``Communication?recipient=<staff id>`` (one
    nurse's): ``(normalised criteria, recipient or None)``."""
    _, _, query = criteria.strip().partition("?")
    if not query:
        return "Communication", None
    try:
        params = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise InvalidSubscription("criteria", f"malformed search string {query!r}") from exc
    if len(params) != 1 or params[0][0] != "recipient":
        raise InvalidSubscription("criteria", "Communication takes one recipient")
    value = params[0][1].removeprefix("Practitioner/")
    if not _RESIDENT_ID.match(value):
        raise InvalidSubscription(
            "criteria", f"recipient {params[0][1]!r} is not a Practitioner id"
        )
    return f"Communication?recipient={value}", value


def _endpoint(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidSubscription("channel.endpoint", "required for a rest-hook")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise InvalidSubscription(
            "channel.endpoint", f"must be an http or https URL, not {parts.scheme or value!r}"
        )
    if not parts.hostname:
        raise InvalidSubscription("channel.endpoint", "has no host")
    if any(c.isspace() for c in value):
        raise InvalidSubscription("channel.endpoint", "contains white space")
    return value


def _headers(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
        raise InvalidSubscription("channel.header", "must be a list of 'Name: value' strings")
    for header in value:
        match = _HEADER.match(header)
        if match is None:
            raise InvalidSubscription("channel.header", f"{header!r} is not 'Name: value'")
        if match[1].lower() in _RESERVED_HEADERS:
            raise InvalidSubscription("channel.header", f"{match[1]} is set by the server")
    return tuple(value)


def _instant(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidSubscription("end", f"{value!r} is not a FHIR instant") from exc
    if parsed.tzinfo is None:
        raise InvalidSubscription("end", "needs a time zone")
    return parsed


def parse(resource: Any) -> SubscriptionRequest:
    """Validate a Subscription resource from a client (raises :class:`InvalidSubscription`)."""
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "Subscription":
        raise InvalidSubscription("resourceType", "the body must be a Subscription resource")
    status = resource.get("status", "requested")
    if status not in ("requested", "off"):
        raise InvalidSubscription(
            "status", f"a client submits 'requested' or 'off', not {status!r}"
        )
    reason = resource.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidSubscription("reason", "required (why the subscription is made)")
    criteria, resident = parse_criteria(resource.get("criteria"))
    recipient = parse_digest_criteria(criteria)[1] if criteria.startswith("Communication") else None
    channel = resource.get("channel")
    if not isinstance(channel, Mapping):
        raise InvalidSubscription("channel", "required")
    if channel.get("type") != "rest-hook":
        raise InvalidSubscription(
            "channel.type", f"only rest-hook is supported, not {channel.get('type')!r}"
        )
    payload = channel.get("payload")
    if payload is not None and payload != PAYLOAD_JSON:
        raise InvalidSubscription(
            "channel.payload", f"unknown payload type {payload!r} (use {PAYLOAD_JSON} or none)"
        )
    return SubscriptionRequest(
        criteria=criteria,
        resident_id=resident,
        recipient_id=recipient,
        endpoint=_endpoint(channel.get("endpoint")),
        headers=_headers(channel.get("header")),
        payload=payload,
        reason=reason.strip(),
        status=status,
        end=_instant(resource.get("end")),
    )


@dataclass(frozen=True, slots=True)
class StoredSubscription:
    """A subscription as stored (api.store.delivery), with the receiver's health."""

    id: str
    status: str
    criteria: str
    endpoint: str
    headers: tuple[str, ...]
    payload: str | None
    reason: str
    end: datetime | None
    error: str | None
    version: int
    updated_at: datetime
    failures: int
    retry_at: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    pending: int  # deliveries not yet acknowledged
    expired: int = 0  # deliveries never sent: the subscription ended or was deleted first


def _instant_text(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def resource(sub: StoredSubscription) -> dict[str, Any]:
    """The R4 Subscription resource the server returns."""
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": sub.endpoint}
    if sub.payload:
        channel["payload"] = sub.payload
    if sub.headers:
        channel["header"] = list(sub.headers)
    out: dict[str, Any] = {
        "resourceType": "Subscription",
        "id": sub.id,
        "meta": {"versionId": str(sub.version), "lastUpdated": _instant_text(sub.updated_at)},
        "status": sub.status,
        "reason": sub.reason,
        "criteria": sub.criteria,
        "channel": channel,
    }
    if sub.end is not None:
        out["end"] = _instant_text(sub.end)
    if sub.error:
        out["error"] = sub.error
    return out


# --- delivery policy --------------------------------------------------------------------------


def retry_delay(failures: int) -> timedelta:
    """How long a receiver with ``failures`` consecutive failures waits before the next try."""
    if failures <= 0:
        return timedelta(0)
    delay: timedelta = BACKOFF_BASE * (2 ** min(failures - 1, 30))
    return min(BACKOFF_CAP, delay)


@dataclass(frozen=True, slots=True)
class Notification:
    """One HTTP request of a rest-hook notification."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def notification(
    *,
    endpoint: str,
    headers: Sequence[str],
    payload: str | None,
    idempotency_key: str,
    resource_type: str,
    resource_id: int | None,
    resource_json: str | None,
    notice: str,
) -> Notification:
    """The request that delivers one notify event (a Flag) or one weekly digest (a
    Communication) to one rest-hook subscription."""
    sent: list[tuple[str, str]] = []
    for header in headers:
        match = _HEADER.match(header)
        if match is not None:
            sent.append((match[1], match[2].strip()))
    sent.append(("Idempotency-Key", idempotency_key))
    sent.append(("X-Daon-Notice", notice))
    if payload == PAYLOAD_JSON and resource_json is not None and resource_id is not None:
        sent.append(("Content-Type", f"{PAYLOAD_JSON}; charset=utf-8"))
        return Notification(
            "PUT",
            f"{endpoint.rstrip('/')}/{resource_type}/{resource_id}",
            tuple(sent),
            resource_json.encode(),
        )
    return Notification("POST", endpoint, tuple(sent), b"")
