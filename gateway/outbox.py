"""The durable local outbox: every reading is on disk before the device side is released.

Store-and-forward in the manner of Medplum's edge agent (fhir-mapping-and-anchors.md §3, M2),
reduced to what a centre gateway needs:

* A reading is written (SQLite, WAL, ``synchronous=FULL``: a committed reading survives a
  power cut) **before** the device side is released: before the RACP high-water mark moves,
  before a station message is acknowledged to the local broker, before the BLE session ends.
* It is published to the central broker in batches (QoS 1) and stays here, *in flight*, until
  ingest's acknowledgement for its id arrives on ``{root}/gw/{gateway}/ack``, which ingest sends
  only after its database commit (not when the broker accepted the message). No ack within
  ``resend_after_s`` → it is published again; ingest de-duplicates replays.
* Retention caps: at most ``max_readings`` waiting (policy ``refuse`` or ``drop_oldest``) and
  at most ``max_age_days`` old. Whatever the caps remove is counted in ``counter`` and reported
  by ``daon gateway status``; the caller logs it at ERROR. Nothing leaves silently.

All SQLite work runs on one worker thread (the connection is confined to it), so the event
loop never blocks on disk. Concurrent :meth:`Outbox.add` calls are committed together (group
commit): one fsync for everything that arrived while the previous commit was running.

Tables: ``reading`` (the queue), ``device_state`` (per device: last seen, last reading,
battery, clock offset, RACP high-water mark), ``dead_letter`` (what could not be decoded or
validated, raw hex and reason, kept for audit; it is also forwarded to ingest), ``counter``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final, TypeVar

from gateway.config import OutboxConfig, Overflow
from gateway.errors import OutboxError, OutboxFull

logger = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION: Final = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reading (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,      -- wire message id, stable across resends
    device_id  TEXT NOT NULL,
    created_at REAL NOT NULL,             -- gateway time written (unix s)
    sent_at    REAL NOT NULL DEFAULT 0,   -- last publish (unix s); 0 = never published
    attempts   INTEGER NOT NULL DEFAULT 0,
    body       TEXT NOT NULL              -- the wire reading (devices.wire JSON object)
);
CREATE INDEX IF NOT EXISTS reading_due ON reading (sent_at, seq);
CREATE INDEX IF NOT EXISTS reading_created ON reading (created_at);
CREATE TABLE IF NOT EXISTS device_state (
    device_id       TEXT PRIMARY KEY,
    address         TEXT,
    model           TEXT,
    firmware        TEXT,
    serial          TEXT,
    last_seen_at    REAL,                 -- last advert or message (unix s)
    last_session_at REAL,                 -- last completed transfer
    last_reading_at REAL,                 -- last reading written
    battery_pct     INTEGER,
    clock_offset_s  REAL,                 -- device − gateway at the last connection
    clock_trusted   INTEGER,
    clock_at        REAL,
    last_sequence   INTEGER,              -- glucose RACP high-water mark
    sequence_record TEXT,                 -- that record's 0x2A18 bytes, hex (tells a reset)
    last_error      TEXT
);
CREATE TABLE IF NOT EXISTS dead_letter (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         REAL NOT NULL,
    source     TEXT NOT NULL,             -- 'ble' | 'mqtt' | 'checkin'
    origin     TEXT NOT NULL,             -- BLE address or MQTT topic
    raw_hex    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    reading_id TEXT                       -- the wire reading that carried it to ingest, if any
);
CREATE INDEX IF NOT EXISTS dead_letter_at ON dead_letter (at);
CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

#: Counter names (``daon gateway status`` prints them).
WRITTEN = "written"
ACKED = "acknowledged"
PUBLISHED = "published"
REPUBLISHED = "republished"
REFUSED = "refused_full"
DROPPED = "dropped_full"
EXPIRED = "expired"
DEAD_LETTERS = "dead_letters"


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


_SHIFTS = tuple(range(125, -5, -5))

_ID_RANDOM = random.Random()
os.register_at_fork(after_in_child=_ID_RANDOM.seed)


def new_reading_id(now: float | None = None) -> str:
    """A ULID: 48-bit milliseconds + 80 random bits, Crockford base32, sortable by time.

    The random part comes from a private :class:`random.Random` (seeded from the OS, and
    re-seeded in a forked child): ids must be unique, not secret, and ``os.urandom`` per
    reading costs more than the rest of the outbox write. Private, so that minting ids never
    moves the global :mod:`random` state other code (or a test's property generator) relies on.
    """
    ms = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    value = (ms << 80) | _ID_RANDOM.getrandbits(80)
    return "".join([_CROCKFORD[(value >> shift) & 31] for shift in _SHIFTS])


@dataclass(frozen=True, slots=True)
class Entry:
    """One reading to store: its wire id, the device it came from, and its wire JSON text."""

    id: str
    device_id: str
    body: str


@dataclass(frozen=True, slots=True)
class DeviceUpdate:
    """Fields of ``device_state`` to set for one device; None leaves a field unchanged."""

    device_id: str
    address: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    last_seen_at: float | None = None
    last_session_at: float | None = None
    last_reading_at: float | None = None
    battery_pct: int | None = None
    clock_offset_s: float | None = None
    clock_trusted: bool | None = None
    clock_at: float | None = None
    last_sequence: int | None = None
    sequence_record: str | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Something that could not be decoded or validated, kept with its raw bytes and reason."""

    source: str
    origin: str
    raw_hex: str
    reason: str
    reading_id: str | None = None
    at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class DeviceState:
    device_id: str
    address: str | None
    model: str | None
    firmware: str | None
    serial: str | None
    last_seen_at: float | None
    last_session_at: float | None
    last_reading_at: float | None
    battery_pct: int | None
    clock_offset_s: float | None
    clock_trusted: bool | None
    clock_at: float | None
    last_sequence: int | None
    sequence_record: str | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Pending:
    """A reading taken for publishing: its id and wire JSON, and whether it is a resend."""

    id: str
    body: str
    resend: bool


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """What ``daon gateway status`` shows."""

    queued: int  # readings not yet acknowledged by ingest
    unsent: int  # never published
    in_flight: int  # published, waiting for the ack
    oldest_unacked_at: float | None  # unix s of the oldest waiting reading
    dead_letters: int
    counters: dict[str, int]
    devices: tuple[DeviceState, ...]


_DEVICE_COLUMNS: Final = tuple(f.name for f in fields(DeviceUpdate))


class Outbox:
    """The outbox on one SQLite file. Use ``async with Outbox(config) as outbox:``."""

    def __init__(self, config: OutboxConfig, *, readonly: bool = False) -> None:
        self.config = config
        self.readonly = readonly
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._count = 0
        self._pending: list[
            tuple[
                Sequence[Entry], Sequence[DeviceUpdate], Sequence[DeadLetter], asyncio.Future[int]
            ]
        ] = []
        self._flush_scheduled = False
        self._flush_task: asyncio.Task[None] | None = None
        #: set whenever readings were added: the publisher waits on it.
        self.added = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Outbox:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        try:
            self._count = await self._run(self._open_sync)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        if self._executor is None:
            return
        try:
            await self._run(self._close_sync)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _open_sync(self) -> int:
        path = self.config.path
        try:
            if self.readonly:
                if not path.exists():
                    raise OutboxError(f"no outbox at {path} (has the gateway run here?)")
                conn = sqlite3.connect(
                    f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
                )
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")  # durable, not only consistent
                conn.executescript(_SCHEMA)
                conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)",
                    (str(SCHEMA_VERSION),),
                )
            conn.execute("PRAGMA busy_timeout=5000")
            self._conn = conn
            (count,) = conn.execute("SELECT count(*) FROM reading").fetchone()
            return int(count)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open outbox {path}: {exc}") from exc

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise OutboxError("outbox is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise OutboxError("outbox is not open")
        return self._conn

    # --- writing ----------------------------------------------------------------------------

    async def add(
        self,
        entries: Sequence[Entry],
        *,
        devices: Sequence[DeviceUpdate] = (),
        dead_letters: Sequence[DeadLetter] = (),
    ) -> int:
        """Store readings (with device-state changes and dead letters) in one durable commit.

        Returns how many old readings the ``drop_oldest`` policy removed to make room (the
        caller logs it). Raises :class:`OutboxFull` under the ``refuse`` policy: then nothing
        of this call is stored, and the device side must not be released.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._pending.append((entries, devices, dead_letters, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._flush_task = loop.create_task(self._flush())
        result = await future
        if entries:
            self.added.set()
        return result

    async def _flush(self) -> None:
        # Take everything queued so far and commit it together; later arrivals get the next flush.
        await asyncio.sleep(0)
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            results = await self._run(lambda: self._add_sync(batch))
        except Exception as exc:  # every waiter must hear about it, whatever failed
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (*_, fut), result in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    def _add_sync(
        self,
        batch: Sequence[tuple[Sequence[Entry], Sequence[DeviceUpdate], Sequence[DeadLetter], Any]],
    ) -> list[int | BaseException]:
        db = self._db
        results: list[int | BaseException] = []
        refused = 0
        try:
            db.execute("BEGIN IMMEDIATE")
            for entries, updates, dead, _ in batch:
                db.execute("SAVEPOINT one")
                try:
                    dropped = self._make_room(len(entries))
                    self._insert(entries, updates, dead)
                except OutboxFull as exc:
                    db.execute("ROLLBACK TO one")
                    db.execute("RELEASE one")
                    refused += len(entries)
                    results.append(exc)
                    continue
                except sqlite3.IntegrityError as exc:
                    db.execute("ROLLBACK TO one")
                    db.execute("RELEASE one")
                    results.append(OutboxError(f"reading id already stored: {exc}"))
                    continue
                db.execute("RELEASE one")
                self._count += len(entries) - dropped
                results.append(dropped)
            if refused:
                self._bump(REFUSED, refused)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            (count,) = db.execute("SELECT count(*) FROM reading").fetchone()
            self._count = int(count)
            raise OutboxError(f"outbox write failed: {exc}") from exc
        return results

    def _make_room(self, incoming: int) -> int:
        limit = self.config.max_readings
        excess = self._count + incoming - limit
        if excess <= 0 or incoming == 0:
            return 0
        if self.config.overflow is Overflow.REFUSE or incoming > limit:
            raise OutboxFull(limit)
        db = self._db
        db.execute(
            "DELETE FROM reading WHERE seq IN (SELECT seq FROM reading ORDER BY seq LIMIT ?)",
            (excess,),
        )
        self._bump(DROPPED, excess)
        return excess

    def _insert(
        self, entries: Sequence[Entry], updates: Sequence[DeviceUpdate], dead: Sequence[DeadLetter]
    ) -> None:
        db = self._db
        now = time.time()
        if entries:
            db.executemany(
                "INSERT INTO reading (id, device_id, created_at, body) VALUES (?, ?, ?, ?)",
                [(e.id, e.device_id, now, e.body) for e in entries],
            )
            self._bump(WRITTEN, len(entries))
        for update in updates:
            self._update_device(update)
        if dead:
            db.executemany(
                "INSERT INTO dead_letter (at, source, origin, raw_hex, reason, reading_id)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(d.at, d.source, d.origin, d.raw_hex, d.reason, d.reading_id) for d in dead],
            )
            self._bump(DEAD_LETTERS, len(dead))

    def _update_device(self, update: DeviceUpdate) -> None:
        values = {
            name: getattr(update, name)
            for name in _DEVICE_COLUMNS
            if name != "device_id" and getattr(update, name) is not None
        }
        if "clock_trusted" in values:
            values["clock_trusted"] = int(values["clock_trusted"])
        db = self._db
        db.execute("INSERT OR IGNORE INTO device_state (device_id) VALUES (?)", (update.device_id,))
        if values:
            assignments = ", ".join(f"{name} = ?" for name in values)
            db.execute(
                f"UPDATE device_state SET {assignments} WHERE device_id = ?",
                (*values.values(), update.device_id),
            )

    def _bump(self, name: str, by: int) -> None:
        self._db.execute(
            "INSERT INTO counter (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )

    async def update_devices(self, updates: Sequence[DeviceUpdate]) -> None:
        """Record device facts (seen, battery, clock, errors) outside a reading write."""
        if updates:
            await self.add((), devices=updates)

    async def add_dead_letters(self, dead: Sequence[DeadLetter]) -> None:
        if dead:
            await self.add((), dead_letters=dead)

    # --- forwarding ---------------------------------------------------------------------------

    async def take(self, limit: int, *, now: float | None = None) -> list[Pending]:
        """Up to ``limit`` readings due for publishing, oldest first, marked as sent now.

        Due = never published, or published more than ``resend_after_s`` ago without an ack.
        """
        stamp = time.time() if now is None else now
        cutoff = stamp - self.config.resend_after_s

        def work() -> list[Pending]:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute(
                    "SELECT seq, id, body, sent_at FROM reading WHERE sent_at < ?"
                    " ORDER BY sent_at, seq LIMIT ?",
                    (cutoff if cutoff > 0 else 1e-9, limit),
                ).fetchall()
                if rows:
                    db.executemany(
                        "UPDATE reading SET sent_at = ?, attempts = attempts + 1 WHERE seq = ?",
                        [(stamp, row[0]) for row in rows],
                    )
                    resends = sum(1 for row in rows if row[3] > 0)
                    if resends:
                        self._bump(REPUBLISHED, resends)
                    if len(rows) - resends:
                        self._bump(PUBLISHED, len(rows) - resends)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                db.execute("ROLLBACK")
                raise OutboxError(f"outbox read failed: {exc}") from exc
            return [Pending(id=row[1], body=row[2], resend=row[3] > 0) for row in rows]

        return await self._run(work)

    async def release(self, ids: Sequence[str]) -> None:
        """The publish of these readings failed: make them due again at once."""
        if not ids:
            return

        def work() -> None:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            db.executemany("UPDATE reading SET sent_at = 0 WHERE id = ?", [(i,) for i in ids])
            db.execute("COMMIT")

        await self._run(work)

    async def reschedule_in_flight(self, due_in_s: float, *, now: float | None = None) -> int:
        """Make every published-but-unacknowledged reading due ``due_in_s`` from now.

        Called when the central link comes back: the new connection knows nothing of the old
        one's in-flight messages, so whatever ingest has not acknowledged by then (its queued
        acks arrive first on the persistent session) is published again.
        """
        stamp = time.time() if now is None else now
        due_at = stamp - self.config.resend_after_s + due_in_s

        def work() -> int:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            changed = db.execute(
                "UPDATE reading SET sent_at = ? WHERE sent_at > ?", (max(due_at, 1e-6), due_at)
            ).rowcount
            db.execute("COMMIT")
            return int(changed)

        return await self._run(work)

    async def acknowledge(self, ids: Iterable[str]) -> int:
        """Ingest committed these readings: delete them. Unknown ids (repeated acks) are ignored."""
        wanted = [(i,) for i in ids]
        if not wanted:
            return 0

        def work() -> int:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                before = db.total_changes
                db.executemany("DELETE FROM reading WHERE id = ?", wanted)
                deleted = db.total_changes - before
                if deleted:
                    self._bump(ACKED, deleted)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                db.execute("ROLLBACK")
                raise OutboxError(f"outbox ack failed: {exc}") from exc
            self._count -= deleted
            return deleted

        return await self._run(work)

    async def expire(self, *, now: float | None = None) -> tuple[int, int]:
        """Apply the age caps: (readings expired, dead letters pruned). The caller logs them."""
        stamp = time.time() if now is None else now
        reading_cutoff = stamp - self.config.max_age_days * 86400.0
        dead_cutoff = stamp - self.config.keep_dead_letters_days * 86400.0

        def work() -> tuple[int, int]:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            expired = db.execute(
                "DELETE FROM reading WHERE created_at < ?", (reading_cutoff,)
            ).rowcount
            pruned = db.execute("DELETE FROM dead_letter WHERE at < ?", (dead_cutoff,)).rowcount
            if expired:
                self._bump(EXPIRED, expired)
            db.execute("COMMIT")
            self._count -= expired
            return expired, pruned

        return await self._run(work)

    # --- reading state --------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Readings waiting for an ack (kept in memory; exact, since one thread writes)."""
        return self._count

    async def device_state(self, device_id: str) -> DeviceState | None:
        def work() -> DeviceState | None:
            row = self._db.execute(
                f"SELECT {', '.join(_DEVICE_COLUMNS)} FROM device_state WHERE device_id = ?",
                (device_id,),
            ).fetchone()
            return None if row is None else _device_state(row)

        return await self._run(work)

    async def status(self, *, now: float | None = None) -> OutboxStatus:
        def work() -> OutboxStatus:
            db = self._db
            queued, unsent, oldest = db.execute(
                "SELECT count(*), count(*) FILTER (WHERE sent_at = 0), min(created_at) FROM reading"
            ).fetchone()
            (dead,) = db.execute("SELECT count(*) FROM dead_letter").fetchone()
            counters = dict(db.execute("SELECT name, value FROM counter ORDER BY name").fetchall())
            devices = tuple(
                _device_state(row)
                for row in db.execute(
                    f"SELECT {', '.join(_DEVICE_COLUMNS)} FROM device_state ORDER BY device_id"
                ).fetchall()
            )
            return OutboxStatus(
                queued=int(queued),
                unsent=int(unsent),
                in_flight=int(queued) - int(unsent),
                oldest_unacked_at=oldest,
                dead_letters=int(dead),
                counters={str(k): int(v) for k, v in counters.items()},
                devices=devices,
            )

        return await self._run(work)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        def work() -> list[DeadLetter]:
            rows = self._db.execute(
                "SELECT source, origin, raw_hex, reason, reading_id, at FROM dead_letter"
                " ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
            return [DeadLetter(*row) for row in rows]

        return await self._run(work)


def _device_state(row: Sequence[Any]) -> DeviceState:
    values = dict(zip(_DEVICE_COLUMNS, row, strict=True))
    if values["clock_trusted"] is not None:
        values["clock_trusted"] = bool(values["clock_trusted"])
    return DeviceState(**values)


def default_path(state_dir: Path, gateway_id: str) -> Path:
    return state_dir / "gateway" / gateway_id / "outbox.sqlite3"
