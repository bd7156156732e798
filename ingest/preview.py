"""``daon fhir``: one input line (specs/cli-fhir.md) → the resources ingest would store.

The line is the wire reading object with the shorthand of the spec (``gateway: {"id"}``,
``patient``, a ``device`` that may have only an address, a ``clock`` without ``trusted``); it
is completed into a ``devices.wire`` reading and runs through :func:`ingest.pipeline.
process_reading`, the consumer's own path, with an open registry and no database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from devices.errors import WireError
from devices.wire import reading_from_json
from ingest.fhir import render_bundle
from ingest.fhir.encoding import dumps
from ingest.pipeline import OpenRegistry, process_reading


class PreviewError(ValueError):
    """The line cannot be turned into resources; the message is what ingest would dead-letter."""


@dataclass(frozen=True, slots=True)
class Preview:
    """The output line: a JSON array of resources (or of the unbound-queue record)."""

    text: str
    unbound: bool


def _wire_object(line: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    gateway = line.get("gateway")
    gateway_id = gateway.get("id") if isinstance(gateway, Mapping) else gateway
    if not isinstance(gateway_id, str) or not gateway_id:
        raise PreviewError("gateway.id: missing or not a non-empty string")
    device = line.get("device")
    if not isinstance(device, Mapping):
        raise PreviewError("device: missing or not an object")
    device = dict(device)
    device_id = device.get("id") or device.get("address") or device.get("serial")
    if not isinstance(device_id, str) or not device_id:
        raise PreviewError("device: needs an id, address or serial")
    device["id"] = device_id
    reading = dict(line)
    reading.pop("gateway", None)
    reading["device"] = device
    reading.setdefault("id", "preview")
    if "source" not in reading:
        reading["source"] = "ble" if reading.get("values") else "mqtt"
    clock = reading.get("clock")
    if isinstance(clock, Mapping):
        clock = {"trusted": True, **clock}
        if isinstance(clock.get("offset_s"), Decimal):
            clock["offset_s"] = float(clock["offset_s"])
        reading["clock"] = clock
    return reading, gateway_id


def preview(line: Mapping[str, Any]) -> Preview:
    """The resources for one parsed input line; raises :class:`PreviewError`."""
    obj, gateway_id = _wire_object(line)
    try:
        reading = reading_from_json(obj)
    except WireError as exc:
        raise PreviewError(str(exc)) from None
    outcome = process_reading(reading, gateway_id, None, OpenRegistry())
    if outcome.dead is not None:
        raise PreviewError(f"{outcome.dead.reason.value}: {outcome.dead.detail}")
    if outcome.unbound is not None:
        return Preview("[" + dumps(outcome.unbound.as_json()) + "]", unbound=True)
    return Preview(render_bundle([o.resource for o in outcome.observations]), unbound=False)
