"""Errors of the storage layer.

::

    StoreError                  base of everything raised by ingest.store
    ├── StoreUnavailable        cannot reach the database (message names the URL and what to do)
    └── MigrationError          a migration failed; the schema stays at the previous version
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of the storage layer's errors."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or refused us."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            f"cannot connect to the database at {url}: {reason}. "
            "Start PostgreSQL or set DAON_DATABASE_URL (see README, 'Configuration')."
        )


class MigrationError(StoreError):
    """A migration could not be applied; nothing of it was kept."""

    def __init__(self, version: int, name: str, reason: str) -> None:
        self.version = version
        self.name = name
        self.reason = reason
        super().__init__(
            f"migration {version:04d} {name} failed and was rolled back "
            f"(schema left at the previous version): {reason}"
        )
