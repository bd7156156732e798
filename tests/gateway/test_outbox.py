"""The SQLite outbox: durable before release, gone only on ingest's ack, caps never silent."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest

from gateway.config import OutboxConfig, Overflow
from gateway.errors import OutboxFull
from gateway.outbox import (
    ACKED,
    DROPPED,
    EXPIRED,
    REFUSED,
    DeadLetter,
    DeviceUpdate,
    Entry,
    Outbox,
    new_reading_id,
)


def entries(n: int, device: str = "cuff") -> list[Entry]:
    return [Entry(new_reading_id(), device, json.dumps({"n": i})) for i in range(n)]


def config(tmp_path: Path, **kw: object) -> OutboxConfig:
    return OutboxConfig(path=tmp_path / "outbox.sqlite3", **kw)  # type: ignore[arg-type]


async def test_written_readings_survive_a_reopen_and_leave_only_on_ack(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    batch = entries(3)
    async with Outbox(cfg) as box:
        await box.add(batch)
        taken = await box.take(10)
        assert [p.id for p in taken] == [e.id for e in batch]
    # The broker accepted them (or not): without an ack they are still there after a restart.
    async with Outbox(cfg) as box:
        assert box.depth == 3
        assert await box.acknowledge([batch[0].id, batch[1].id, "unknown-id"]) == 2
        assert await box.acknowledge([batch[0].id]) == 0  # a repeated ack changes nothing
        status = await box.status()
        assert status.queued == 1
        assert status.counters[ACKED] == 2


async def test_the_file_is_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    async with Outbox(cfg) as box:
        await box.add(entries(1))
    with sqlite3.connect(cfg.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_unacked_readings_are_published_again_after_the_timeout(tmp_path: Path) -> None:
    async with Outbox(config(tmp_path, resend_after_s=10.0)) as box:
        batch = entries(2)
        await box.add(batch)
        t = time.time()
        first = await box.take(10, now=t)
        assert [p.resend for p in first] == [False, False]
        assert await box.take(10, now=t + 5) == []  # in flight, not yet due
        again = await box.take(10, now=t + 11)
        assert [p.id for p in again] == [e.id for e in batch]
        assert all(p.resend for p in again)


async def test_release_makes_a_failed_publish_due_at_once(tmp_path: Path) -> None:
    async with Outbox(config(tmp_path, resend_after_s=3600.0)) as box:
        batch = entries(2)
        await box.add(batch)
        taken = await box.take(10)
        await box.release([p.id for p in taken])
        assert len(await box.take(10)) == 2


async def test_take_is_oldest_first_and_bounded(tmp_path: Path) -> None:
    async with Outbox(config(tmp_path)) as box:
        batch = entries(5)
        await box.add(batch)
        assert [p.id for p in await box.take(2)] == [e.id for e in batch[:2]]
        assert [p.id for p in await box.take(10)] == [e.id for e in batch[2:]]


async def test_refuse_policy_raises_and_counts(tmp_path: Path) -> None:
    async with Outbox(config(tmp_path, max_readings=3)) as box:
        await box.add(entries(3))
        with pytest.raises(OutboxFull):
            await box.add(entries(1))
        status = await box.status()
        assert status.queued == 3
        assert status.counters[REFUSED] == 1


async def test_drop_oldest_policy_counts_what_it_removed(tmp_path: Path) -> None:
    async with Outbox(config(tmp_path, max_readings=3, overflow=Overflow.DROP_OLDEST)) as box:
        old = entries(3)
        await box.add(old)
        new = entries(2)
        assert await box.add(new) == 2
        ids = [p.id for p in await box.take(10)]
        assert ids == [old[2].id, *(e.id for e in new)]
        assert (await box.status()).counters[DROPPED] == 2


async def test_concurrent_adds_are_committed_together_and_all_stored(tmp_path: Path) -> None:
    async with Outbox(config(tmp_path)) as box:
        groups = [entries(10, device=f"d{i}") for i in range(20)]
        await asyncio.gather(*(box.add(g) for g in groups))
        assert box.depth == 200
        assert (await box.status()).queued == 200


async def test_one_refused_add_does_not_lose_its_neighbours(tmp_path: Path) -> None:
    async with Outbox(config(tmp_path, max_readings=5)) as box:
        results = await asyncio.gather(
            box.add(entries(3)), box.add(entries(3)), box.add(entries(2)), return_exceptions=True
        )
        assert [type(r).__name__ for r in results] == ["int", "OutboxFull", "int"]
        assert box.depth == 5


async def test_device_state_and_sequence_mark_are_written_with_the_readings(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    async with Outbox(cfg) as box:
        await box.add(
            entries(2, device="meter"),
            devices=[
                DeviceUpdate("meter", address="AA:BB:CC:DD:EE:FF", last_sequence=41, battery_pct=80)
            ],
        )
        await box.update_devices([DeviceUpdate("meter", clock_offset_s=-12.5, clock_trusted=True)])
    async with Outbox(cfg, readonly=True) as box:
        state = await box.device_state("meter")
        assert state is not None
        assert (
            state.last_sequence,
            state.battery_pct,
            state.clock_offset_s,
            state.clock_trusted,
        ) == (
            41,
            80,
            -12.5,
            True,
        )
        assert state.address == "AA:BB:CC:DD:EE:FF"


async def test_a_refused_write_does_not_advance_the_sequence_mark(tmp_path: Path) -> None:
    async with Outbox(config(tmp_path, max_readings=1)) as box:
        await box.add(entries(1))
        with pytest.raises(OutboxFull):
            await box.add(entries(1, "meter"), devices=[DeviceUpdate("meter", last_sequence=9)])
        assert await box.device_state("meter") is None


async def test_dead_letters_are_kept_and_counted(tmp_path: Path) -> None:
    async with Outbox(config(tmp_path)) as box:
        await box.add_dead_letters([DeadLetter("ble", "AA:BB:CC:DD:EE:FF", "1e80", "truncated")])
        (dead,) = await box.dead_letters()
        assert (dead.raw_hex, dead.reason) == ("1e80", "truncated")
        assert (await box.status()).dead_letters == 1


async def test_age_cap_expires_and_counts(tmp_path: Path) -> None:
    async with Outbox(config(tmp_path, max_age_days=1.0)) as box:
        await box.add(entries(2))
        assert await box.expire(now=time.time() + 2 * 86400) == (2, 0)
        status = await box.status()
        assert status.queued == 0
        assert status.counters[EXPIRED] == 2
        assert box.depth == 0


async def test_status_reports_depth_and_oldest(tmp_path: Path) -> None:
    async with Outbox(config(tmp_path)) as box:
        before = time.time()
        await box.add(entries(3))
        await box.take(1)
        status = await box.status()
        assert (status.queued, status.unsent, status.in_flight) == (3, 2, 1)
        assert status.oldest_unacked_at is not None
        assert status.oldest_unacked_at >= before


def test_reading_ids_are_unique_and_time_ordered() -> None:
    ids = [new_reading_id(1_700_000_000.0 + i / 1000) for i in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(i) == 26 for i in ids)
    assert [i[:10] for i in ids] == sorted(i[:10] for i in ids)


async def test_readonly_open_of_a_missing_outbox_says_so(tmp_path: Path) -> None:
    from gateway.errors import OutboxError

    with pytest.raises(OutboxError, match="no outbox"):
        async with Outbox(config(tmp_path), readonly=True):
            pass


async def test_in_flight_readings_are_rescheduled_after_a_reconnect(tmp_path: Path) -> None:
    async with Outbox(config(tmp_path, resend_after_s=60.0)) as box:
        await box.add(entries(3))
        t = time.time()
        await box.take(2, now=t)  # two in flight, one never sent
        assert await box.reschedule_in_flight(2.0, now=t + 1) == 2
        assert len(await box.take(10, now=t + 2)) == 1  # only the unsent one is due yet
        assert len(await box.take(10, now=t + 3.5)) == 2  # the in-flight pair, after the grace
