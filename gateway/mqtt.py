"""The gateway's topics and heartbeat payload (the MQTT connection itself is ``devices.mqttlink``).

The reading batches and acks are ``devices.wire``'s; the connection, its timeouts and its
manual acknowledgement are the one adapter every side shares (``devices.mqttlink``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

# --- topics and the heartbeat ------------------------------------------------------------------


def gateway_topic(root: str, gateway_id: str, leaf: str) -> str:
    """``{root}/gw/{gateway_id}/{leaf}``: readings, ack, heartbeat, checkin."""
    return f"{root}/gw/{gateway_id}/{leaf}"


def heartbeat_payload(
    *,
    gateway_id: str,
    centre: str,
    at: datetime,
    status: str,
    queue_depth: int | None = None,
    oldest_unacked_at: datetime | None = None,
    devices_seen: int | None = None,
) -> bytes:
    """The heartbeat JSON (``status`` "online" | "offline"; the offline one is the will)."""
    body: dict[str, Any] = {
        "schema": 1,
        "type": "heartbeat",
        "gateway": gateway_id,
        "centre": centre,
        "at": at.isoformat(timespec="seconds"),
        "status": status,
    }
    if queue_depth is not None:
        body["queue_depth"] = queue_depth
    if oldest_unacked_at is not None:
        body["oldest_unacked_at"] = oldest_unacked_at.isoformat(timespec="seconds")
    if devices_seen is not None:
        body["devices_seen"] = devices_seen
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
