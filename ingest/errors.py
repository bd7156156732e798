"""Errors of the ingest pipeline (transform and consumer). The store's own tree is in
``ingest.store.errors``.

::

    IngestError                 base of everything ingest raises on purpose
    ├── RejectedReading         a reading that cannot be stored: dead-lettered with ``reason``
    ├── HeldForReview           a reading stored for staff review, not as an Observation
    │                           (unbound queue, ``reason``: implausible time, unknown user slot)
    ├── ConsumerError           the MQTT side failed (connect, subscribe, publish timed out)
    └── ConfigError             an [ingest] setting that cannot be used (names the key)

The storage functions raise ``ingest.store.errors.StoreError`` subclasses (the unbound queue's
``UnboundError`` tree is drawn in ``ingest.store.unbound``).

Pure code raises; the consumer decides: a :class:`RejectedReading` becomes a ``dead_letter``
row, a :class:`HeldForReview` an ``unbound_reading`` row, both counted per gateway. Nothing is
dropped silently.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a message or reading did not become Observations (dead_letter / unbound_reading)."""

    # dead letters: the message or reading cannot be decoded, bound or mapped
    MALFORMED_JSON = "malformed_json"
    UNKNOWN_SCHEMA = "unknown_schema"
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_GATEWAY = "unknown_gateway"
    UNKNOWN_DEVICE = "unknown_device"
    UNKNOWN_RESIDENT = "unknown_resident"
    DECODE_ERROR = "decode_error"
    NOT_A_RESULT = "not_a_result"
    UNSUPPORTED = "unsupported"
    IMPOSSIBLE_VALUE = "impossible_value"
    IMPLAUSIBLE_VALUE = "implausible_value"  # outside the §2 physiological bounds
    CONFLICTING_DUPLICATE = "conflicting_duplicate"  # same identifier, another value
    GATEWAY_DEAD_LETTER = "gateway_dead_letter"
    FOREIGN_CENTRE = "foreign_centre"  # a centre, station or device not of the gateway's centre
    INTERNAL_ERROR = "internal_error"
    # held for review in the unbound queue
    NO_BINDING = "no_binding"
    IMPLAUSIBLE_TIME = "implausible_time"
    UNKNOWN_USER = "unknown_user"


class IngestError(Exception):
    """Base of the ingest errors."""


class RejectedReading(IngestError):
    """A reading that cannot become Observations; ``detail`` says what and why, for staff."""

    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(reason, detail)

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}"


class HeldForReview(IngestError):
    """A reading kept in the unbound queue for staff (for example a clock that is off)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(reason, detail)

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}"


class ConsumerError(IngestError):
    """The broker side failed; the service loop reconnects with backoff."""


class ConfigError(IngestError):
    """A configuration value that cannot be used; the message names the key."""
