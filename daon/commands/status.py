"""``daon status``: schema version, backend, and counts of what needs attention."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from daon.embedded import EmbeddedError
from daon.logsetup import configure_logging
from daon.runtime import endpoints
from daon.settings import SettingsError, load_settings
from ingest import store

_LABELS = {
    "observations": "stored observations (저장된 측정값)",
    "open_flags": "open flags (미처리 위험 알림)",
    "unbound_readings": "unbound readings (미배정 측정값)",
    "dead_letters": "dead letters (처리 불가 메시지)",
}


def add_parser(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(
        name,
        help=help_text,
        description="Report the schema version, the storage backend and counts of stored "
        "observations, open flags, unbound readings and dead letters. With no configuration "
        "it looks at the demo's embedded database.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


async def _read(url: str) -> store.Status:
    async with store.connection(url) as conn:
        return await store.read_status(conn)


def run(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    try:
        settings = load_settings(args.config)
        with endpoints(settings, need_mqtt=False) as ep:
            status = asyncio.run(_read(ep.database_url))
            where = store.redact_url(ep.database_url)
    except (SettingsError, EmbeddedError, store.StoreError) as exc:
        print(f"daon status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"database": where, **status.as_dict()}, ensure_ascii=False))
        return 0
    print(f"database        {where}")
    print(f"backend         {status.backend_version}")
    print(f"schema version  {status.schema_version}")
    for key, label in _LABELS.items():
        value = status.counts.get(key)
        print(f"{label:<40} {'(not set up yet)' if value is None else value}")
    return 0
