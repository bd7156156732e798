# ruff: noqa: E402  (imports follow the sys.path fix below, as in the other benchmarks)
"""Benchmark: what one stored Observation costs, in three representations (issue 17).

The same N Observations (ingest's own transform, :func:`ingest.fhir.to_observations`, for a
mix of blood pressure, glucose and weight readings) are binary-COPYed into three scratch tables
that have today's columns and today's indexes (primary key, resident/code/time, device/time)
and differ only in the ``resource`` column:

- ``jsonb``: the served resource as jsonb (what ``observation`` stores today);
- ``text``: the same resource as text (it is served verbatim);
- ``typed``: the typed columns plus a compact remainder: the resource without the members a
  per-code template can rebuild from the typed columns (id, status, category, code, subject,
  effective time, value, components, device, identifier, meta); NULL when nothing remains.
  The remainder keeps everything else (extensions, notes, interpretation, …) as text, so this
  is an upper bound for the typed layout. It measures size and write rate only: the renderer
  that serves it byte for byte is not written yet (docs/storage.md).

For each: rows per second of the COPY (one transaction, best of ``--rounds``) and bytes per row
(table, indexes and TOAST). The identity table is left out: it is the same in all three.

Run: ``.venv/bin/python bench/storage_rows.py [--observations N]``. The last line is JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import asyncio
import json
import os
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from devices.model import Component, Kind, Measurement
from ingest import store
from ingest.fhir import ReadingContext, StoredObservation, to_observations
from ingest.store.observations import copy_row

SEOUL = ZoneInfo("Asia/Seoul")
SERVER = os.environ.get("DAON_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
COLUMNS = (
    "id, effective_at, resident_id, code, code_system, value, unit, component_values, "
    "device_id, gateway_id, centre_id, status, identifier, resource, received_at, quality, "
    "context"
)
RESOURCE_AT = 13  # position of ``resource`` in COLUMNS and in copy_row()
DERIVED = frozenset(
    {
        "resourceType",
        "id",
        "meta",
        "status",
        "category",
        "code",
        "subject",
        "effectiveDateTime",
        "valueQuantity",
        "component",
        "device",
        "identifier",
    }
)


def remainder(resource: str) -> str | None:
    """The members of a resource that the typed columns and a per-code template do not give."""
    rest = {k: v for k, v in json.loads(resource).items() if k not in DERIVED}
    return json.dumps(rest, separators=(",", ":"), ensure_ascii=False) if rest else None


def observations(n: int, seed: int) -> list[StoredObservation]:
    """About ``n`` Observations: 60 % blood pressure, 25 % glucose, 15 % weight, 2,000 residents."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, 7, 0)
    out: list[StoredObservation] = []
    i = 0
    while len(out) < n:
        resident = f"R{rng.randrange(2000):07d}"
        local = start + timedelta(minutes=7 * i)
        kind = rng.random()
        comps: tuple[Component, ...]
        device = "bp" if kind < 0.60 else "glucose" if kind < 0.85 else "scale"
        if kind < 0.60:
            systolic = rng.randint(100, 165)
            comps = (
                Component("systolic", Decimal(systolic), "mm[Hg]"),
                Component("diastolic", Decimal(rng.randint(60, systolic - 20)), "mm[Hg]"),
                Component("pulse", Decimal(rng.randint(55, 100)), "/min"),
            )
            m = Measurement(Kind.BLOOD_PRESSURE, comps, local)
        elif kind < 0.85:
            comps = (Component("glucose", Decimal(rng.randint(80, 220)), "mg/dL"),)
            m = Measurement(Kind.GLUCOSE, comps, local, context=(("meal", "fasting"),))
        else:
            comps = (Component("weight", Decimal(f"{rng.uniform(45, 95):.1f}"), "kg"),)
            m = Measurement(Kind.BODY_WEIGHT, comps, local)
        ctx = ReadingContext(
            device_id=f"home-{device}-{resident}",
            gateway_id=f"home-gw-{resident}",
            received_at=local.replace(tzinfo=SEOUL) + timedelta(seconds=30),
            patient=resident,
            binding="registry",
            setting="home",
        )
        out.extend(to_observations(m, ctx))
        i += 1
    return out[:n]


def _jsonb_row(o: StoredObservation) -> tuple[Any, ...]:
    return copy_row(o)


def _text_row(o: StoredObservation) -> tuple[Any, ...]:
    row = list(copy_row(o))
    row[RESOURCE_AT] = o.resource.encode()  # binary COPY of text: the UTF-8 bytes
    return tuple(row)


def _typed_row(o: StoredObservation) -> tuple[Any, ...]:
    row = list(copy_row(o))
    rest = remainder(o.resource)
    row[RESOURCE_AT] = None if rest is None else rest.encode()
    return tuple(row)


VARIANTS: dict[str, tuple[str, Callable[[StoredObservation], tuple[Any, ...]]]] = {
    "jsonb": ("jsonb NOT NULL", _jsonb_row),
    "text": ("text NOT NULL", _text_row),
    "typed": ("text", _typed_row),
}


def _create(conn: psycopg.Connection[Any], table: str, resource_type: str) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {table}".encode())
    conn.execute(f"CREATE TABLE {table} (LIKE observation INCLUDING DEFAULTS)".encode())
    conn.execute(
        f"ALTER TABLE {table} ALTER COLUMN resource TYPE {resource_type.split()[0]}, "
        f"ALTER COLUMN resource {'SET' if 'NOT NULL' in resource_type else 'DROP'} NOT NULL, "
        f"ADD PRIMARY KEY (id, effective_at)".encode()
    )
    conn.execute(f"CREATE INDEX ON {table} (resident_id, code, effective_at DESC)".encode())
    conn.execute(f"CREATE INDEX ON {table} (device_id, effective_at DESC)".encode())


def measure(url: str, rows: list[StoredObservation], rounds: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for name, (resource_type, to_row) in VARIANTS.items():
            tuples = [to_row(o) for o in rows]
            table = f"storage_{name}"
            best = 0.0
            for _ in range(rounds):
                _create(conn, table, resource_type)
                started = time.perf_counter()
                with conn.transaction(), conn.cursor() as cur:
                    sql = f"COPY {table} ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
                    with cur.copy(sql.encode()) as copy:
                        for row in tuples:
                            copy.write_row(row)
                best = max(best, len(tuples) / (time.perf_counter() - started))
            conn.execute(f"VACUUM ANALYZE {table}".encode())
            cur = conn.execute(f"SELECT pg_total_relation_size('{table}')".encode())
            size = int((cur.fetchone() or (0,))[0])
            cur = conn.execute(
                f"SELECT coalesce(avg(pg_column_size(resource)), 0) FROM {table}".encode()
            )
            column = float((cur.fetchone() or (0,))[0])
            results[name] = {
                "rows_per_s": best,
                "bytes_per_row": size / len(rows),
                "resource_column_bytes": column,
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observations", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=2, help="COPY rounds per variant (best)")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    rows = observations(args.observations, args.seed)
    average = sum(len(o.resource) for o in rows) / len(rows)
    print(f"{len(rows):,} Observations; served resource {average:,.0f} characters on average")
    name = f"daon_bench_storage_{os.getpid()}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
        url = SERVER.rpartition("/")[0] + f"/{name}"
        try:
            asyncio.run(store.migrate(url))
            results = measure(url, rows, args.rounds)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
    base = results["jsonb"]
    for variant, r in results.items():
        rate, size = r["rows_per_s"], r["bytes_per_row"]
        print(
            f"  {variant:<6} COPY {rate:9,.0f} rows/s ({rate / base['rows_per_s']:.2f} of jsonb)  "
            f"{size:6,.0f} bytes/row ({size / base['bytes_per_row']:.2f} of jsonb; "
            f"resource column {r['resource_column_bytes']:,.0f} B)"
        )
    print(
        json.dumps(
            {
                "benchmark": "storage_rows",
                "observations": len(rows),
                **{
                    f"{v}_{k}": round(r[k], 1)
                    for v, r in results.items()
                    for k in ("rows_per_s", "bytes_per_row", "resource_column_bytes")
                },
            }
        )
    )


if __name__ == "__main__":
    main()
