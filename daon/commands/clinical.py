"""``daon clinical``: run the clinical risk runner (flags, tasks, visiting groups)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

from clinical.runner import RunnerConfig, config_from
from clinical.runner import run as run_runner
from daon.embedded import EmbeddedError
from daon.logsetup import configure_logging
from daon.runtime import endpoints
from daon.settings import Settings, SettingsError, load_settings
from ingest import store

DESCRIPTION = """\
새 측정값이 저장되면 위험 규칙을 평가해 알림과 후속 업무를 만듭니다.
Evaluate the guideline rules for every resident whose readings ingest has stored (LISTEN on
ingest's NOTIFY, plus a catch-up at start and periodic duties: escalation, no-data flags,
visiting groups), and save flags and follow-up tasks. With no DAON_DATABASE_URL it uses the
demo's embedded database. Settings: the [clinical] table of the TOML file."""


def add_parser(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(
        name,
        help=help_text,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=run)


def build_config(settings: Settings, database_url: str) -> RunnerConfig:
    """The runner config from the settings (used by ``daon demo`` too)."""
    return config_from(database_url, settings.clinical)


async def _serve(config: RunnerConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await run_runner(config, stop=stop)


def run(args: argparse.Namespace) -> int:
    configure_logging(max(args.verbose, 1))
    try:
        settings = load_settings(args.config)
        with endpoints(settings, need_mqtt=False) as ep:
            config = build_config(settings, ep.database_url)
            asyncio.run(_serve(config))
    except (SettingsError, EmbeddedError, store.StoreError, ValueError) as exc:
        print(f"daon clinical: {exc}", file=sys.stderr)
        return 1
    return 0
