"""``daon ingest``: run the central ingest worker (MQTT → FHIR → database)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from dataclasses import replace
from typing import Any

from daon.brokerauth import INGEST_USER
from daon.embedded import EmbeddedError
from daon.logsetup import configure_logging
from daon.runtime import endpoints
from daon.settings import Settings, SettingsError, load_settings
from ingest import store
from ingest.config import ConfigError, IngestConfig, config_from
from ingest.service import run as run_service
from ingest.store.observations import read_counters

DESCRIPTION = """\
게이트웨이의 측정값을 받아 FHIR Observation으로 저장합니다.
Take the gateways' reading batches off the central broker ({root}/gw/+/readings, QoS 1,
persistent session kept across broker restarts), store them as FHIR Observations exactly
once, and acknowledge each batch to its gateway after the commit. Several workers share the
load with the same --share-group and distinct --client-id ($share/{group}/..., which
Mosquitto 2.0 does not keep across its restart: see ingest/config.py). Broker or database
outages pause the worker; it resumes by itself. With no DAON_DATABASE_URL / DAON_MQTT_URL it
uses the demo's embedded servers."""


def add_parser(sub: Any, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--client-id",
        metavar="ID",
        help="this worker's MQTT client id, stable across restarts (default from [ingest])",
    )
    p.add_argument(
        "--share-group",
        metavar="NAME",
        help="share the readings with the other workers of this group (default: one worker)",
    )
    p.add_argument(
        "--counters",
        action="store_true",
        help="print the per-gateway counters as JSON and exit",
    )
    p.set_defaults(handler=run)


def build_config(settings: Settings, database_url: str, mqtt_url: str) -> IngestConfig:
    """The ingest config from the settings (used by ``daon demo`` too)."""
    return config_from(
        database_url, mqtt_url, topic_root=settings.topic_root, table=settings.ingest
    )


async def _serve(config: IngestConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await run_service(config, stop=stop)


async def _counters(url: str) -> dict[str, dict[str, Any]]:
    async with store.connection(url) as conn:
        return await read_counters(conn)


def run(args: argparse.Namespace) -> int:
    configure_logging(max(args.verbose, 1))
    try:
        settings = load_settings(args.config)
        with endpoints(settings, need_mqtt=not args.counters, account=INGEST_USER) as ep:
            if args.counters:
                counters = asyncio.run(_counters(ep.database_url))
                sys.stdout.write(json.dumps(counters, default=str, ensure_ascii=False) + "\n")
                return 0
            assert ep.mqtt_url is not None
            config = build_config(settings, ep.database_url, ep.mqtt_url)
            if args.client_id:
                config = replace(config, client_id=args.client_id)
            if args.share_group:
                config = replace(config, share_group=args.share_group)
            asyncio.run(_serve(config))
    except (SettingsError, EmbeddedError, ConfigError, store.StoreError) as exc:
        sys.stderr.write(f"daon ingest: {exc}\n")
        return 1
    return 0
