"""FHIR ids and references: ONE scheme, used both to write references and to look them up.

- PhdDevice: ``phd-`` + :func:`device_key` (EUI-48/64 hex without separators, else the
  registry id with other characters as ``.``); written by the registry upsert, every
  ``Observation.device`` and the coincident-timestamp ``subject``.
- PhgDevice: ``phg-`` + the gateway id (its :func:`device_key` when not a plain FHIR id);
  written by every gatewayDevice extension and the coincident-timestamp ``device``.
- Patient: the resident id (``R0001234``). Practitioner: the staff account id (``N05``),
  written by ``Task.owner``, the manual-entry ``performer`` and note authors.
- Observation: UUIDv5 of the PHD conditional-create identifier (:func:`resource_id`); the
  identity row of its de-duplication is that id and :func:`identity_time`.
- Flag, RiskAssessment, Task: the database's numeric id.

The API resolves a ``Device/phd-…`` id through the stored PhdDevice's id (the registry writes
it with :func:`phd_device_id`), so a reference the server wrote is a read that answers.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from typing import Final

from ingest.errors import Reason, RejectedReading
from ingest.fhir.vocab import KST, kst

_EPOCH_2000: Final = datetime(2000, 1, 1)
# Fixed namespace of our deterministic resource ids: uuid5(NAMESPACE_URL, "urn:daon:observation").
ID_NAMESPACE: Final = bytes.fromhex("5b1b6f1e0d2a5a2f9a64f3b7a9a2c1d0")


MAC_RE: Final = re.compile(r"^[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}$")
_HEX_RE: Final = re.compile(r"^(?:[0-9A-Fa-f]{12}|[0-9A-Fa-f]{16})$")
_ID_RE: Final = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_NOT_ID_CHAR: Final = re.compile(r"[^A-Za-z0-9.]")


def device_key(device_id: str) -> str:
    """The PHD identifier's *device* part: EUI-48/EUI-64 as upper-case hex without separators.

    Ids that are not hardware addresses (a serial number) keep their letters and digits; any
    other character becomes ``.`` so the dash-separated identifier stays unambiguous.
    """
    if MAC_RE.match(device_id):
        return device_id.replace(":", "").replace("-", "").upper()
    if _HEX_RE.match(device_id):
        return device_id.upper()
    return _NOT_ID_CHAR.sub(".", device_id)[:60] or "unknown"


def phd_device_id(device_id: str) -> str:
    """The FHIR id of a personal health device (PhdDevice) from its registry id."""
    return f"phd-{device_key(device_id)}"


def phg_device_id(gateway_id: str) -> str:
    """The FHIR id of a gateway (PhgDevice) from its registry id."""
    plain = _ID_RE.match(gateway_id) and len(gateway_id) <= 60
    return f"phg-{gateway_id if plain else device_key(gateway_id)}"


def device_reference(device_id: str) -> str:
    return f"Device/{phd_device_id(device_id)}"


def gateway_reference(gateway_id: str) -> str:
    return f"Device/{phg_device_id(gateway_id)}"


def practitioner_reference(user_id: str) -> str:
    """A staff account as a Practitioner reference (Task.owner, performer, note author)."""
    return f"Practitioner/{user_id}"


def is_fhir_id(text: str) -> bool:
    """``[A-Za-z0-9.-]{1,64}`` (FHIR id datatype)."""
    return bool(_ID_RE.match(text))


def patient_reference(resident_id: str) -> str:
    if not _ID_RE.match(resident_id):
        raise RejectedReading(
            Reason.UNKNOWN_RESIDENT, f"resident id {resident_id!r} is not a valid FHIR id"
        )
    return f"Patient/{resident_id}"


def resource_id(identifier: str) -> str:
    """UUIDv5 (RFC 4122 §4.3, SHA-1) of the identifier in :data:`ID_NAMESPACE`."""
    h = hashlib.sha1(ID_NAMESPACE + identifier.encode()).hexdigest()
    variant = _VARIANT[h[16]]
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


# RFC 4122 variant bits (10xx) over the top nibble of byte 8
_VARIANT: Final = {f"{n:x}": f"{(n & 0x3) | 0x8:x}" for n in range(16)}


def time_token(device_time: datetime) -> str:
    """The PHD reported timestamp as seconds since 2000-01-01 (GeneratingtheTimeStampPart…).

    BLE Date Time has one-second resolution, so the token is an integer. The device's wall
    clock is used as sent (no zone, no correction): two gateways with different corrections
    still produce the same identifier.
    """
    naive = (
        device_time.replace(tzinfo=None)
        if device_time.tzinfo is None
        else (device_time.astimezone(KST).replace(tzinfo=None))
    )
    seconds = (naive - _EPOCH_2000) // timedelta(seconds=1)
    return str(seconds)


def reception_token(received_at: datetime) -> str:
    """Identifier time part for a reading without a device time: the reception time (ms), marked."""
    local = kst(received_at).replace(tzinfo=None)
    millis = (local - _EPOCH_2000) // timedelta(milliseconds=1)
    return f"r{millis // 1000}.{millis % 1000:03d}"


def observation_identifier(device_id: str, patient: str | None, mdc: str, token: str) -> str:
    """``device-patient-type-timestamp`` (PhdBaseObservation conditional create, §2.4).

    The patient is part of the key so a shared station device dedups per resident; device
    observations (QC, coincident time) have no patient part.
    """
    if patient is None:
        return f"{device_key(device_id)}-{mdc}-{token}"
    return f"{device_key(device_id)}-{patient}-{mdc}-{token}"


_STAFF_PART: Final = re.compile(r"^\d{8}T\d{6}$")
#: Unix time of 2000-01-01T00:00:00+09:00, the origin of the PHD time tokens (Korea time).
_EPOCH_2000_UNIX: Final = 946_684_800 - 9 * 3600


def identity_seconds(identifier: str) -> int:
    """The time an identity row is filed under (the de-duplication of ``identifier``), as Unix
    seconds: the time part of the identifier, so every gateway and every replay files the same
    identifier under the same time whatever their clock corrections (on TimescaleDB the
    identity table is a hypertable on it: recent identifiers in recent chunks, older ones
    compressed). Only where identity rows are kept depends on it: the identity itself is the
    Observation id (:func:`resource_id`).

    The rightmost dash-separated part that is a time token: seconds since 2000 in Korea time
    (the device's wall clock, :func:`time_token`; a glucose record number after it is
    skipped, and of a coincident timestamp's two tokens the gateway's is taken), a reception
    token (:func:`reception_token`) or a hand entry's ``YYYYmmddTHHMMSS``. An identifier with
    none is filed under 2000-01-01.
    """
    for part in reversed(identifier.split("-")):
        if part.isascii() and part.isdigit():
            if 8 <= len(part) <= 10:
                return _EPOCH_2000_UNIX + int(part)
        elif part[:1] == "r" and "." in part:
            seconds = part[1:].partition(".")[0]
            if seconds.isascii() and seconds.isdigit() and len(seconds) <= 10:
                return _EPOCH_2000_UNIX + int(seconds)
        elif _STAFF_PART.match(part):
            local = datetime.strptime(part, "%Y%m%dT%H%M%S").replace(tzinfo=KST)
            return int(local.timestamp())
    return _EPOCH_2000_UNIX


def identity_time(identifier: str) -> datetime:
    """:func:`identity_seconds` as a time (Korea time)."""
    return datetime.fromtimestamp(identity_seconds(identifier), KST)
