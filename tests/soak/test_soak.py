"""Soak tier: the gateway through a thousand and more connection cycles, resources flat (12.2).

One event loop holds the whole gateway (``gateway.service.run``: BLE side, station side,
outbox, forwarding), the virtual BlueZ with its devices, kiosks and a stand-in for ingest's
acknowledgements. For ``DAON_SOAK_S`` seconds (default 75) the devices are served back to
back (no cool-down, no gathering pause):

* BLE: two cuffs that always have a reading waiting (normal sessions, the cuff hangs up), one
  that loses the link after one record (device gone mid-transfer), one that BlueZ refuses to
  connect (``le-connection-refused``, every attempt failed), and one too slow for the
  transfer bound (the session is cancelled mid-transfer by its timeout);
* kiosks: a new MQTT connection per visit (check-in + measurement), every fifth attempt
  cancelled while connecting and every seventh refused (nothing listening).

Every second it samples this process's open descriptors, the private bus's D-Bus connections,
the asyncio tasks, the threads (paho runs one per MQTT connection) and the RSS. After a
warm-up (the first quarter), the last quarter must be no higher than the warm-up (descriptors
and D-Bus connections by at most one session in flight, tasks and threads by a few, RSS by
under 10 %), and readings of both kinds must keep arriving in every interval. Longer runs:
``DAON_SOAK_S=600 pytest tests/soak``; the whole ``daon demo`` for hours is ``bench/soak.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dbus_fast import Message as DBusMessage
from dbus_fast.aio import MessageBus

from daon.embedded import free_port
from devices.mqttlink import Broker, MqttError, MqttLink
from devices.wire import ack_topic, encode_ack, readings_topic, station_checkin_topic, station_topic
from gateway.config import BleConfig, DeviceConfig
from simulators.bluez import Timing, VirtualBlueZ
from simulators.peripherals import BloodPressureCuff, Faults
from tests.gateway.helpers import STATION, make_config, running

pytestmark = [pytest.mark.ble, pytest.mark.mqtt, pytest.mark.slow]

DURATION_S = float(os.environ.get("DAON_SOAK_S", "75"))
SAMPLE_S = 1.0
CARD = "9410000000000001"
KIOSK = DeviceConfig(address=None, model="kiosk", id="soak-kiosk-bp", station=STATION)
NORMAL = ("C0:50:AC:00:00:01", "C0:50:AC:00:00:02")
DROPS = "C0:50:AC:00:00:03"
REFUSED = "C0:50:AC:00:00:04"
SLOW = "C0:50:AC:00:00:05"


@dataclass
class Sample:
    at: float
    fds: int
    dbus: int
    tasks: int
    threads: int
    rss_kb: int


@dataclass
class Tally:
    ble: int = 0
    kiosk: int = 0
    kiosk_cycles: Counter[str] = field(default_factory=Counter)
    arrivals: list[tuple[float, str]] = field(default_factory=list)


def rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def bus_connections(bus: MessageBus) -> int:
    reply = await bus.call(
        DBusMessage(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="ListNames",
        )
    )
    assert reply is not None
    return sum(1 for name in reply.body[0] if name.startswith(":")) - 1


async def sampler(address: str, samples: list[Sample], stop: asyncio.Event) -> None:
    bus = await MessageBus(bus_address=address).connect()
    try:
        while not stop.is_set():
            samples.append(
                Sample(
                    time.monotonic(),
                    len(os.listdir("/proc/self/fd")),
                    await bus_connections(bus),
                    len(asyncio.all_tasks()),
                    threading.active_count(),
                    rss_kb(),
                )
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SAMPLE_S):
                    await stop.wait()
    finally:
        bus.disconnect()


async def acker(url: str, root: str, gateway_id: str, tally: Tally, ready: asyncio.Event) -> None:
    """Ingest's side of the protocol, lean: count the readings by source, acknowledge them."""
    link = MqttLink(Broker.parse(url), client_id=f"soak-acker-{uuid.uuid4().hex[:8]}", timeout=5)
    async with link:
        await link.subscribe([(readings_topic(root, gateway_id), 1)])
        ready.set()
        async for message in link.iter_messages():
            batch = json.loads(message.payload)
            ids = []
            for reading in batch["readings"]:
                ids.append(reading["id"])
                kind = "ble" if reading["source"] == "ble" else "kiosk"
                setattr(tally, kind, getattr(tally, kind) + 1)
                tally.arrivals.append((time.monotonic(), kind))
            await link.publish(ack_topic(root, gateway_id), encode_ack(gateway_id, ids))


def kiosk_payload() -> bytes:
    when = datetime.now(UTC) + timedelta(hours=9)
    return json.dumps(
        {
            "schema": 1,
            "type": "measurement",
            "device_id": KIOSK.id,
            "station": STATION,
            "checkin": CARD,
            "device_time": when.replace(tzinfo=None).isoformat(timespec="seconds"),
            "measurements": [
                {
                    "type": "blood-pressure",
                    "values": [
                        {"code": "systolic", "value": 126, "unit": "mm[Hg]"},
                        {"code": "diastolic", "value": 81, "unit": "mm[Hg]"},
                        {"code": "pulse", "value": 70, "unit": "/min"},
                    ],
                }
            ],
        }
    ).encode()


def checkin_payload() -> bytes:
    at = datetime.now(UTC).isoformat()
    return json.dumps(
        {"schema": 1, "type": "checkin", "station": STATION, "card": CARD, "at": at}
    ).encode()


async def kiosks(url: str, root: str, tally: Tally, stop: asyncio.Event) -> None:
    """A new connection per visit; some cancelled while connecting, some refused."""
    broker = Broker.parse(url)
    nobody = Broker("127.0.0.1", free_port())
    attempt = 0
    while not stop.is_set():
        attempt += 1
        if attempt % 7 == 0:
            with contextlib.suppress(MqttError):
                await MqttLink(nobody, client_id=f"k-{attempt}", clean_session=True).connect()
            tally.kiosk_cycles["refused"] += 1
            continue
        link = MqttLink(broker, client_id=f"soak-kiosk-{attempt}", clean_session=True, timeout=5)
        if attempt % 5 == 0:
            connecting = asyncio.create_task(link.connect())
            await asyncio.sleep(0)
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, MqttError):
                await connecting
            await link.close()
            tally.kiosk_cycles["cancelled"] += 1
            continue
        async with link:
            await link.publish(station_checkin_topic(root, "yaksu", STATION), checkin_payload())
            await link.publish(station_topic(root, "yaksu", STATION, KIOSK.id), kiosk_payload())
        tally.kiosk_cycles["visits"] += 1
        await asyncio.sleep(0.02)


async def keep_devices_busy(bluez: VirtualBlueZ, stop: asyncio.Event) -> None:
    """Readings always waiting; the memory of what was sent forgotten (no growth here)."""
    cuffs = [bluez.peripheral(a) for a in (*NORMAL, DROPS, SLOW)]
    blocked = False
    while not stop.is_set():
        for cuff in cuffs:
            assert isinstance(cuff, BloodPressureCuff)
            cuff.memory[:] = [r for r in cuff.memory if not r.sent]
            while len(cuff.memory) < 3:
                cuff.take_reading(124, 81, 70)
        if not blocked:
            with contextlib.suppress(KeyError):  # known to BlueZ once it was seen
                bluez.set_blocked(REFUSED)
                blocked = True
        await asyncio.sleep(0.02)


def window(samples: list[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s.at < end]


async def test_the_gateway_stays_flat_through_connection_cycles(
    tmp_path: Path, bluez: VirtualBlueZ, mqtt_url: str, topic_root: str
) -> None:
    fast = Timing.fast()
    for address in NORMAL:
        bluez.add_peripheral(BloodPressureCuff.and_ua651(address, timing=fast))
    bluez.add_peripheral(
        BloodPressureCuff.and_ua651(DROPS, timing=fast, faults=Faults(drop_after=1))
    )
    bluez.add_peripheral(BloodPressureCuff.and_ua651(REFUSED, timing=fast))
    slow = Timing(first_advert=0.012, adv_interval=0.01, notify_gap=0.3, hang_up=0.02)
    bluez.add_peripheral(BloodPressureCuff.and_ua651(SLOW, timing=slow))
    ble_devices = [
        DeviceConfig(address=a, model="UA-651BLE", id=f"cuff-{a[-2:]}", station=STATION)
        for a in (*NORMAL, DROPS, REFUSED, SLOW)
    ]
    ble = BleConfig(
        connect_timeout_s=1.0,
        safety_timeout_s=2.0,
        attempts=2,
        settle_s=0.0,
        idle_timeout_s=0.2,
        transfer_timeout_s=0.35,
        racp_timeout_s=1.0,
        rescan_s=0.3,
        gather_s=0.0,
        cooldown_s=0.0,
        backoff_s=0.01,
    )
    config = make_config(
        tmp_path,
        central_url=mqtt_url,
        local_url=mqtt_url,
        topic_root=topic_root,
        devices=[*ble_devices, KIOSK],
        cards={CARD: "R0001234"},
        ble=ble,
    )
    tally = Tally()
    samples: list[Sample] = []
    stop = asyncio.Event()
    ready = asyncio.Event()
    cuffs = [bluez.peripheral(a) for a in (*NORMAL, DROPS, SLOW)]
    assert all(isinstance(c, BloodPressureCuff) for c in cuffs)
    started = 0.0
    acking = asyncio.create_task(acker(mqtt_url, topic_root, config.gateway_id, tally, ready))
    try:
        await ready.wait()
        async with running(config), asyncio.TaskGroup() as tg:
            tg.create_task(keep_devices_busy(bluez, stop))
            tg.create_task(kiosks(mqtt_url, topic_root, tally, stop))
            tg.create_task(sampler(bluez.address, samples, stop))
            started = time.monotonic()  # the gateway is up: the load starts
            await asyncio.sleep(DURATION_S)
            stop.set()
    finally:
        acking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await acking
    elapsed = time.monotonic() - started
    sessions = sum(c.sessions for c in cuffs if isinstance(c, BloodPressureCuff))
    refused = sum(1 for c in bluez.calls if c.member in ("Connect", "Pair") and c.error)
    quarter = elapsed / 4
    warm = window(samples, started + quarter, started + 2 * quarter)
    last = window(samples, started + 3 * quarter, started + elapsed)
    summary = (
        f"{elapsed:.0f} s: {sessions} BLE sessions, {refused} refused connects, kiosk "
        f"{dict(tally.kiosk_cycles)}; readings BLE {tally.ble}, kiosk {tally.kiosk}; "
        f"descriptors {max(s.fds for s in warm)} -> {max(s.fds for s in last)}, D-Bus "
        f"{max(s.dbus for s in warm)} -> {max(s.dbus for s in last)}, tasks "
        f"{max(s.tasks for s in warm)} -> {max(s.tasks for s in last)}, threads "
        f"{max(s.threads for s in warm)} -> {max(s.threads for s in last)}, RSS "
        f"{statistics.median(s.rss_kb for s in warm) / 1024:.1f} -> "
        f"{statistics.median(s.rss_kb for s in last) / 1024:.1f} MB"
    )
    print(summary)
    assert warm, summary
    assert last, summary
    # Resources: the last quarter is no higher than the warm-up (one session in flight aside).
    assert max(s.fds for s in last) <= max(s.fds for s in warm) + 2, summary
    assert max(s.dbus for s in last) <= max(s.dbus for s in warm) + 1, summary
    assert max(s.tasks for s in last) <= max(s.tasks for s in warm) + 4, summary
    assert max(s.threads for s in last) <= max(s.threads for s in warm) + 2, summary
    rss_warm = statistics.median(s.rss_kb for s in warm)
    assert statistics.median(s.rss_kb for s in last) < rss_warm * 1.10, summary
    # Work: cycles of every kind happened, and readings of both kinds kept arriving.
    # About 40 cycles a second on a quiet 2-core machine; the floor leaves room for a busy one.
    assert sessions + refused + sum(tally.kiosk_cycles.values()) >= DURATION_S * 5, summary
    assert sessions >= DURATION_S / 3, summary
    assert refused > 0, summary
    assert min(tally.kiosk_cycles[k] for k in ("visits", "cancelled", "refused")) > 0, summary
    for start in (started + quarter * i for i in range(1, 4)):
        kinds = {k for at, k in tally.arrivals if start <= at < start + quarter}
        assert kinds == {"ble", "kiosk"}, f"no {{'ble', 'kiosk'}} - {kinds} after {start}"
