# ruff: noqa: E402  (imports follow the sys.path fix below: this file is named like the package)
"""Gateway benchmarks: memory with 20 devices, session overhead, outbox throughput.

1. ``rss_mb``: resident set size of a ``daon gateway`` process with 20 registered BLE devices
   (five stations of four devices, all advertising on a virtual BlueZ, the gateway connecting
   to them in turn) and both broker links, after it has settled. Aim: under 80 MB (these
   boxes are small). The peak (VmHWM) is reported too.
2. ``session_overhead_ms``: for one blood-pressure session (an A&D cuff with two stored
   readings), the wall time of the gateway's session minus the device's own time (the
   simulated connection, discovery, indication gaps and the cuff's hang-up delay), median of
   several sessions, with the configurable settle delay set to 0 (it adds its own value).
3. ``outbox_readings_per_s``: readings written to the outbox (group commits of 20, as many
   sessions and kiosks do at once) and forwarded over the real broker in QoS 1 batches until
   a stand-in for ingest has acknowledged every one and the outbox is empty. Aim: 5,000/s.

Prints the figures and their ratio to the aims; the last line is JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is bench/gateway.py: run as a script, its own directory comes first on sys.path
# and would shadow the gateway package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from daon.embedded import EmbeddedBroker, find_mosquitto, free_port, port_open
from devices.mqttlink import Broker, MqttLink
from devices.wire import (
    Binding,
    CharacteristicValue,
    ClockSample,
    DeviceInfo,
    WireReading,
    ack_topic,
    encode_ack,
    encode_reading,
)
from gateway.ble import BleSide
from gateway.config import (
    BleConfig,
    DeviceConfig,
    GatewayConfig,
    OutboxConfig,
    StationConfig,
    parse_broker_url,
)
from gateway.outbox import Entry, Outbox, new_reading_id
from gateway.service import Gateway
from simulators.bluez import PrivateBus, Timing, virtual_bluez
from simulators.peripherals import BloodPressureCuff

RSS_AIM_MB = 80.0
THROUGHPUT_AIM = 5000.0
KST = timezone(timedelta(hours=9))
READINGS = 20_000
SESSIONS = 7

# A realistic wire reading (a BP record with clock and binding, ~900 bytes), encoded by
# devices.wire as the pipeline does; the id placeholder is replaced per reading.
TEMPLATE = encode_reading(
    WireReading(
        id="@ID@",
        source="ble",
        station="station-0",
        device=DeviceInfo(
            id="C4:7C:8D:6A:1B:22",
            address="C4:7C:8D:6A:1B:22",
            manufacturer="A&D Medical",
            model="UA-651BLE",
            serial="5120034871",
            firmware="1.3",
        ),
        values=(
            CharacteristicValue(
                "00002a35-0000-1000-8000-00805f9b34fb",
                bytes.fromhex("1e800052006100ea070b17090e2648000100"),
            ),
        ),
        payload=None,
        decoded={"kind": "blood-pressure", "effective_time": "2026-03-04T10:01:55+09:00"},
        quirks=(),
        received_at=datetime(2026, 3, 4, 10, 2, 11, tzinfo=KST),
        clock=ClockSample(
            datetime(2026, 3, 4, 10, 2, 10), datetime(2026, 3, 4, 10, 2, 11, tzinfo=KST), -1.0, True
        ),
        binding=Binding("R0001234", "check-in", "S0123456789abcde"),
    )
).decode()


def entry() -> Entry:
    reading_id = new_reading_id()
    return Entry(reading_id, "dev", TEMPLATE.replace("@ID@", reading_id, 1))


def broker_url() -> tuple[str, EmbeddedBroker | None]:
    """A private Mosquitto with the shipped configuration when installed, else :1883."""
    if find_mosquitto() is not None:
        broker = EmbeddedBroker(Path(tempfile.mkdtemp(prefix="daon-bench-gw-")), free_port())
        broker.start()
        return broker.url, broker
    if port_open("127.0.0.1", 1883):
        return "mqtt://127.0.0.1:1883", None
    sys.exit("no MQTT broker: install mosquitto")


def base_config(
    root: Path, url: str, *, devices: tuple[DeviceConfig, ...] = (), **kw: object
) -> GatewayConfig:
    gw = f"bench-{uuid.uuid4().hex[:6]}"
    return GatewayConfig(
        centre="yaksu",
        gateway_id=gw,
        topic_root=f"bench/{gw}",
        central=replace(parse_broker_url(url, "central"), client_id=f"{gw}-c"),
        local=None,
        outbox=OutboxConfig(path=root / f"{gw}.sqlite3", batch_size=500),
        stations=tuple(StationConfig(f"station-{i}") for i in range(5)),
        devices=devices,
        **kw,  # type: ignore[arg-type]
    )


# --- 1. resident set size ------------------------------------------------------------------


def twenty_devices() -> list[tuple[DeviceConfig, BloodPressureCuff]]:
    out = []
    for i in range(20):
        address = f"C0:BE:0C:00:00:{i:02X}"
        cuff = BloodPressureCuff.and_ua651(address, timing=Timing())
        device = DeviceConfig(
            address=address, model="UA-651BLE", id=f"dev-{i}", station=f"station-{i // 4}"
        )
        out.append((device, cuff))
    return out


def toml_for(config: GatewayConfig, url: str) -> str:
    lines = [
        "[gateway]",
        f'centre = "{config.centre}"',
        f'id = "{config.gateway_id}"',
        "[gateway.central]",
        f'url = "{url}"',
        "[gateway.outbox]",
        f'path = "{config.outbox.path}"',
        "[gateway.ble]",
        "rescan_s = 1.0",
        "cooldown_s = 2.0",
        "settle_s = 0.1",
        "idle_timeout_s = 2.0",
    ]
    for station in config.stations:
        lines += ["[[gateway.stations]]", f'id = "{station.id}"']
    for d in config.devices:
        lines += [
            "[[gateway.devices]]",
            f'address = "{d.address}"',
            f'model = "{d.model}"',
            f'id = "{d.id}"',
            f'station = "{d.station}"',
        ]
    return "\n".join(lines) + "\n"


def rss_kb(pid: int) -> tuple[int, int]:
    fields = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


async def measure_rss(root: Path, url: str) -> tuple[float, float, int]:
    pairs = twenty_devices()
    config = base_config(root, url, devices=tuple(d for d, _ in pairs))
    path = root / "rss.toml"
    path.write_text(toml_for(config, url), encoding="utf-8")
    with PrivateBus() as bus:
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
        os.environ["PATH"] = f"{bus.bin_dir}:{os.environ['PATH']}"
        async with virtual_bluez(bus.address) as bluez:
            for _, cuff in pairs:
                bluez.add_peripheral(cuff)
                cuff.take_reading(120, 80, 70)
            env = {**os.environ, "DAON_TOPIC_ROOT": config.topic_root, "DAON_STATE_DIR": str(root)}
            proc = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).with_name("daon")),
                "gateway",
                "--gateway-config",
                str(path),
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                await asyncio.sleep(8.0)  # imports, links, scans and a round of sessions
                rss, peak = rss_kb(proc.pid)
                sessions = sum(c.sessions for _, c in pairs)
            finally:
                proc.terminate()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(15):
                        await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    return rss / 1024, peak / 1024, sessions


# --- 2. session overhead ---------------------------------------------------------------------


async def measure_session_overhead(root: Path, url: str) -> tuple[float, float]:
    timing = Timing()  # virtual-bluez.md's measured latencies
    address = "C0:BE:0C:00:01:01"
    device = DeviceConfig(address=address, model="UA-651BLE", id="cuff", station="station-0")
    ble = BleConfig(settle_s=0.0, idle_timeout_s=5.0, cooldown_s=0.0, rescan_s=2.0)
    config = base_config(root, url, devices=(device,), ble=ble)
    overheads = []
    own = []
    with PrivateBus() as bus:
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
        os.environ["PATH"] = f"{bus.bin_dir}:{os.environ['PATH']}"
        async with virtual_bluez(bus.address) as bluez, Outbox(config.outbox) as outbox:
            cuff = bluez.add_peripheral(BloodPressureCuff.and_ua651(address, timing=timing))
            gw = Gateway(config, outbox)
            side = BleSide(config, binder=gw.binder, outbox=outbox, sink=gw.sink)
            for _ in range(SESSIONS):
                cuff.take_reading(124, 81, 70)
                cuff.take_reading(119, 78, 66)
                seen = None
                while seen is None:
                    seen = await side.scan_once()
                started = time.perf_counter()
                await side.serve(seen)
                wall = time.perf_counter() - started
                device_time = (
                    timing.connect + timing.discovery + 2 * timing.notify_gap + timing.hang_up
                )
                own.append(device_time)
                overheads.append(wall - device_time)
    return statistics.median(overheads) * 1000, statistics.median(own) * 1000


async def close_bleak_manager() -> None:
    """Close bleak's per-loop BlueZ manager before the virtual BlueZ goes away (no EOF noise)."""
    from bleak.backends.bluezdbus import manager as bleak_manager

    instance = bleak_manager._global_instances.pop(asyncio.get_running_loop(), None)
    watcher = getattr(instance, "_bus_watcher_task", None)
    if watcher is not None:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    bus = getattr(instance, "_bus", None)
    if bus is not None:
        bus.disconnect()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await bus.wait_for_disconnect()


# --- 3. outbox throughput ----------------------------------------------------------------------


async def acker(url: str, config: GatewayConfig, ready: asyncio.Event) -> None:
    async with MqttLink(
        Broker.parse(url), client_id=f"{config.gateway_id}-ack", timeout=10
    ) as link:
        await link.subscribe([(f"{config.topic_root}/gw/{config.gateway_id}/readings", 1)])
        ready.set()
        async for message in link.iter_messages():
            # Only the ids: the stand-in must not eat the CPU the gateway is measured on
            # (ingest's own cost is bench/ingest.py's business).
            ids = [r["id"] for r in json.loads(message.payload)["readings"]]
            await link.publish(
                ack_topic(config.topic_root, config.gateway_id),
                encode_ack(config.gateway_id, ids),
            )


async def measure_throughput(root: Path, url: str) -> float:
    config = base_config(root, url)
    async with Outbox(config.outbox) as outbox:
        gateway = Gateway(config, outbox)
        ready = asyncio.Event()
        ack_task = asyncio.create_task(acker(url, config, ready))
        await ready.wait()
        central = asyncio.create_task(gateway.central_loop())
        await gateway.central_up.wait()
        started = time.perf_counter()

        async def writer(n: int) -> None:
            for _ in range(n // 20):
                await outbox.add([entry() for _ in range(20)])

        await asyncio.gather(*(writer(READINGS // 8) for _ in range(8)))
        async with asyncio.timeout(120):
            while outbox.depth:  # noqa: ASYNC110 - polling the depth is the measurement
                await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        central.cancel()
        ack_task.cancel()
        for task in (central, ack_task):
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return READINGS / elapsed


def _quiet_dbus_teardown(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """bleak's per-connection D-Bus readers end with EOFError when the private bus goes away
    at the end of the run; that is teardown, not a result. Everything else is reported."""
    if isinstance(context.get("exception"), EOFError):
        return
    loop.default_exception_handler(context)


async def main() -> None:
    asyncio.get_running_loop().set_exception_handler(_quiet_dbus_teardown)
    url, broker = broker_url()
    try:
        with tempfile.TemporaryDirectory(prefix="daon-bench-gw-") as tmp:
            root = Path(tmp)
            throughput = await measure_throughput(root, url)
            overhead_ms, own_ms = await measure_session_overhead(root, url)
            rss_mb, peak_mb, sessions = await measure_rss(root, url)
    finally:
        if broker is not None:
            broker.stop()
    print(f"resident set size, 20 devices   {rss_mb:8.1f} MB", end="")
    print(f" (peak {peak_mb:.1f} MB, {sessions} sessions)")
    print(f"  ratio to the {RSS_AIM_MB:.0f} MB aim        {rss_mb / RSS_AIM_MB:8.2f}")
    print(f"session overhead, one BP cuff    {overhead_ms:8.1f} ms", end="")
    print(f" beyond the device's own {own_ms:.0f} ms")
    print(f"outbox written + forwarded       {throughput:8.0f} readings/s")
    print(f"  ratio to the {THROUGHPUT_AIM:,.0f}/s aim       {throughput / THROUGHPUT_AIM:8.2f}")
    print(
        json.dumps(
            {
                "rss_mb": round(rss_mb, 1),
                "rss_peak_mb": round(peak_mb, 1),
                "rss_ratio_to_aim": round(rss_mb / RSS_AIM_MB, 3),
                "session_overhead_ms": round(overhead_ms, 1),
                "session_device_ms": round(own_ms, 1),
                "outbox_readings_per_s": round(throughput),
                "outbox_ratio_to_aim": round(throughput / THROUGHPUT_AIM, 3),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
