"""Logging is configured once, here, by the command line (pure layers never log)."""

from __future__ import annotations

import logging


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # httpx logs every request at INFO: one line per alert notification is noise, not news
    # (the delivering service records every attempt in delivery_attempt).
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
