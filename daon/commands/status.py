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
    "open_flags": "open flags on worklists (작업 목록의 위험 알림)",
    "info_flags": "  information only, on no worklist (참고 알림)",
    "unbound_readings": "unbound readings (미배정 측정값)",
    "dead_letters": "dead letters (처리 불가 메시지; /admin/dead-letters)",
    "conflicting_duplicates": "  of which conflicting duplicates (값이 다른 중복)",
}


def add_parser(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(
        name,
        help=help_text,
        description="Report the schema version, the storage backend and counts of stored "
        "observations, open flags, unbound readings and dead letters (with the conflicting "
        "duplicates among them). With no configuration it looks at the demo's embedded "
        "database while the demo runs (it never starts or stops it).",
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
        with endpoints(settings, need_mqtt=False, read_only=True) as ep:
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
    for line in _replication_lines(status.replication):
        print(line)
    return 0


def _replication_lines(rep: store.Replication | None) -> list[str]:
    """Replica lag for an operator: one line per standby, or this standby's replay age."""
    if rep is None:
        return []
    if rep.in_recovery:
        age = "?" if rep.replay_age_s is None else f"{rep.replay_age_s:.1f} s"
        return [f"replication     standby (read-only); last replayed transaction {age} ago"]
    if not rep.standbys:
        return ["replication     none (a single server)"]
    lines = []
    for sb in rep.standbys:
        lag = "?" if sb.lag_bytes is None else f"{sb.lag_bytes} bytes"
        secs = "" if sb.replay_lag_s is None else f", {sb.replay_lag_s:.3f} s"
        lines.append(f"replica         {sb.name} {sb.state} {sb.sync_state}: lag {lag}{secs}")
    return lines
