"""``daon demo``: run the whole service on embedded defaults (what ``make demo`` runs)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from daon.embedded import EmbeddedError
from daon.logsetup import configure_logging
from daon.settings import SettingsError, load_settings
from ingest import store

DESCRIPTION = """\
다온 전체 서비스를 한 번에 실행합니다 (데이터베이스, 브로커, 가상 기기, 게이트웨이, 웹).
Run everything on one machine: a private PostgreSQL and Mosquitto (or DAON_DATABASE_URL /
DAON_MQTT_URL), the virtual BLE devices and MQTT kiosks of 약수동, 황학동 and 필동, a gateway
per centre, ingest, the clinical runner and the web application. Prints the address and the
demo logins; Ctrl-C stops it; the data is kept for the next run."""


def add_parser(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(
        name,
        help=help_text,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    from daon.demo import ApiDidNotStart, main

    try:
        return main(load_settings(args.config))
    except (SettingsError, EmbeddedError, store.StoreError, ApiDidNotStart) as exc:
        print(f"daon demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
