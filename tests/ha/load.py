"""Gateways that resend until acknowledged, and ``daon ingest`` workers, for the HA scenarios.

A gateway keeps every reading in its outbox until ingest acknowledges it (after the commit);
:class:`Gateways` does the same with a dictionary: a message whose readings are not all
acknowledged ``resend_after`` seconds after it was sent is sent again, over whichever broker
node answers. Ingest de-duplicates by the PHD identifier, so resends never add rows.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from ingest import store
from ingest.pipeline import process_message
from ingest.store import registry as reg

KST = timezone(timedelta(hours=9))
GLUCOSE = "00002a18-0000-1000-8000-00805f9b34fb"
WEIGHT = "00002a9d-0000-1000-8000-00805f9b34fb"


def _stamp(t: datetime) -> bytes:
    return struct.pack("<HBBBBB", t.year, t.month, t.day, t.hour, t.minute, t.second)


def _glucose(mg_dl: int, t: datetime, sequence: int) -> str:
    # mg/dL as kg/L: mantissa mg_dl, exponent -5 (Glucose Service 1.0, SFLOAT)
    sfloat = struct.pack("<H", ((-5 & 0xF) << 12) | (mg_dl & 0x0FFF))
    return (bytes([0x02]) + struct.pack("<H", sequence) + _stamp(t) + sfloat + b"\x12").hex()


def _weight(kg: float, t: datetime) -> str:
    return (bytes([0x02]) + struct.pack("<H", int(kg / 0.005)) + _stamp(t)).hex()


@dataclass
class Workload:
    root: str
    gateways: list[str]
    residents: list[str]
    messages: list[tuple[str, bytes, list[str]]] = field(default_factory=list)

    @property
    def reading_ids(self) -> list[str]:
        return [i for _, _, ids in self.messages for i in ids]


def build(root: str, readings: int, gateways: int = 4, per_message: int = 20) -> Workload:
    """Glucose and weight readings from ``gateways`` centres, bound to 500 residents."""
    rng = random.Random(11)
    work = Workload(
        root, [f"ha-gw-{g}" for g in range(gateways)], [f"R{i:07d}" for i in range(500)]
    )
    now = datetime.now(KST)
    start = (now - timedelta(days=3)).replace(tzinfo=None, microsecond=0)
    per_gateway = readings // gateways
    for g, gateway in enumerate(work.gateways):
        batch: list[dict[str, Any]] = []
        for i in range(per_gateway):
            t = start + timedelta(seconds=i * 3 + g)
            if i % 2:
                device, value = f"ha-glu-{g}", (GLUCOSE, _glucose(rng.randint(80, 200), t, i))
            else:
                device, value = f"ha-scale-{g}", (WEIGHT, _weight(rng.uniform(45, 90), t))
            reading_id = f"{root}-{g}-{i}"
            batch.append(
                {
                    "id": reading_id,
                    "source": "ble",
                    "station": f"ha-station-{g}",
                    "device": {"id": device, "address": None},
                    "values": [{"uuid": value[0], "hex": value[1]}],
                    "received_at": (now - timedelta(seconds=1)).isoformat(),
                    "binding": {
                        "resident": work.residents[rng.randrange(len(work.residents))],
                        "method": "check-in",
                        "session": reading_id,
                    },
                }
            )
            if len(batch) == per_message or i == per_gateway - 1:
                body = {
                    "schema": 1,
                    "gateway": gateway,
                    "centre": "ha",
                    "sent_at": now.isoformat(),
                    "readings": batch,
                }
                work.messages.append(
                    (
                        f"{root}/gw/{gateway}/readings",
                        json.dumps(body, separators=(",", ":")).encode(),
                        [str(r["id"]) for r in batch],
                    )
                )
                batch = []
    rng.shuffle(work.messages)
    return work


async def seed(url: str, work: Workload) -> None:
    async with store.connection(url) as conn:
        await reg.upsert_centres(conn, [reg.Centre("ha", "HA 센터", "약수동")])
        await reg.upsert_gateways(conn, [reg.Gateway(g, "ha") for g in work.gateways])
        await reg.upsert_stations(
            conn,
            [
                reg.Station(f"ha-station-{i}", "ha", f"{i}번", g)
                for i, g in enumerate(work.gateways)
            ],
        )
        devices = []
        for i in range(len(work.gateways)):
            station = f"ha-station-{i}"
            devices += [
                reg.Device(f"ha-glu-{i}", "glucose", station_id=station, calibration="plasma"),
                reg.Device(f"ha-scale-{i}", "body-weight", station_id=station),
            ]
        await reg.upsert_devices(conn, devices)
        await reg.upsert_residents(
            conn, [reg.Resident(r, f"주민{r[-4:]}", "약수동") for r in work.residents]
        )
        await conn.commit()


async def expected_identifiers(url: str, work: Workload) -> set[str]:
    """The Observation identifiers ingest must store for the workload (its own mapping)."""
    async with store.connection(url) as conn:
        registry = await reg.load_registry(conn)
    found: set[str] = set()
    for topic, body, _ in work.messages:
        for reading in process_message(topic, body, registry).readings:
            found.update(o.identifier for o in reading.observations)
    return found


async def table_check(url: str, expected: set[str]) -> dict[str, int]:
    async with store.connection(url) as conn:
        rows = await (await conn.execute("SELECT identifier FROM observation")).fetchall()
    found = [r[0] for r in rows]
    distinct = set(found)
    return {
        "rows": len(found),
        "expected": len(expected),
        "lost": len(expected - distinct),
        "duplicates": len(found) - len(distinct),
        "unexpected": len(distinct - expected),
    }


def _hostport(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 1883


class _Link:
    """A paho client that moves to the next broker node when its node goes away.

    A clean session (the publisher) gets a client id of its own per connection: it carries no
    state, and RabbitMQ refuses a client id whose previous (non-durable) queue lived on the node
    that died. A ``persistent`` session (the ack listener, as a gateway's central link) keeps
    one client id: the broker keeps its subscription and what arrives for it while it is away,
    and a new connection finds its (replicated) JetStream consumer or quorum queue in place.

    ``subscriptions`` are made on every connection, and the link counts as connected only once
    the broker granted all of them. A refused subscription (SUBACK 0x80) ends the connection
    and the link moves on, as ``devices.mqttlink.MqttLink.subscribe`` makes the gateway and
    ingest do: NATS refuses a QoS 1 subscription when creating its JetStream consumer takes
    longer than its 4 s request timeout, which happens while a killed node's streams and
    consumers elect new leaders, and a listener that took the refusal for a subscription never
    heard another acknowledgement (the intermittent stall of the NATS node-kill scenario).
    """

    def __init__(
        self,
        urls: list[str],
        client_id: str,
        subscriptions: list[tuple[str, int]] | None = None,
        persistent: bool = False,
    ) -> None:
        self.urls = urls
        self.persistent = persistent
        self.index = 0
        self.base_id = client_id
        self.on_message: Any = None
        self.connected = threading.Event()
        self.events: list[str] = []  # connections, refusals and losses, for failure messages
        self._subscriptions = list(subscriptions or [])
        self._started = time.monotonic()
        self._closing = False
        self.client = self._make(0)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _note(self, what: str) -> None:
        node = self.urls[self.index % len(self.urls)]
        self.events.append(f"{time.monotonic() - self._started:6.1f} s {node}: {what}")

    def _make(self, n: int) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.base_id if self.persistent else f"{self.base_id}-{n}",
            clean_session=not self.persistent,
            reconnect_on_failure=False,  # loop_forever returns; _run moves to the next node
        )
        client.max_inflight_messages_set(200)
        client.max_queued_messages_set(0)
        client.on_connect = self._connected
        client.on_subscribe = self._subscribed
        client.on_disconnect = self._disconnected
        if self.on_message is not None:
            client.on_message = self.on_message
        return client

    def _connected(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            self._note(f"refused: {reason}")
            return
        if not self._subscriptions:
            self._note("connected")
            self.connected.set()
            return
        self._note("connected, subscribing")
        client.subscribe(self._subscriptions)

    def _subscribed(
        self, client: paho.Client, userdata: Any, mid: int, reasons: list[Any], props: Any
    ) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            self._note(f"subscription refused ({', '.join(refused)}); next node")
            client.disconnect()
            return
        self._note("subscribed")
        self.connected.set()

    def _disconnected(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self.connected.clear()
        if not self._closing:
            self._note(f"lost: {reason}")

    def _run(self) -> None:
        while not self._closing:
            host, port = _hostport(self.urls[self.index % len(self.urls)])
            try:
                self.client.connect(host, port, keepalive=5)
                self.client.loop_forever(retry_first_connection=False)
            except OSError as exc:
                self._note(f"cannot connect: {exc}")
            self.connected.clear()
            if self._closing:
                return
            self.index += 1
            self.client = self._make(self.index)
            time.sleep(0.2)

    def close(self) -> None:
        self._closing = True
        self.client.disconnect()
        self._thread.join(timeout=10)


class Gateways:
    """Publishes a workload at a steady rate and resends what is not acknowledged in time."""

    def __init__(
        self, urls: list[str], root: str, resend_after: float = 5.0, persistent_acks: bool = True
    ) -> None:
        self.root = root
        self.resend_after = resend_after
        self.lock = threading.Lock()
        self.acked: dict[str, float] = {}
        self.sent_at: dict[int, float] = {}  # message index -> last send
        self.attempts: dict[int, int] = {}  # message index -> sends so far (backoff)
        self.first_sent: dict[str, float] = {}
        self.resends = 0
        self.acks = _Link(
            urls, f"ha-acks-{root}", [(f"{root}/gw/+/ack", 1)], persistent=persistent_acks
        )
        self.acks.on_message = self._on_ack
        self.acks.client.on_message = self._on_ack
        self.acks.start()
        self.pub = _Link(list(reversed(urls)), f"ha-gw-{os.getpid()}")
        self.pub.start()

    def _on_ack(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        now = time.monotonic()
        with self.lock:
            for reading_id in json.loads(msg.payload)["ids"]:
                self.acked.setdefault(reading_id, now)

    def wait_connected(self, timeout: float = 30) -> None:
        if not (self.acks.connected.wait(timeout) and self.pub.connected.wait(timeout)):
            raise TimeoutError("gateways could not reach any broker node")

    def _send(self, index: int, message: tuple[str, bytes, list[str]]) -> None:
        topic, body, ids = message
        now = time.monotonic()
        for reading_id in ids:
            self.first_sent.setdefault(reading_id, now)
        self.sent_at[index] = now
        self.attempts[index] = self.attempts.get(index, 0) + 1
        self.pub.client.publish(topic, body, qos=1)

    def _due(self, index: int, now: float) -> bool:
        """Resend with backoff (5, 10, 20, 30 s): the broker keeps what it accepted for ingest's
        persistent session, so a resend is only for what a broker node lost with it."""
        wait = min(self.resend_after * 2 ** (self.attempts.get(index, 1) - 1), 30.0)
        return now - self.sent_at.get(index, 0.0) >= wait

    def _pending(self, work: Workload) -> list[int]:
        with self.lock:
            return [
                i
                for i, (_, _, ids) in enumerate(work.messages)
                if any(r not in self.acked for r in ids)
            ]

    def run(self, work: Workload, rate: float, timeout: float, during: Any = None) -> None:
        """Send every message at ``rate`` readings/s, call ``during(elapsed)`` between sends,
        then resend until every reading is acknowledged or ``timeout`` passes."""
        start = time.monotonic()
        sent = 0
        for index, message in enumerate(work.messages):
            due = start + sent / rate
            while (delay := due - time.monotonic()) > 0:
                time.sleep(min(delay, 0.05))
            if during is not None:
                during(time.monotonic() - start)
            if self.pub.connected.is_set():
                self._send(index, message)
            sent += len(message[2])
        while True:
            pending = self._pending(work)
            if not pending:
                return
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"{len(pending)} messages still unacknowledged")
            now = time.monotonic()
            for index in pending:
                if self._due(index, now) and self.pub.connected.is_set():
                    self.resends += 1
                    self._send(index, work.messages[index])
            if during is not None:
                during(time.monotonic() - start)
            time.sleep(0.1)

    def acks_per_second(self, since: float) -> list[int]:
        """Readings acknowledged in each second after ``since`` (monotonic)."""
        with self.lock:
            times = sorted(t - since for t in self.acked.values() if t >= since)
        if not times:
            return []
        counts = [0] * (int(times[-1]) + 1)
        for t in times:
            counts[int(t)] += 1
        return counts

    def close(self) -> None:
        self.pub.close()
        self.acks.close()


class IngestWorker:
    """One ``daon ingest`` process with its own log."""

    def __init__(
        self,
        db_url: str,
        mqtt_urls: list[str],
        root: str,
        workdir: Path,
        index: int,
        shared: bool = True,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / f"ingest-{index}.toml"
        share = "" if not shared else "ingest"
        config.write_text(
            f'[ingest]\nclient_id = "ha-ingest-{index}"\nshare_group = "{share}"\n'
            "batch_max_readings = 500\nbatch_max_messages = 40\nbatch_max_wait_s = 0.02\n"
            "retry_max_s = 1.0\n"
        )
        self.env = {
            **os.environ,
            "DAON_DATABASE_URL": db_url,
            "DAON_MQTT_URL": ",".join(mqtt_urls),
            "DAON_TOPIC_ROOT": root,
            "DAON_CONFIG": str(config),
        }
        self.log = workdir / f"ingest-{index}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daon", "ingest"], env=self.env, stdout=log, stderr=log
            )

    def subscribed(self) -> bool:
        return b"consuming " in self.log.read_bytes()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def migrate(url: str) -> None:
    asyncio.run(store.migrate(url))
