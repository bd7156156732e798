"""The ``daon`` command line: one entry point, a subcommand per service and tool.

Subcommand modules live in :mod:`daon.commands` and are imported lazily, so ``daon decode``
does not pay for FastAPI and ``daon --help`` works even when an optional part is broken.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: (subcommand, module under daon.commands, one-line help). Order is the --help order.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("demo", "demo", "run the whole service on embedded defaults (데모 실행)"),
    ("gateway", "gateway", "run a centre's edge gateway (BLE + MQTT devices, store-and-forward)"),
    ("ingest", "ingest", "run the central ingest worker (MQTT → FHIR → database)"),
    ("clinical", "clinical", "run the clinical risk runner (flags, tasks, visiting groups)"),
    ("api", "api", "run the web application and FHIR API"),
    ("deliver", "deliver", "deliver alerts to FHIR Subscription rest-hook receivers"),
    ("db", "db", "database administration (migrate)"),
    ("status", "status", "show schema version, backend and counts"),
    ("decode", "decode", "decode a Bluetooth health characteristic value"),
    ("fhir", "fhir", "preview the FHIR resources stored for a device reading"),
    ("assess", "assess", "run the risk engine on one resident's history"),
    ("simulate", "simulate", "run virtual devices, stations and the synthetic population"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="daon",
        description="Daon: U-health device integration and chronic-disease monitoring (행복다온).",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML settings file (default: $DAON_CONFIG, else none); env vars override it",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, help_text in COMMANDS:
        try:
            module = importlib.import_module(f"daon.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"daon.commands.{module_name}":
                raise
            continue  # the capability has not landed yet
        module.add_parser(sub, name, help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    result: int = handler(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
