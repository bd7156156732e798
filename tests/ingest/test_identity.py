"""The identity of an Observation for de-duplication (issue 17, migration 0107): the id is the
UUIDv5 of the PHD conditional-create identifier, and the identity row is filed under the
identifier's own time part, the same for every gateway and replay whatever their corrections."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from ingest.fhir.ids import (
    identity_seconds,
    identity_time,
    observation_identifier,
    reception_token,
    resource_id,
    time_token,
)
from ingest.fhir.vocab import KST

EPOCH = datetime(2000, 1, 1, tzinfo=KST)  # PHD IG: the time part counts seconds from 2000


def test_the_id_is_the_uuid5_of_the_identifier() -> None:
    # RFC 4122 §4.3: SHA-1 name-based, in the namespace uuid5(NAMESPACE_URL, ...) fixed in ids
    identifier = "C47C8D6A1B22-R0001234-150020-818798214"
    namespace = uuid.UUID("5b1b6f1e-0d2a-5a2f-9a64-f3b7a9a2c1d0")
    assert resource_id(identifier) == str(uuid.uuid5(namespace, identifier))


def test_identity_time_is_the_identifiers_time_part() -> None:
    device = datetime(2025, 12, 11, 19, 56, 54)  # the device's wall clock, as sent
    token = time_token(device)
    assert token == "818798214"
    expected = EPOCH + timedelta(seconds=818_798_214)
    assert expected == datetime(2025, 12, 11, 19, 56, 54, tzinfo=KST)
    plain = observation_identifier("C4:7C:8D:6A:1B:22", "R0001234", "150020", token)
    assert identity_time(plain) == expected
    assert identity_seconds(plain) == int(expected.timestamp())
    # a glucose record number joins the time part: skipped
    assert identity_time(plain + "-17") == expected
    # a device-subject Observation (no patient part), and a coincident timestamp's pair: the
    # gateway's token, the rightmost
    gateway = datetime(2025, 12, 11, 19, 58, 20)
    pair = observation_identifier(
        "C4:7C:8D:6A:1B:22", None, "67975", f"{token}-{time_token(gateway)}"
    )
    assert identity_time(pair) == gateway.replace(tzinfo=KST)


def test_identity_time_of_reception_tokens_and_hand_entries() -> None:
    received = datetime(2025, 3, 4, 10, 2, 11, 123000, tzinfo=KST)
    token = reception_token(received)
    assert token == "r794397731.123"
    live = observation_identifier("C4:7C:8D:6A:1B:22", "R0001234", "150020", token)
    assert identity_time(live) == received.replace(microsecond=0)
    staff = "staff-R0001234-72133-2-20250304T100211"
    assert identity_time(staff) == datetime(2025, 3, 4, 10, 2, 11, tzinfo=KST)
    # no time part: filed under 2000-01-01 (only where the row is kept depends on it)
    assert identity_time("client-own-key") == EPOCH
    # a serial number of eight digits as the device part is not mistaken for the time part
    serial = observation_identifier("12345678", "R0001234", "150020", "818798214")
    assert identity_time(serial) == EPOCH + timedelta(seconds=818_798_214)
