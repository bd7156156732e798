"""``daon simulate ble``: the virtual BlueZ with the demo's health devices, until Ctrl-C.

Starts a private dbus-daemon (or uses ``--bus``), owns org.bluez on it with the devices of
the demo's three centres (약수동 yaksu, 황학동 hwanghak, 필동 pil: a cuff, a glucose meter, a
scale and a body-composition scale each, plus residents' home devices), prints the address to
export as ``DBUS_SYSTEM_BUS_ADDRESS`` and lets residents measure every ``--interval`` seconds.
``daon/commands/simulate.py`` calls :func:`add_arguments` and :func:`run`.
"""

# ruff: noqa: T201  (a command's job is to print)

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from typing import Any

from simulators.bluez import BusUnavailable, PrivateBus, ServiceError, Timing, virtual_bluez
from simulators.peripherals.demo import DemoFleet, build_fleet

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--centre",
        action="append",
        dest="centres",
        metavar="ID",
        help="centre id (yaksu, hwanghak, pil); repeat for several (default: all three)",
    )
    parser.add_argument(
        "--no-home",
        dest="home",
        action="store_false",
        help="leave out the residents' home devices (가정용 기기 제외)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=20.0,
        help="mean seconds between measurements over all devices; 0 = none (default 20)",
    )
    parser.add_argument("--seed", type=int, default=2014, help="random seed (default 2014)")
    parser.add_argument(
        "--adapters", type=int, default=1, help="number of adapters hci0.. (default 1)"
    )
    parser.add_argument(
        "--bus", metavar="ADDRESS", default=None, help="use this D-Bus instead of starting one"
    )
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument(
        "--fast", action="store_true", help="test timings (no simulated radio latency)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object when ready")


def run(args: argparse.Namespace) -> int:
    """Run until Ctrl-C (or ``--duration``); 0 on a clean stop, 1 when it cannot start."""
    if getattr(args, "verbose", 0):
        logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else logging.INFO)
    if not 1 <= args.adapters <= 16:
        print("daon simulate ble: --adapters must be 1..16", file=sys.stderr)
        return 2
    try:
        fleet = build_fleet(
            args.centres,
            home=args.home,
            seed=args.seed,
            timing=Timing.fast() if args.fast else None,
        )
    except ValueError as exc:
        print(f"daon simulate ble: {exc}", file=sys.stderr)
        return 2
    bus: PrivateBus | None = None
    address = args.bus
    if address is None:
        try:
            bus = PrivateBus(detach=True).start()
        except BusUnavailable as exc:
            print(f"가상 블루투스를 시작할 수 없습니다 / cannot start: {exc}", file=sys.stderr)
            return 1
        address = bus.address
    try:
        return asyncio.run(_serve(args, address, bus, fleet))
    except KeyboardInterrupt:
        return 0
    finally:
        if bus is not None:
            bus.stop()


async def _serve(
    args: argparse.Namespace, address: str, bus: PrivateBus | None, fleet: DemoFleet
) -> int:
    adapters = tuple(f"hci{i}" for i in range(args.adapters))
    try:
        service = virtual_bluez(address, adapters=adapters)
        async with service as bluez:
            fleet.add_to(bluez)
            _announce(args, address, bus, fleet)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
            activity = asyncio.create_task(fleet.activity(args.interval, stop))
            try:
                if args.duration is None:
                    await stop.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(args.duration):
                            await stop.wait()
            finally:
                stop.set()
                await activity
            print(
                f"가상 블루투스 종료 / stopped after {fleet.measurements} measurements",
                flush=True,
            )
    except ServiceError as exc:
        print(f"가상 블루투스를 시작할 수 없습니다 / cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def _announce(
    args: argparse.Namespace, address: str, bus: PrivateBus | None, fleet: DemoFleet
) -> None:
    devices: list[dict[str, Any]] = []
    for device in fleet.devices:
        source = fleet.sources[device.address]
        entry: dict[str, Any] = {
            "address": device.address,
            "name": device.name,
            "role": source.role,
            "manufacturer": source.manufacturer,
            "model": source.model,
            "centre": source.centre,
            "station": source.station,
            "owner": source.owner,
        }
        slots = fleet.scale_slots.get(device.address)
        if slots:
            entry["users"] = [
                {"index": s.user_index, "consent_code": s.consent_code, "resident": s.resident}
                for s in slots
            ]
        devices.append(entry)
    if args.json:
        ready = {
            "bus": address,
            "bin_dir": str(bus.bin_dir) if bus is not None else None,
            "adapters": args.adapters,
            "devices": devices,
        }
        print(json.dumps(ready, ensure_ascii=False), flush=True)
        return
    print("가상 블루투스(BlueZ) 실행 중 / virtual BlueZ running", flush=True)
    print(f"export DBUS_SYSTEM_BUS_ADDRESS='{address}'")
    if bus is not None:
        print(f'export PATH="{bus.bin_dir}:$PATH"   # bluetoothctl 5.72 for bleak\'s check')
    for entry in devices:
        where = entry["station"] or f"home of {entry['owner']}"
        print(
            f"  {entry['centre']:<9} {where:<20} {entry['role']:<17} {entry['address']}  "
            f"{entry['name']}"
        )
        for user in entry.get("users", ()):
            print(
                f"      user {user['index']}: consent {user['consent_code']:04d} "
                f"→ {user['resident']}"
            )
    print(f"측정 간격 / measuring every ~{args.interval:g} s; Ctrl-C to stop", flush=True)
