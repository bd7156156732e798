"""Benchmark: failover on existing engines while the centres keep sending (issue 18).

Scenarios, each against real engines on this machine (tests/ha/cluster.py brings them up):

1. database: etcd + Patroni over three PostgreSQL nodes (synchronous mode), Mosquitto, one
   ``daon ingest``; gateways send at ``--rate`` readings/s and resend what is not acknowledged;
   the leader is SIGKILLed mid-stream.
2. broker: a three-node cluster of each candidate (NATS with JetStream; RabbitMQ with quorum
   queues), both serving MQTT 3.1.1; ingest (persistent session, every node listed) and the
   gateways spread over the nodes; the node ingest is connected to is SIGKILLed mid-stream.

For each: time until ingest acknowledges again after the kill (``*_failover_s``), readings per
second acknowledged in the 30 s after the kill, the steady rate before it, lost and duplicated
Observations (each reading's identifier counted in the table). Aim: 0 lost, 0 duplicated.

Run: ``.venv/bin/python bench/ha.py [--rate 2000] [--readings 40000] [--brokers nats,rabbitmq]``.
The last line is JSON with ``db_failover_s``, ``broker_failover_s`` (the chosen broker, NATS),
``lost``, ``duplicates``, ``readings_per_s_during_failover`` and the per-scenario figures.
"""

# ruff: noqa: E402  (imports follow the sys.path fix below)
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]

import argparse
import asyncio
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from typing import Any

import psycopg

from daon.embedded import EmbeddedBroker, free_port
from tests.ha import load
from tests.ha.cluster import (
    Etcd,
    NatsCluster,
    PatroniCluster,
    RabbitCluster,
    missing,
    wait_until,
)

SERVER = os.environ.get("DAON_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CHOSEN_BROKER = "nats"
WINDOW_S = 30.0


def _with_db(url: str, name: str) -> str:
    head, _, _ = url.rpartition("/")
    return f"{head}/{name}"


def run_scenario(
    db_url: str,
    mqtt_urls: list[str],
    workdir: Path,
    tag: str,
    readings: int,
    rate: float,
    kill: Callable[[], None],
    shared: bool,
) -> dict[str, Any]:
    """Send the workload, kill something after 5 s, report what the gateways and table saw."""
    work = load.build(tag, readings)
    asyncio.run(load.seed(db_url, work))
    expected = asyncio.run(load.expected_identifiers(db_url, work))
    worker = load.IngestWorker(db_url, mqtt_urls, tag, workdir / f"ingest-{tag}", 1, shared)
    gateways: load.Gateways | None = None
    killed: dict[str, float] = {}
    try:
        worker.start()
        wait_until(worker.subscribed, 90, "ingest's subscription")
        gateways = load.Gateways(mqtt_urls, tag)
        gateways.wait_connected()

        def during(elapsed: float) -> None:
            if elapsed >= 5.0 and not killed:
                killed["at"] = time.monotonic()
                kill()

        start = time.monotonic()
        gateways.run(work, rate=rate, timeout=600, during=during)
        took = time.monotonic() - start
        at = killed["at"]
        acked = sorted(gateways.acked.values())
        resumed = next((t for t in acked if t > at + 0.5), None)
        before = [t for t in acked if start + 1.0 <= t < at]
        in_window = [t for t in acked if at <= t < at + WINDOW_S]
        check = asyncio.run(load.table_check(db_url, expected))
        return {
            "readings": len(work.reading_ids),
            "observations": check["expected"],
            "failover_s": round(resumed - at, 2) if resumed else None,
            "readings_per_s_before": round(len(before) / max(at - start - 1.0, 1e-9)),
            "readings_per_s_during_failover": round(len(in_window) / WINDOW_S),
            "all_acknowledged_s": round(took, 1),
            "resends": gateways.resends,
            "lost": check["lost"],
            "duplicates": check["duplicates"],
        }
    finally:
        if gateways is not None:
            gateways.close()
        worker.stop()


def database_scenario(root: Path, readings: int, rate: float) -> dict[str, Any]:
    etcd = Etcd(root / "etcd")
    cluster = PatroniCluster(root / "pg", etcd)
    broker = EmbeddedBroker(root / "mqtt", free_port())
    try:
        etcd.start()
        started = time.monotonic()
        cluster.start()
        up_s = time.monotonic() - started
        broker.start()
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE daon")
        url = cluster.url("daon")
        load.migrate(url)
        leader = cluster.leader()
        assert leader is not None
        promoted: dict[str, float] = {}

        def kill_leader() -> None:
            at = time.monotonic()
            cluster.kill(leader)
            wait_until(lambda: cluster.leader() not in (None, leader), 120, "a new leader")
            promoted["s"] = time.monotonic() - at

        figures = run_scenario(
            url, [broker.url], root, f"hadb{os.getpid()}", readings, rate, kill_leader, True
        )
        return {"cluster_up_s": round(up_s, 1), "promotion_s": round(promoted["s"], 1), **figures}
    finally:
        broker.stop()
        cluster.stop()
        etcd.stop()


def broker_scenario(kind: str, root: Path, readings: int, rate: float) -> dict[str, Any]:
    cluster: NatsCluster | RabbitCluster = (
        NatsCluster(root / kind) if kind == "nats" else RabbitCluster(root / kind)
    )
    name = f"daon_bench_ha_{kind}_{os.getpid()}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    url = _with_db(SERVER, name)
    try:
        started = time.monotonic()
        cluster.start()
        up_s = time.monotonic() - started
        load.migrate(url)
        figures = run_scenario(
            url,
            cluster.mqtt_urls(),
            root,
            f"ha{kind}{os.getpid()}",
            readings,
            rate,
            lambda: cluster.kill(cluster.nodes[0]),  # type: ignore[arg-type]
            False,  # no $share on these MQTT 3.1.1 listeners: one persistent session
        )
        return {"cluster_up_s": round(up_s, 1), **figures}
    finally:
        cluster.stop()
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", type=float, default=2_000.0, help="readings per second")
    parser.add_argument("--readings", type=int, default=40_000)
    parser.add_argument("--brokers", default="nats,rabbitmq")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    why = missing()
    if why:
        print(f"bench/ha.py: cannot run here: {why}")
        print(json.dumps({"skipped": why}))
        return
    root = Path(tempfile.mkdtemp(prefix="daon-bench-ha-"))
    results: dict[str, Any] = {}
    try:
        print(f"database failover: Patroni x3 + etcd, {args.rate:.0f} readings/s ...", flush=True)
        results["database"] = database_scenario(root, args.readings, args.rate)
        print(json.dumps(results["database"], indent=2), flush=True)
        for kind in [k.strip() for k in args.brokers.split(",") if k.strip()]:
            print(f"broker failover: {kind} x3, {args.rate:.0f} readings/s ...", flush=True)
            results[kind] = broker_scenario(kind, root, args.readings, args.rate)
            print(json.dumps(results[kind], indent=2), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    scenarios = [v for v in results.values() if isinstance(v, dict)]
    lost = sum(int(s["lost"]) for s in scenarios)
    duplicates = sum(int(s["duplicates"]) for s in scenarios)
    chosen = results.get(CHOSEN_BROKER, {})
    print()
    print(f"lost {lost} (aim 0), duplicates {duplicates} (aim 0)")
    print(
        f"database failover {results['database']['failover_s']} s "
        f"(Patroni promotion {results['database']['promotion_s']} s); "
        f"broker failover ({CHOSEN_BROKER}) {chosen.get('failover_s')} s"
    )
    summary = {
        "db_failover_s": results["database"]["failover_s"],
        "broker_failover_s": chosen.get("failover_s"),
        "lost": lost,
        "duplicates": duplicates,
        "readings_per_s_during_failover": min(
            int(s["readings_per_s_during_failover"]) for s in scenarios
        ),
        "rate": args.rate,
        "chosen_broker": CHOSEN_BROKER,
        **{f"{k}": v for k, v in results.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
