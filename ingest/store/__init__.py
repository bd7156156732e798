"""The storage layer: the only SQL in the system, shared by ingest, the clinical runner and the api.

Modules by concern; import the names from here (``from ingest import store``). Functions take
an ``AsyncConnection`` (or pool) and plain values, and return plain values.
"""

from ingest.store import clinical as clinical
from ingest.store.db import (
    LeaderPool,
    connect,
    connection,
    connection_lost,
    open_pool,
    redact_url,
    retry_delays,
)
from ingest.store.errors import MigrationError, StoreError, StoreUnavailable
from ingest.store.migrate import MigrationReport, current_version, discover, migrate
from ingest.store.status import Replication, Standby, Status, read_replication, read_status

__all__ = [
    "LeaderPool",
    "MigrationError",
    "MigrationReport",
    "Replication",
    "Standby",
    "Status",
    "StoreError",
    "StoreUnavailable",
    "connect",
    "connection",
    "connection_lost",
    "current_version",
    "discover",
    "migrate",
    "open_pool",
    "read_replication",
    "read_status",
    "redact_url",
    "retry_delays",
]
