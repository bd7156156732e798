"""Dead letters: what could not be decoded, bound or mapped, kept with its raw bytes and a reason.

Idempotent on the letter's digest (topic, gateway, reading id and bytes): a redelivery after a
crash, or a gateway resending the same bad reading, increments ``occurrences`` rather than
adding a row, so the count staff see is the count of distinct problems.

:func:`replay_dead_letter` runs a letter through the consumer's path again once the cause is
fixed (an unknown gateway, device or resident registered).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from ingest.pipeline import DeadLetter
from ingest.store.errors import StoreError

Conn = AsyncConnection[Any]


def _text(value: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL; a dead letter must always be writable (raw keeps all)
    return None if value is None else value.replace("\x00", "\\x00")


async def insert_dead_letters(conn: Conn, letters: Sequence[DeadLetter]) -> int:
    """Store (or count again) the letters; call inside the batch's transaction."""
    if not letters:
        return 0
    rows = [
        (
            d.digest,
            _text(d.topic),
            _text(d.gateway_id),
            _text(d.reading_id),
            _text(d.device_id),
            d.reason.value,
            d.error_class,
            _text(d.detail),
            d.raw,
        )
        for d in letters
    ]
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO dead_letter AS dl (digest, topic, gateway_id, reading_id, device_id, "
            "reason, error_class, detail, raw) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (digest) DO UPDATE SET occurrences = dl.occurrences + 1, "
            "last_seen_at = now()",
            rows,
        )
    return len(rows)


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    id: int
    received_at: datetime
    last_seen_at: datetime
    occurrences: int
    topic: str | None
    gateway_id: str | None
    reading_id: str | None
    device_id: str | None
    reason: str
    error_class: str | None
    detail: str
    raw: bytes
    state: str

    @property
    def raw_text(self) -> str:
        """The raw bytes as text for staff (invalid UTF-8 shown with replacement marks)."""
        return self.raw.decode("utf-8", errors="replace")


async def list_dead_letters(
    conn: Conn, *, state: str | None = "new", gateway_id: str | None = None, limit: int = 100
) -> list[DeadLetterRow]:
    cur = await conn.execute(
        "SELECT id, received_at, last_seen_at, occurrences, topic, gateway_id, reading_id, "
        "device_id, reason, error_class, detail, raw, state FROM dead_letter "
        "WHERE (%s::text IS NULL OR state = %s) AND (%s::text IS NULL OR gateway_id = %s) "
        "ORDER BY received_at DESC, id DESC LIMIT %s",
        (state, state, gateway_id, gateway_id, limit),
    )
    return [DeadLetterRow(*row) for row in await cur.fetchall()]


async def counts_by_reason(conn: Conn) -> dict[str, int]:
    cur = await conn.execute(
        "SELECT reason, count(*) FROM dead_letter WHERE state = 'new' GROUP BY reason"
    )
    return {str(r[0]): int(r[1]) for r in await cur.fetchall()}


async def dismiss_dead_letter(conn: Conn, letter_id: int, by_user: str) -> bool:
    """Mark a letter handled (kept for audit); False when there is no such new letter."""
    cur = await conn.execute(
        "UPDATE dead_letter SET state = 'dismissed', resolved_by = %s, resolved_at = now() "
        "WHERE id = %s AND state = 'new'",
        (by_user, letter_id),
    )
    return cur.rowcount == 1


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What replaying a dead letter did; ``still`` is the reason when it failed again."""

    observations: int
    unbound: int
    duplicates: int
    still: str | None


class ReplayConflict(StoreError):
    """The letter does not exist or is not ``new``."""


async def replay_dead_letter(conn: Conn, letter_id: int, by_user: str) -> ReplayResult:
    """Run a dead letter through the consumer's path again (after registering the unknown
    gateway, device or resident it named). Marked ``replayed`` unless it fails the same way.

    Each call is one transaction (a savepoint if the caller has one open).
    """
    from devices.errors import WireError
    from devices.wire import reading_from_json
    from ingest.pipeline import MessageOutcome, process_message, process_reading
    from ingest.store.observations import write_outcomes
    from ingest.store.registry import load_registry

    async with conn.transaction():
        cur = await conn.execute(
            "SELECT topic, gateway_id, reading_id, raw, state, digest FROM dead_letter "
            "WHERE id = %s FOR UPDATE",
            (letter_id,),
        )
        row = await cur.fetchone()
        if row is None or row[4] != "new":
            raise ReplayConflict(f"dead letter {letter_id} is not a new dead letter")
        topic, gateway_id, reading_id, raw, _, digest = row
        registry = await load_registry(conn)
        if reading_id is None:
            outcome = process_message(topic or "", bytes(raw), registry)
        else:
            outcome = MessageOutcome(topic=topic or "", gateway_id=gateway_id, received=1)
            try:
                reading = reading_from_json(json.loads(bytes(raw)))
            except (ValueError, WireError) as exc:
                return ReplayResult(0, 0, 0, f"unreadable: {exc}")
            gateway = registry.gateway(gateway_id or "")
            outcome.readings.append(
                process_reading(
                    reading,
                    gateway_id or "",
                    gateway.centre_id if gateway else None,
                    registry,
                    mode=gateway.mode if gateway else "station",
                )
            )
        again = list(outcome.dead) + [r.dead for r in outcome.readings if r.dead]
        if any(d.digest == digest for d in again):
            return ReplayResult(0, 0, 0, again[0].reason.value)
        result = await write_outcomes(conn, [outcome], worker=f"replay:{by_user}")
        await conn.execute(
            "UPDATE dead_letter SET state = 'replayed', resolved_by = %s, resolved_at = now() "
            "WHERE id = %s",
            (by_user, letter_id),
        )
    return ReplayResult(
        result.observations, result.total("unbound"), result.total("duplicate"), None
    )
