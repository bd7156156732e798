"""The gateway → ingest wire format (``devices.wire``), schema version 1.

A gateway publishes *batches* of readings as one JSON object per MQTT message on
``{root}/gw/{gateway_id}/readings`` (QoS 1). Ingest answers on
``{root}/gw/{gateway_id}/ack`` with the ids it has committed (see :func:`encode_ack`).

Batch::

    {
      "schema": 1,
      "gateway": "yaksu-gw-1",            # gateway id (registry key)
      "centre": "yaksu",                   # centre id
      "sent_at": "2026-03-04T10:02:12.120+09:00",
      "readings": [ <reading>, ... ]
    }

Reading (the ``daon fhir`` input line is the same object, with ``patient`` for ``binding``)::

    {
      "id": "01J...",                      # message id from the gateway outbox: unique, stable across resends
      "source": "ble" | "mqtt" | "manual",
      "station": "yaksu-station-1" | null,
      "device": {"id": "C4:7C:8D:6A:1B:22", "address": "C4:7C:8D:6A:1B:22",
                 "manufacturer": "A&D Medical", "model": "UA-651BLE", "serial": "5120034871",
                 "firmware": "1.2", "calibration": "plasma" | "whole_blood" | null},
      "values": [{"uuid": "00002a35-0000-1000-8000-00805f9b34fb", "hex": "1e8000..."}],   # source=ble
      "payload": { ...station payload as received... } | null,                            # source=mqtt
      "decoded": { ... } | null,           # informational only; ingest re-decodes from values/payload
      "quirks": ["..."],                   # quirk names the gateway's catalogue applies to this model
      "received_at": "2026-03-04T10:02:11+09:00",   # gateway clock (NTP), with offset
      "clock": {"device": "2026-03-04T09:15:00", "gateway": "2026-03-04T09:21:00+09:00",
                "offset_s": -360.0, "trusted": true} | null,
      "binding": {"resident": "R0001234", "method": "check-in" | "registry" | "staff",
                  "session": "<check-in session id>" | null} | null      # null = unbound
    }

Compatibility rule: within a schema version, producers may add keys and consumers ignore
keys they do not know; removing or changing the meaning of a key needs a new version, and
ingest keeps accepting the previous version for at least one release (an unknown version is
dead-lettered with its raw bytes, never guessed at).
"""

from __future__ import annotations

SCHEMA_VERSION = 1
