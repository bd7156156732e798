"""``daon db migrate``: apply the versioned migrations (idempotent)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from daon.embedded import EmbeddedError
from daon.logsetup import configure_logging
from daon.runtime import endpoints
from daon.settings import SettingsError, load_settings
from ingest import store


def add_parser(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text, description="Database administration.")
    db_sub = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    migrate = db_sub.add_parser(
        "migrate",
        help="apply pending migrations (a second run is a no-op)",
        description="Apply the pending schema migrations to DAON_DATABASE_URL "
        "(default: the demo's embedded database). Each migration is all-or-nothing.",
    )
    migrate.set_defaults(handler=run_migrate)


def run_migrate(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    try:
        settings = load_settings(args.config)
        with endpoints(settings, need_mqtt=False) as ep:
            report = asyncio.run(store.migrate(ep.database_url, timescaledb=settings.timescaledb))
    except (SettingsError, EmbeddedError, store.StoreError) as exc:
        print(f"daon db migrate: {exc}", file=sys.stderr)
        return 1
    if report.applied:
        applied = ", ".join(f"{v:04d}" for v in report.applied)
        print(
            f"applied {len(report.applied)} migration(s) ({applied}); "
            f"schema version {report.version} on {report.backend}"
        )
    else:
        print(f"schema is up to date (version {report.version} on {report.backend})")
    return 0
