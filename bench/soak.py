"""Soak: the whole ``daon demo`` stack for a chosen time, watching readings, descriptors and memory.

Issue 12.2's aim: Bluetooth and kiosk readings arrive in every 5-minute window, and the open
descriptors and resident memory of every process grow by less than 10 % over the run (a leak
shows as steady growth; the BLE connection leak of issue 12.1 stopped BLE after ~6 minutes).

What it does:

1. a fresh database on the local PostgreSQL (``--database-server``), a private Mosquitto with
   the shipped ``daon/resources/mosquitto.conf`` on a free port (or ``--mqtt-url``), its own
   topic root, state directory and API port, so it disturbs no other demo;
2. starts ``daon demo`` as its own process and lets it run for ``--minutes`` (default 120);
3. every minute samples descriptors (``/proc/PID/fd``) and RSS of the demo process and of its
   children (the private dbus-daemon of the virtual BlueZ); every 5 minutes prints the
   window's readings by source (BLE devices have an address in the registry, kiosk devices
   none; observations plus unbound readings, counted by when they were stored) and the
   latest sample per process;
4. stops the demo (SIGINT, as Ctrl-C), drops the database and the state directory (the
   gateway's outbox, the broker's files) unless ``--keep``; without ``--log`` the state
   directory holds the demo's log and stays.

Growth is measured per process from the second window (start-up, migrations and caches warm
up in the first) to the last, each window taken as the median of its samples; the JSON
reports the largest.

Run: ``.venv/bin/python bench/soak.py [--minutes 120] [--api-port 8104]``. Last line is JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from daon.embedded import EmbeddedBroker, find_mosquitto, free_port

WINDOW_S = 300.0
SAMPLE_S = 60.0
AIM_GROWTH_PCT = 10.0


@dataclass
class Sample:
    at: float
    fds: dict[str, int]
    rss_kb: dict[str, int]


@dataclass
class Run:
    started: float
    windows: list[tuple[int, int]] = field(default_factory=list)  # (ble, kiosk) per window
    samples: list[Sample] = field(default_factory=list)


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def process_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return str(pid)


def fds_of(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def rss_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def sample(pid: int) -> Sample:
    procs = {"daon": pid}
    for child in children(pid):
        procs[f"{process_name(child)}"] = child
    return Sample(
        time.monotonic(),
        {name: fds_of(p) for name, p in procs.items()},
        {name: rss_of(p) for name, p in procs.items()},
    )


READINGS_SQL = """
SELECT coalesce(sum(ble), 0)::bigint, coalesce(sum(kiosk), 0)::bigint FROM (
    SELECT count(*) FILTER (WHERE d.address IS NOT NULL) AS ble,
           count(*) FILTER (WHERE d.address IS NULL) AS kiosk
      FROM observation o LEFT JOIN device d ON d.id = o.device_id
     WHERE o.stored_at >= %(start)s AND o.stored_at < %(end)s
    UNION ALL
    SELECT count(*) FILTER (WHERE d.address IS NOT NULL),
           count(*) FILTER (WHERE d.address IS NULL)
      FROM unbound_reading u LEFT JOIN device d ON d.id = u.device_id
     WHERE u.created_at >= %(start)s AND u.created_at < %(end)s
) AS counts
"""


def readings_between(database_url: str, start: datetime, end: datetime) -> tuple[int, int]:
    try:
        with psycopg.connect(database_url, connect_timeout=10) as conn:
            row = conn.execute(READINGS_SQL, {"start": start, "end": end}).fetchone()
    except psycopg.Error as exc:
        print(f"  (could not count readings: {exc})", flush=True)
        return -1, -1
    assert row is not None
    return int(row[0]), int(row[1])


def median(samples: list[Sample], what: str) -> dict[str, int]:
    names = set.intersection(*(set(getattr(s, what)) for s in samples)) if samples else set()
    return {n: int(statistics.median(getattr(s, what)[n] for s in samples)) for n in names}


def growth(first: dict[str, int], last: dict[str, int]) -> dict[str, float]:
    return {
        name: round(100.0 * (last[name] - first[name]) / first[name], 1)
        for name in first
        if name in last and first[name] > 0 and last[name] >= 0
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=120.0)
    parser.add_argument("--api-port", type=int, default=8104)
    parser.add_argument("--database-server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--mqtt-url", default=None, help="default: a private Mosquitto")
    parser.add_argument("--window-minutes", type=float, default=5.0, help="reporting window")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--log", default=None, help="where the demo's output goes")
    args = parser.parse_args()
    global WINDOW_S, SAMPLE_S
    WINDOW_S = args.window_minutes * 60.0
    SAMPLE_S = min(60.0, WINDOW_S / 5)

    tag = f"soak_{uuid.uuid4().hex[:8]}"
    state = Path(tempfile.mkdtemp(prefix=f"daon-{tag}-"))
    admin_url = f"{args.database_server}/postgres"
    database_url = f"{args.database_server}/daon_{tag}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "daon_{tag}"')
    broker: EmbeddedBroker | None = None
    mqtt_url = args.mqtt_url
    if mqtt_url is None:
        if find_mosquitto() is None:
            sys.exit("no mosquitto installed: pass --mqtt-url")
        broker = EmbeddedBroker(state / "mosquitto", free_port())
        broker.start()
        mqtt_url = broker.url
    env = {
        **os.environ,
        "DAON_DATABASE_URL": database_url,
        "DAON_MQTT_URL": mqtt_url,
        "DAON_TOPIC_ROOT": f"daon-{tag}",
        "DAON_API_PORT": str(args.api_port),
        "DAON_STATE_DIR": str(state),
    }
    log_path = Path(args.log) if args.log else state / "demo.log"
    daon = Path(sys.executable).with_name("daon")
    print(
        f"soak {tag}: {args.minutes:g} min of `daon demo` (database daon_{tag}, broker "
        f"{mqtt_url}, API :{args.api_port}, log {log_path})",
        flush=True,
    )
    run = Run(started=time.monotonic())
    wall_start = datetime.now(UTC)
    status = "ok"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(daon), "demo"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            status = watch(proc, run, database_url, wall_start, args.minutes)
        except KeyboardInterrupt:  # Ctrl-C or SIGINT: stop early, still report what was seen
            status = "interrupted"
        finally:
            stop(proc)
            if broker is not None:
                broker.stop()
            if not args.keep:
                with (
                    contextlib.suppress(psycopg.Error),
                    psycopg.connect(admin_url, autocommit=True) as conn,
                ):
                    conn.execute(f'DROP DATABASE IF EXISTS "daon_{tag}" WITH (FORCE)')
                if args.log is not None:  # the demo's log lives elsewhere: nothing to keep here
                    shutil.rmtree(state, ignore_errors=True)
    return report(run, status)


def watch(
    proc: subprocess.Popen[bytes],
    run: Run,
    database_url: str,
    wall_start: datetime,
    minutes: float,
) -> str:
    deadline = run.started + minutes * 60.0
    window_start = wall_start
    next_window = run.started + WINDOW_S
    while True:
        now = time.monotonic()
        if proc.poll() is not None:
            print(f"the demo exited early with status {proc.returncode}", flush=True)
            return f"demo exited ({proc.returncode})"
        if now >= deadline:
            return "ok"
        time.sleep(min(SAMPLE_S, max(0.0, deadline - now), max(0.0, next_window - now)) or 0.1)
        run.samples.append(sample(proc.pid))
        if time.monotonic() >= next_window - 1.0:
            window_end = datetime.now(UTC)
            ble, kiosk = readings_between(database_url, window_start, window_end)
            run.windows.append((ble, kiosk))
            latest = run.samples[-1]
            procs = ", ".join(
                f"{name} fds {latest.fds[name]} rss {latest.rss_kb[name] / 1024:.0f} MB"
                for name in latest.fds
            )
            minute = (time.monotonic() - run.started) / 60.0
            print(
                f"[{minute:6.1f} min] window {len(run.windows)}: BLE {ble}, kiosk {kiosk}; {procs}",
                flush=True,
            )
            window_start = window_end
            next_window += WINDOW_S


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def report(run: Run, status: str) -> int:
    minutes = (time.monotonic() - run.started) / 60.0
    complete = [w for w in run.windows if w[0] >= 0]
    ble = sum(w[0] for w in complete)
    kiosk = sum(w[1] for w in complete)
    # Growth from the second window (the first warms up) to the last one, each taken as the
    # median of its samples: a session in progress holds a connection or two for a moment,
    # a leak raises the median window after window.
    per_window = max(1, round(WINDOW_S / SAMPLE_S))
    first = run.samples[per_window : 2 * per_window]
    final = run.samples[-per_window:]
    enough = len(run.samples) >= 3 * per_window
    fd_growth = growth(median(first, "fds"), median(final, "fds")) if enough else {}
    rss_growth = growth(median(first, "rss_kb"), median(final, "rss_kb")) if enough else {}
    last = run.samples[-1] if run.samples else None
    result: dict[str, Any] = {
        "minutes": round(minutes, 1),
        "status": status,
        "windows": len(complete),
        "ble_readings": ble,
        "kiosk_readings": kiosk,
        "min_ble_per_5min": min((w[0] for w in complete), default=0),
        "min_kiosk_per_5min": min((w[1] for w in complete), default=0),
        "fd_growth_pct": max(fd_growth.values(), default=0.0),
        "rss_growth_pct": max(rss_growth.values(), default=0.0),
        "fd_growth_by_process": fd_growth,
        "rss_growth_by_process": rss_growth,
        "fds_last": last.fds if last else {},
        "rss_mb_last": {k: round(v / 1024, 1) for k, v in (last.rss_kb if last else {}).items()},
    }
    met = (
        status == "ok"
        and bool(complete)
        and result["min_ble_per_5min"] > 0
        and result["min_kiosk_per_5min"] > 0
        and result["fd_growth_pct"] < AIM_GROWTH_PCT
        and result["rss_growth_pct"] < AIM_GROWTH_PCT
    )
    result["aim_met"] = met
    print(
        f"{minutes:.0f} min: BLE {ble}, kiosk {kiosk}; fewest BLE per 5 min "
        f"{result['min_ble_per_5min']} (aim > 0); descriptor growth {result['fd_growth_pct']} % "
        f"and RSS growth {result['rss_growth_pct']} % (aim < {AIM_GROWTH_PCT:g} %, ratio "
        f"{max(result['fd_growth_pct'], result['rss_growth_pct']) / AIM_GROWTH_PCT:.2f})",
        flush=True,
    )
    print(json.dumps(result), flush=True)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
