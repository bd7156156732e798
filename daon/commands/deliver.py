"""``daon deliver``: deliver notify events to FHIR Subscription rest-hook receivers."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import sys
from datetime import timedelta
from typing import Any

from api.delivery import Deliverer, DeliveryConfig
from daon.embedded import EmbeddedError
from daon.logsetup import configure_logging
from daon.runtime import endpoints
from daon.settings import Settings, SettingsError, load_settings
from ingest import store

DESCRIPTION = """\
위험 알림(notify 이벤트)을 FHIR Subscription rest-hook 수신처(구 문자·알림톡 중계, 다른
보건 시스템)에 최소 한 번 전달합니다.
Deliver every notify event (raise, re-raise, escalation, welfare check) to each matching FHIR
Subscription's rest-hook endpoint at least once, with an Idempotency-Key header; retries with
capped exponential backoff per receiver, records every attempt, marks failing receivers (see
/admin/delivery). One deliverer per database is active; a second one waits as a standby.
Settings: the [delivery] table of the TOML file (batch, per_receiver, concurrency,
connect_timeout, read_timeout, total_timeout, poll)."""


def add_parser(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(
        name,
        help=help_text,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--issue-token",
        metavar="USER_ID",
        help="print a new bearer token (valid 365 days) for this existing user with the "
        "system/Subscription.* scope, for a relay that manages its own subscription, and exit",
    )
    parser.set_defaults(handler=run)


async def _issue_token(database_url: str, user_id: str) -> str:
    from api.store import access

    async with store.connection(database_url) as conn:
        if await access.load_actor(conn, user_id) is None:
            raise ValueError(f"no active user {user_id!r}")
        new = await access.create_token(
            conn,
            user_id,
            "subscription relay",
            lifetime=timedelta(days=365),
            scopes=["system/Subscription.*"],
        )
        await conn.commit()
    return new.token


def build_config(settings: Settings, database_url: str) -> DeliveryConfig:
    """The delivering service's config from the settings (used by ``daon demo`` too)."""
    known = {f.name for f in dataclasses.fields(DeliveryConfig)} - {"database_url"}
    unknown = set(settings.delivery) - known
    if unknown:
        raise SettingsError(f"[delivery] has unknown keys: {', '.join(sorted(unknown))}")
    return DeliveryConfig(database_url, **settings.delivery)


async def _serve(config: DeliveryConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await Deliverer(config).run(stop)


def run(args: argparse.Namespace) -> int:
    configure_logging(max(args.verbose, 1))
    try:
        settings = load_settings(args.config)
        with endpoints(settings, need_mqtt=False) as ep:
            if args.issue_token:
                print(asyncio.run(_issue_token(ep.database_url, args.issue_token)))
                return 0
            asyncio.run(_serve(build_config(settings, ep.database_url)))
    except (SettingsError, EmbeddedError, store.StoreError, ValueError, TypeError) as exc:
        print(f"daon deliver: {exc}", file=sys.stderr)
        return 1
    return 0
