"""The whole path with real parts: virtual devices → bleak → the gateway *process* → Mosquitto
→ the real ingest consumer → PostgreSQL. The gateway is killed with SIGKILL mid-transfer and
restarted; the database must hold every reading exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from devices.records import decode_record
from gateway.config import OutboxConfig
from gateway.outbox import Outbox
from ingest import store
from ingest.config import config_from
from ingest.service import run as run_ingest
from ingest.store import registry
from simulators.bluez import Timing, VirtualBlueZ
from simulators.peripherals import GlucoseMeter, seoul_now
from tests.gateway.helpers import Acker, eventually, make_config

pytestmark = [pytest.mark.db, pytest.mark.mqtt, pytest.mark.ble, pytest.mark.slow]

METER = "C0:11:22:33:77:01"
RECORDS = 40
DAON = Path(sys.executable).with_name("daon")
# Slow enough that the transfer of the memory takes a second and can be interrupted.
TIMING = Timing(first_advert=0.012, adv_interval=0.02, connect=0.0, discovery=0.0, notify_gap=0.03)


def fill(meter: GlucoseMeter) -> None:
    """RECORDS readings a minute apart (distinct times: the PHD identifier includes the time)."""
    start = seoul_now().replace(microsecond=0) - timedelta(minutes=RECORDS)
    for i in range(RECORDS):
        meter.take_reading(90 + i, at=start + timedelta(minutes=i))


def gateway_toml(tmp_path: Path, *, gateway_id: str, mqtt_url: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"""
[gateway]
centre = "yaksu"
id = "{gateway_id}"
mqtt_timeout_s = 3
reconnect_max_s = 1
[gateway.central]
url = "{mqtt_url}"
client_id = "{gateway_id}-central"
[gateway.outbox]
path = "{tmp_path / "outbox.sqlite3"}"
resend_after_s = 3
[gateway.ble]
connect_timeout_s = 5
safety_timeout_s = 8
settle_s = 0
idle_timeout_s = 1
rescan_s = 0.5
cooldown_s = 0.3
backoff_s = 0.05
racp_timeout_s = 10
[[gateway.stations]]
id = "yaksu-station-1"
[[gateway.devices]]
address = "{METER}"
model = "CareSens N Premier"
id = "meter-e2e"
owner = "R0009001"
calibration = "plasma"
""",
        encoding="utf-8",
    )
    return path


@contextlib.asynccontextmanager
async def gateway_process(
    config: Path, topic_root: str, log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``daon gateway`` in a child process. Waited for without blocking the loop: the virtual
    BlueZ answering the child's D-Bus calls runs in this test's event loop."""
    env = {**os.environ, "DAON_TOPIC_ROOT": topic_root, "DAON_STATE_DIR": str(config.parent)}
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            str(DAON),
            "-v",
            "gateway",
            "--gateway-config",
            str(config),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(15):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def seed(db_url: str, gateway_id: str) -> None:
    async with store.connection(db_url) as conn:
        await registry.upsert_centres(
            conn, [registry.Centre("yaksu", "약수동 U-건강센터", "약수동")]
        )
        await registry.upsert_gateways(conn, [registry.Gateway(gateway_id, "yaksu")])
        await registry.upsert_residents(
            conn, [registry.Resident("R0009001", "시험 주민", "약수동")]
        )
        await registry.upsert_devices(
            conn,
            [
                registry.Device(
                    "meter-e2e",
                    kind="glucose",
                    address=METER,
                    owner_id="R0009001",
                    calibration="plasma",
                )
            ],
        )
        await conn.commit()


@contextlib.asynccontextmanager
async def ingest_running(db_url: str, mqtt_url: str, topic_root: str) -> AsyncIterator[None]:
    config = config_from(
        db_url,
        mqtt_url,
        topic_root=topic_root,
        table={"client_id": f"ingest-{uuid.uuid4().hex[:8]}"},
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_ingest(config, stop=stop))
    try:
        yield
    finally:
        stop.set()
        async with asyncio.timeout(20):
            await task


def stored(db_url: str) -> tuple[int, int]:
    with psycopg.connect(db_url, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT identifier) FROM observation WHERE device_id = %s",
            ("meter-e2e",),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def diagnose(db_url: str) -> str:
    """What ingest did with the readings that are not observations (for failure messages)."""
    with psycopg.connect(db_url, connect_timeout=5) as conn:
        dead = conn.execute(
            "SELECT reason, detail, count(*) FROM dead_letter GROUP BY 1, 2 LIMIT 5"
        ).fetchall()
        unbound = conn.execute("SELECT reason, count(*) FROM unbound_reading GROUP BY 1").fetchall()
        devices = conn.execute("SELECT device_id, count(*) FROM observation GROUP BY 1").fetchall()
    return f"dead letters {dead}; unbound {unbound}; observations by device {devices}"


async def test_sigkill_mid_transfer_loses_nothing_and_stores_nothing_twice(
    tmp_path: Path, bluez: VirtualBlueZ, db_url: str, mqtt_url: str, topic_root: str
) -> None:
    gateway_id = f"gw-{uuid.uuid4().hex[:8]}"
    await seed(db_url, gateway_id)
    timing = Timing(
        first_advert=0.012, adv_interval=0.02, connect=0.0, discovery=0.0, notify_gap=0.03
    )
    meter = bluez.add_peripheral(GlucoseMeter.caresens(METER, timing=timing))
    fill(meter)
    config = gateway_toml(tmp_path, gateway_id=gateway_id, mqtt_url=mqtt_url)
    log = tmp_path / "gateway.log"
    async with ingest_running(db_url, mqtt_url, topic_root):
        async with gateway_process(config, topic_root, log) as first:
            # kill it while the meter is in the middle of sending its memory
            await eventually(
                lambda: meter.session is not None and meter.session.sent >= RECORDS // 3, within=30
            )
            first.send_signal(signal.SIGKILL)
            async with asyncio.timeout(10):
                await first.wait()
        sent_before_kill = meter.session.sent if meter.session else None
        async with gateway_process(config, topic_root, log):
            try:
                await eventually(lambda: stored(db_url)[0] >= RECORDS, within=30)
            except TimeoutError:
                pytest.fail(f"stored {stored(db_url)}: {diagnose(db_url)}")
            await asyncio.sleep(1.0)  # any late duplicate would land now
    rows, distinct = stored(db_url)
    assert (rows, distinct) == (RECORDS, RECORDS), log.read_text()[-3000:]
    assert sent_before_kill is None or sent_before_kill < RECORDS


@pytest.mark.skipif(not DAON.exists(), reason="the daon entry point is not installed")
async def test_sigkill_mid_transfer_up_to_the_broker_and_ack_protocol(
    tmp_path: Path, bluez: VirtualBlueZ, mqtt_url: str, topic_root: str
) -> None:
    """The same kill, checked at the broker with a stand-in for ingest's acks: every record
    arrives; resends of unacknowledged ones are allowed (ingest de-duplicates them)."""
    gateway_id = f"gw-{uuid.uuid4().hex[:8]}"
    timing = Timing(
        first_advert=0.012, adv_interval=0.02, connect=0.0, discovery=0.0, notify_gap=0.03
    )
    meter = bluez.add_peripheral(GlucoseMeter.caresens(METER, timing=timing))
    fill(meter)
    path = gateway_toml(tmp_path, gateway_id=gateway_id, mqtt_url=mqtt_url)
    log = tmp_path / "gateway.log"
    config = make_config(
        tmp_path, central_url=mqtt_url, topic_root=topic_root, gateway_id=gateway_id
    )
    async with Acker(mqtt_url, config) as acker:
        async with gateway_process(path, topic_root, log) as first:
            await eventually(
                lambda: meter.session is not None and meter.session.sent >= RECORDS // 3, within=30
            )
            first.send_signal(signal.SIGKILL)
            async with asyncio.timeout(10):
                await first.wait()
        async with gateway_process(path, topic_root, log):
            await acker.wait_for(RECORDS, within=60)
            box = OutboxConfig(path=tmp_path / "outbox.sqlite3")
            await eventually(lambda: _queued(box, 0), within=20)
    sequences = []
    for reading in acker.readings:
        (m,) = decode_record([(v.uuid, v.data) for v in reading.values])
        assert m.sequence_number is not None
        sequences.append(m.sequence_number)
    assert sorted(set(sequences)) == list(range(1, RECORDS + 1)), log.read_text()[-3000:]


async def _queued(box: OutboxConfig, n: int) -> bool:
    async with Outbox(box, readonly=True) as outbox:
        return (await outbox.status()).queued == n
