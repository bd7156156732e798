"""A small registry for the database tests: one centre, one gateway, devices and residents."""

from __future__ import annotations

from datetime import datetime, timedelta

from ingest import store
from ingest.store import registry as reg
from tests.ingest import payloads as p

GATEWAY = "yaksu-gw-1"
BP_CUFF = "C4:7C:8D:6A:1B:22"
GLUCOMETER = "5A:00:00:00:00:01"
HOME_SCALE = "D0:00:00:00:00:01"
RESIDENTS = ("R0001234", "R0001235", "R0000007")


async def seed(url: str) -> None:
    async with store.connection(url) as conn:
        await reg.upsert_centres(conn, [reg.Centre("yaksu", "약수동 U-건강센터", "약수동")])
        await reg.upsert_gateways(conn, [reg.Gateway(GATEWAY, "yaksu", "station", "1번")])
        await reg.upsert_stations(
            conn, [reg.Station("yaksu-station-1", "yaksu", "1번 측정대", GATEWAY)]
        )
        await reg.upsert_residents(
            conn, [reg.Resident(r, f"시험주민{i}", "약수동") for i, r in enumerate(RESIDENTS)]
        )
        await reg.upsert_devices(
            conn,
            [
                reg.Device(
                    BP_CUFF,
                    "blood-pressure",
                    BP_CUFF,
                    "A&D Medical",
                    "UA-651BLE",
                    station_id="yaksu-station-1",
                ),
                reg.Device(
                    GLUCOMETER,
                    "glucose",
                    GLUCOMETER,
                    station_id="yaksu-station-1",
                    calibration="plasma",
                ),
                reg.Device(HOME_SCALE, "body-weight", HOME_SCALE, owner_id="R0000007"),
            ],
        )
        await conn.commit()


# One anchor for the whole test session: two calls must give the same device time, or a
# "resent" memory built a second later would look like new records.
_ANCHOR = datetime.now(p.KST).replace(second=0, microsecond=0)


def measured(minutes_ago: int) -> datetime:
    """A device wall-clock time (naive, Korea) some minutes before the session's anchor."""
    return (_ANCHOR - timedelta(minutes=minutes_ago)).replace(tzinfo=None)


def memory(count: int, *, start: int = 0, prefix: str = "m") -> list[dict[str, object]]:
    """A cuff's stored readings, oldest first, as wire readings (a memory dump).

    Each becomes two Observations: the panel and the pulse (no status bits).
    """
    return [
        p.reading(
            f"{prefix}{i}", [(p.BPM, p.bp(measured(600 - i * 10), status=None))], device=BP_CUFF
        )
        for i in range(start, start + count)
    ]
