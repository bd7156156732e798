"""``daon gateway``: run a centre's edge gateway, or show its outbox (``daon gateway status``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from daon.embedded import EmbeddedError, shared
from daon.logsetup import configure_logging
from daon.runtime import demo_account_url, demo_broker
from daon.settings import Settings, SettingsError, load_settings
from gateway.config import GatewayConfig, config_from_mapping
from gateway.errors import ConfigError, GatewayError
from gateway.outbox import Outbox, OutboxStatus
from gateway.service import run as run_gateway

DESCRIPTION = """\
센터 게이트웨이: 측정기(BLE, MQTT 키오스크)의 측정값을 주민에게 연결하고
중앙으로 안전하게 보냅니다.
A U-health centre's edge gateway: reads the registered BLE devices (bleak on BlueZ) and the
station kiosks on the local broker, binds readings to residents checked in at a station (or
through the registry for personal devices), keeps every reading in a local SQLite outbox and
forwards it to the central broker until ingest confirms it is stored. The configuration is
the [gateway] table of the settings file (docs/gateway.toml.example) or --gateway-config.

  daon gateway                 run (SIGTERM/Ctrl-C stop it cleanly)
  daon gateway status          queue depth, oldest unsent, devices (battery, clock offset)"""


def add_parser(sub: Any, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=("run", "status"),
        default="run",
        help="run the gateway (default) or show its outbox status",
    )
    p.add_argument(
        "--gateway-config",
        metavar="FILE",
        help="a TOML file holding the [gateway] table (default: the settings file's)",
    )
    p.add_argument("--json", action="store_true", help="status as one JSON object")
    p.set_defaults(handler=run)


def load_table(settings: Settings, path: str | None) -> dict[str, Any]:
    """The [gateway] table: from --gateway-config (whole file or its [gateway]) or settings."""
    if path is None:
        return dict(settings.gateway)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("--gateway-config", f"{path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--gateway-config", f"{path} is not valid TOML: {exc}") from None
    table = data.get("gateway", data)
    if not isinstance(table, dict):
        raise ConfigError("gateway", "must be a table")
    return table


def build_config(
    settings: Settings, table: dict[str, Any], *, broker_url: str | None
) -> GatewayConfig:
    """The gateway config from the settings (``daon demo`` builds its centres' with this)."""
    if not table:
        raise ConfigError("gateway", "no [gateway] table: see docs/gateway.toml.example")
    return config_from_mapping(
        table,
        topic_root=settings.topic_root,
        default_broker_url=broker_url,
        state_dir=settings.state_dir,
    )


def demo_tables(
    world: Any | None = None,
    *,
    scale_slots: Mapping[str, Sequence[tuple[int, int, str]]] | None = None,
    ble: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One ``[gateway]`` table per demo centre (``daon demo`` runs a gateway for each).

    ``world`` is ``simulators.demo_data.demo_world()``; ``scale_slots`` maps a body-composition
    scale's device id to its (user index, consent code, resident) slots, as
    ``simulators.peripherals.demo.DemoFleet.scale_slots`` lists them; ``ble`` overrides the
    BLE timings (all centres share one virtual adapter in the demo).
    """
    from simulators.demo_data import demo_world

    world = world or demo_world()
    slots = scale_slots or {}
    tables = []
    for centre in world.centres:
        devices: list[dict[str, Any]] = []
        for station in centre.stations:
            for device in station.devices:
                entry: dict[str, Any] = {
                    "address": device.address,
                    "model": device.model,
                    "id": device.id,
                    "station": station.id,
                }
                if device.calibration:
                    entry["calibration"] = device.calibration
                users = slots.get(device.id, ())
                if users:
                    entry["users"] = [
                        {"index": index, "resident": resident, "consent_code": code}
                        for index, code, resident in users
                    ]
                devices.append(entry)
            for kiosk in station.kiosk:
                devices.append({"model": kiosk.model, "id": kiosk.id, "station": station.id})
        for device in world.home_devices:
            if device.centre != centre.id or device.owner is None:
                continue
            entry = {"address": device.address, "model": device.model, "id": device.id}
            entry["owner"] = device.owner
            if device.calibration:
                entry["calibration"] = device.calibration
            devices.append(entry)
        tables.append(
            {
                "centre": centre.id,
                "id": f"{centre.id}-gw-1",
                "stations": [{"id": s.id, "name": s.name} for s in centre.stations],
                "devices": devices,
                "cards": {r.card_number: r.id for r in world.residents_of(centre.id)},
                "ble": dict(ble or {"rescan_s": 2.0, "cooldown_s": 20.0, "settle_s": 0.1}),
            }
        )
    return tables


@contextlib.contextmanager
def _broker_url(settings: Settings, table: dict[str, Any]) -> Iterator[str | None]:
    """DAON_MQTT_URL, else the demo's embedded broker (shared with the other daon commands)."""
    if settings.mqtt_url or "central" in table:
        yield settings.mqtt_url
        return
    broker = demo_broker(settings)
    with shared(broker, may_start=True):
        yield demo_account_url(settings, str(table.get("id", "")))


def run(args: argparse.Namespace) -> int:
    configure_logging(max(args.verbose, 0 if args.action == "status" else 1))
    try:
        settings = load_settings(args.config)
        table = load_table(settings, args.gateway_config)
        if args.action == "status":
            config = build_config(settings, table, broker_url=settings.mqtt_url or "mqtt://-")
            status = asyncio.run(_status(config))
            _print_status(config, status, as_json=args.json)
            return 0
        with _broker_url(settings, table) as broker_url:
            config = build_config(settings, table, broker_url=broker_url)
            asyncio.run(run_gateway(config))
    except (SettingsError, GatewayError, EmbeddedError) as exc:
        print(f"daon gateway: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


async def _status(config: GatewayConfig) -> OutboxStatus:
    async with Outbox(config.outbox, readonly=True) as box:
        return await box.status()


def _when(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).astimezone().isoformat(timespec="seconds")


def _ago(ts: float | None) -> str:
    if ts is None:
        return "-"
    seconds = max(0, int(time.time() - ts))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def _print_status(config: GatewayConfig, status: OutboxStatus, *, as_json: bool) -> None:
    names = {d.id: d for d in config.devices}
    if as_json:
        print(
            json.dumps(
                {
                    "gateway": config.gateway_id,
                    "centre": config.centre,
                    "outbox": str(config.outbox.path),
                    "queue_depth": status.queued,
                    "unsent": status.unsent,
                    "in_flight": status.in_flight,
                    "oldest_unacked_at": _when(status.oldest_unacked_at),
                    "dead_letters": status.dead_letters,
                    "counters": status.counters,
                    "devices": [
                        {
                            "id": d.device_id,
                            "address": d.address,
                            "model": d.model,
                            "last_seen_at": _when(d.last_seen_at),
                            "last_reading_at": _when(d.last_reading_at),
                            "battery_pct": d.battery_pct,
                            "clock_offset_s": d.clock_offset_s,
                            "clock_trusted": d.clock_trusted,
                            "last_sequence": d.last_sequence,
                            "last_error": d.last_error or None,
                        }
                        for d in status.devices
                    ],
                },
                ensure_ascii=False,
            )
        )
        return
    print(f"gateway {config.gateway_id} ({config.centre}), outbox {config.outbox.path}")
    print(f"대기 중 (queue depth)            {status.queued}")
    print(f"  미전송 (never sent)            {status.unsent}")
    print(f"  확인 대기 (waiting for ack)    {status.in_flight}")
    oldest = status.oldest_unacked_at
    print(f"가장 오래된 미확인 (oldest)       {_when(oldest) or '-'} ({_ago(oldest)})")
    print(f"처리 불가 (dead letters)         {status.dead_letters}")
    if status.counters:
        print("counters: " + ", ".join(f"{k}={v}" for k, v in sorted(status.counters.items())))
    print()
    print(
        f"{'device':<22} {'model':<20} {'last seen':>12} {'last reading':>14} "
        f"{'battery':>8} {'clock offset':>13}"
    )
    for d in status.devices:
        registered = names.get(d.device_id)
        model = d.model or (registered.model if registered else "") or ""
        battery = f"{d.battery_pct} %" if d.battery_pct is not None else "-"
        if d.clock_offset_s is None:
            offset = "-"
        else:
            offset = f"{d.clock_offset_s:+.0f} s" + ("" if d.clock_trusted else " (!)")
        print(
            f"{d.device_id:<22} {model[:20]:<20} {_ago(d.last_seen_at):>12} "
            f"{_ago(d.last_reading_at):>14} {battery:>8} {offset:>13}"
        )
        if d.last_error:
            print(f"  last error: {d.last_error}")
