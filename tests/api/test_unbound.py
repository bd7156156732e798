"""The unbound-readings page: a station reading without a check-in, assigned, restored, discarded.

The queue item is made by ingest's own pipeline from a devices.wire batch whose Blood Pressure
Measurement bytes are written from the Bluetooth BLS layout (ble-profiles.md §3.1): flags
0x06 (time stamp + pulse), systolic 0x0078 = 120, diastolic 0x0050 = 80, mean 0x005D = 93
mmHg (SFLOAT, exponent 0), Date Time, pulse 0x0048 = 72 /min.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ingest.pipeline import process_message
from ingest.store import registry
from ingest.store.observations import write_outcomes
from tests.api.conftest import Api
from tests.api.world import CARD, IN_HWANGHAK, IN_YAKSU

pytestmark = pytest.mark.db

SEOUL = ZoneInfo("Asia/Seoul")
BPM = "00002a35-0000-1000-8000-00805f9b34fb"
DEVICE = "C4:7C:8D:6A:1B:22"


def bpm_hex(t: datetime) -> str:
    stamp = t.year.to_bytes(2, "little") + bytes([t.month, t.day, t.hour, t.minute, t.second])
    return "06" + "7800" + "5000" + "5d00" + stamp.hex() + "4800"


async def queue_one(conn: Any) -> None:
    await conn.execute(
        "INSERT INTO device (id, address, kind, station_id) VALUES (%s, %s, 'blood-pressure', "
        "'yaksu-station-1')",
        (DEVICE, DEVICE),
    )
    measured = datetime.now(SEOUL).replace(microsecond=0) - timedelta(minutes=5)
    reading = {
        "id": "u-1",
        "source": "ble",
        "station": "yaksu-station-1",
        "device": {"id": DEVICE, "address": DEVICE},
        "values": [{"uuid": BPM, "hex": bpm_hex(measured)}],
        "received_at": datetime.now(SEOUL).isoformat(),
        "clock": None,
        "binding": None,
    }
    batch = {
        "schema": 1,
        "gateway": "yaksu-gw-1",
        "centre": "yaksu",
        "sent_at": datetime.now(SEOUL).isoformat(),
        "readings": [reading],
    }
    snapshot = await registry.load_registry(conn)
    outcome = process_message("daon/gw/yaksu-gw-1/readings", json.dumps(batch).encode(), snapshot)
    async with conn.transaction():
        await write_outcomes(conn, [outcome])


def item_id(page: str) -> str:
    marker = 'action="/unbound/'
    start = page.index(marker) + len(marker)
    return page[start : page.index("/", start)]


def statuses(api: Api) -> list[tuple[Any, ...]]:
    async def work(conn: Any) -> list[tuple[Any, ...]]:
        cur = await conn.execute("SELECT resident_id, code, status FROM observation ORDER BY code")
        return await cur.fetchall()

    return api.db(work)


def test_assign_restore_and_discard(api: Api) -> None:
    api.db(queue_one)
    csrf = api.login_as("N01")
    page = api.client.get("/unbound")
    assert page.status_code == 200
    assert "체크인 없음" in page.text
    unbound_id = item_id(page.text)
    # another nurse's resident cannot be chosen
    denied = api.client.post(
        f"/unbound/{unbound_id}/assign", data={"csrf_token": csrf, "resident": IN_HWANGHAK}
    )
    assert denied.status_code == 403
    # assign by card number
    done = api.client.post(
        f"/unbound/{unbound_id}/assign", data={"csrf_token": csrf, "resident": CARD[IN_YAKSU]}
    )
    assert done.status_code == 303
    stored = statuses(api)
    assert {r[0] for r in stored} == {IN_YAKSU}
    assert {r[2] for r in stored} == {"final"}
    assert "85354-9" in {r[1] for r in stored}
    assert "R0000001" in api.client.get("/unbound?state=assigned").text
    # restore: the Observations are retracted in the open, the item is pending again
    api.client.post(f"/unbound/{unbound_id}/restore", data={"csrf_token": csrf})
    assert {r[2] for r in statuses(api)} == {"entered-in-error"}
    assert unbound_id == item_id(api.client.get("/unbound").text)
    # discard needs a reason, then is reversible too
    assert (
        api.client.post(f"/unbound/{unbound_id}/discard", data={"csrf_token": csrf}).status_code
        == 400
    )
    api.client.post(
        f"/unbound/{unbound_id}/discard", data={"csrf_token": csrf, "reason": "테스트 측정"}
    )
    assert "테스트 측정" in api.client.get("/unbound?state=discarded").text

    async def history(conn: Any) -> list[tuple[Any, ...]]:
        cur = await conn.execute("SELECT action, by_user FROM unbound_event ORDER BY id")
        return await cur.fetchall()

    assert api.db(history) == [("assign", "N01"), ("restore", "N01"), ("discard", "N01")]


def test_only_staff_who_resolve_readings_see_the_queue(api: Api) -> None:
    for user in ("T01", "L10-01", "S-yaksu-1"):
        api.login_as(user)
        assert api.client.get("/unbound").status_code == 403, user


def test_the_queue_stays_within_the_viewers_neighbourhoods_in_every_state(api: Api) -> None:
    """A 약수동 reading, pending, assigned and discarded in turn, never shows to the 황학동 nurse
    (issue 13.1: she saw another centre's resident, values, assigning nurse and note), and
    she cannot act on it; the admin sees every state."""
    api.db(queue_one)
    yaksu_csrf = api.login_as("N01")
    unbound_id = item_id(api.client.get("/unbound").text)

    def outsider_sees(state: str) -> str:
        api.login_as("N02")
        return api.client.get(f"/unbound?state={state}").text

    def outsider_cannot_act() -> None:
        csrf = api.login_as("N02")
        for action, data in (
            ("assign", {"resident": IN_HWANGHAK}),
            ("discard", {"reason": "남의 것"}),
            ("restore", {}),
        ):
            answer = api.client.post(
                f"/unbound/{unbound_id}/{action}", data={"csrf_token": csrf, **data}
            )
            assert answer.status_code == 403, action

    assert f'action="/unbound/{unbound_id}/' not in outsider_sees("pending")
    outsider_cannot_act()
    api.login_as("N01")
    note = {"csrf_token": yaksu_csrf, "resident": IN_YAKSU, "note": "약수 메모"}
    assert api.client.post(f"/unbound/{unbound_id}/assign", data=note).status_code == 303
    assigned = outsider_sees("assigned")
    for secret in (IN_YAKSU, "약수 메모", "N01", f"/unbound/{unbound_id}/"):
        assert secret not in assigned
    outsider_cannot_act()
    api.login_as("N01")
    api.client.post(f"/unbound/{unbound_id}/restore", data={"csrf_token": yaksu_csrf})
    api.client.post(
        f"/unbound/{unbound_id}/discard", data={"csrf_token": yaksu_csrf, "reason": "시험 측정"}
    )
    assert "시험 측정" not in outsider_sees("discarded")
    outsider_cannot_act()
    api.login_as("A01")
    assert "시험 측정" in api.client.get("/unbound?state=discarded").text
