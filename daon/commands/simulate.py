"""``daon simulate``: the synthetic population, MQTT measurement stations, and the virtual BlueZ.

Thin: parse arguments, call into :mod:`simulators`, print. Each part is imported lazily, so a
missing optional part (for example the virtual BlueZ) only fails its own subcommand.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any


def add_parser(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(
        name,
        help=help_text,
        description="Run the simulators: a synthetic Jung-gu population (합성 인구), MQTT "
        "measurement stations (측정 키오스크) and the virtual BlueZ with health devices.",
    )
    kinds = parser.add_subparsers(dest="simulation", metavar="SIMULATION")

    population = kinds.add_parser(
        "population",
        help="generate the synthetic population and print a summary (합성 인구 생성)",
        description="Generate the synthetic Jung-gu population (60,149 residents by default) "
        "with a year of readings, print a summary, and optionally write it out.",
    )
    population.add_argument("--seed", type=int, default=2014, help="random seed (default 2014)")
    population.add_argument(
        "--residents", type=int, default=None, help="number of residents (default: all 60,149)"
    )
    population.add_argument("--days", type=int, default=365, help="days of readings (default 365)")
    population.add_argument(
        "--end",
        type=dt.date.fromisoformat,
        default=None,
        help="last local date of readings, YYYY-MM-DD (default: today in Asia/Seoul)",
    )
    population.add_argument("--out", type=Path, default=None, help="write the tables to DIR")
    population.add_argument(
        "--format", choices=("npz", "csv"), default="npz", help="file format for --out"
    )
    population.add_argument("--json", action="store_true", help="print one JSON object")
    population.set_defaults(handler=run_population)

    stations = kinds.add_parser(
        "stations",
        help="run MQTT measurement stations (측정 키오스크) against a broker",
        description="Run the demo centres' measurement stations: residents check in with "
        "their card and measure; each station publishes check-in events and measurements on "
        "MQTT. --malformed-every N sends a deliberately broken message every N messages.",
    )
    stations.add_argument(
        "--mqtt", metavar="URL", default=None, help="broker URL (default: $DAON_MQTT_URL)"
    )
    stations.add_argument("--root", default=None, help="topic root (default: $DAON_TOPIC_ROOT)")
    stations.add_argument(
        "--centre",
        action="append",
        dest="centres",
        metavar="ID",
        help="centre id (yaksu, hwanghak, pil); repeat for several (default: all three)",
    )
    stations.add_argument(
        "--interval", type=float, default=5.0, help="mean seconds between visits (default 5)"
    )
    stations.add_argument(
        "--visits", type=int, default=None, help="stop after this many visits per station"
    )
    stations.add_argument(
        "--pace",
        type=float,
        default=0.1,
        help="speed of a visit: 1 = real time (a visit takes minutes), 0 = no pauses (default 0.1)",
    )
    stations.add_argument(
        "--malformed-every",
        type=int,
        default=0,
        metavar="N",
        help="replace every N-th message by a malformed one (default 0: never)",
    )
    stations.add_argument("--seed", type=int, default=2014)
    stations.set_defaults(handler=run_stations)

    # Its options belong to simulators.ble_cli, imported only when this subcommand runs, so
    # every other `daon` command stays free of D-Bus imports. Everything after `ble` (--help
    # included: no option prefix is recognised here) is handed to that module's own parser.
    ble = kinds.add_parser(
        "ble",
        help="run the virtual BlueZ with virtual health devices (가상 블루투스)",
        add_help=False,
        prefix_chars="\x00",
    )
    ble.add_argument("ble_args", nargs="*")
    ble.set_defaults(handler=run_ble)

    parser.set_defaults(handler=_usage_of(parser))


def _usage_of(parser: argparse.ArgumentParser) -> Any:
    def usage(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return usage


def run_ble(args: argparse.Namespace) -> int:
    try:
        ble_cli = importlib.import_module("simulators.ble_cli")
    except ImportError as exc:
        return _unavailable("ble", str(exc))
    parser = argparse.ArgumentParser(
        prog="daon simulate ble",
        description="Run a virtual org.bluez service with virtual health devices (가상 블루투스).",
    )
    ble_cli.add_arguments(parser)
    ble_args = parser.parse_args(args.ble_args)
    for key in ("config", "verbose"):  # the global options travel along
        if not hasattr(ble_args, key):
            setattr(ble_args, key, getattr(args, key, None))
    result: int = ble_cli.run(ble_args)
    return result


def _unavailable(what: str, reason: str) -> int:
    print(
        f"daon simulate {what}: 사용할 수 없습니다 / not available in this installation ({reason})",
        file=sys.stderr,
    )
    return 1


def run_population(args: argparse.Namespace) -> int:
    from simulators.population import generate
    from simulators.population_io import save, summary

    started = time.perf_counter()
    try:
        population = generate(args.seed, n_residents=args.residents, days=args.days, end=args.end)
    except ValueError as exc:
        print(f"daon simulate population: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    written: list[Path] = []
    if args.out is not None:
        try:
            written = save(population, args.out, args.format)
        except OSError as exc:
            print(f"daon simulate population: cannot write {args.out}: {exc}", file=sys.stderr)
            return 1
    if args.json:
        r = population.residents
        print(
            json.dumps(
                {
                    "seed": population.seed,
                    "start": population.start.isoformat(),
                    "end": population.end.isoformat(),
                    "residents": len(r),
                    "bp": len(population.bp),
                    "glucose": len(population.glucose),
                    "weight": len(population.weight),
                    "body_comp": len(population.body_comp),
                    "seconds": round(elapsed, 3),
                    "files": [str(p) for p in written],
                },
                ensure_ascii=False,
            )
        )
        return 0
    for line in summary(population):
        print(line)
    print(f"생성 시간 generated in: {elapsed:.1f} s")
    for path in written:
        print(f"저장 wrote: {path}")
    return 0


def run_stations(args: argparse.Namespace) -> int:
    try:
        stations = importlib.import_module("simulators.stations")
    except ImportError as exc:
        return _unavailable("stations", str(exc))
    from daon.logsetup import configure_logging
    from daon.runtime import DEMO_KIOSKS_USER, demo_broker_url
    from daon.settings import SettingsError, load_settings

    configure_logging(args.verbose)
    try:
        settings = load_settings(args.config)
        url = args.mqtt or settings.mqtt_url
        if not url:
            url = demo_broker_url(settings, DEMO_KIOSKS_USER)  # the demo's broker, when it runs
        if not url:
            raise SettingsError(
                "브로커가 없습니다 / no MQTT broker: pass --mqtt URL, set DAON_MQTT_URL, "
                "or start `daon demo`"
            )
        root = args.root or settings.topic_root
    except SettingsError as exc:
        print(f"daon simulate stations: {exc}", file=sys.stderr)
        return 2
    centres = tuple(args.centres or ())
    print(
        f"측정 키오스크 시작 / kiosks starting: {', '.join(centres) or 'yaksu, hwanghak, pil'} "
        f"→ {url} (root {root!r}); Ctrl-C to stop",
        flush=True,
    )
    try:
        stats = stations.run_sync(
            url,
            root=root,
            centres=centres,
            interval=args.interval,
            visits=args.visits,
            malformed_every=args.malformed_every,
            pace=args.pace,
            seed=args.seed,
        )
    except (stations.StationSimError, ValueError) as exc:
        print(f"daon simulate stations: {exc}", file=sys.stderr)
        return 1
    for station_stats in stats.values():
        print(
            f"{station_stats.station}: 방문 visits {station_stats.visits}, "
            f"메시지 messages {station_stats.messages} "
            f"(malformed {station_stats.malformed}, unknown cards {station_stats.unknown_cards})"
        )
    return 0
