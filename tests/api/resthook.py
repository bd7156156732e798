"""Helpers for delivery tests: the rest-hook receiver process and notify events in the database."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection


@dataclass
class Receiver:
    """A running ``simulators.resthook`` process."""

    process: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def received(self, after: int = 0) -> list[dict[str, Any]]:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.port}/_received?after={after}", timeout=5
        ) as response:
            found: list[dict[str, Any]] = json.loads(response.read())
            return found

    def mode(self, mode: str) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/_mode", data=mode.encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5):
            pass


@contextmanager
def receiver(mode: str = "ok", port: int = 0) -> Iterator[Receiver]:
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.resthook", "--port", str(port), "--mode", mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("LISTENING "), line
        yield Receiver(process, int(line.split()[1]))
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


async def open_flag(conn: AsyncConnection[Any], resident: str, rule: str = "BP-CRISIS") -> int:
    """A critical flag as the runner stores it (with its FHIR Flag); returns its id."""
    cur = await conn.execute(
        """INSERT INTO risk_flag (resident_id, rule, rule_set, severity, recipients, state,
                                  opened_at, alerted_at, summary)
           VALUES (%s, %s, 'test', 'critical', '{nurse}', 'open', now(), now(),
                   'SBP 186 mmHg') RETURNING id""",
        (resident, rule),
    )
    row = await cur.fetchone()
    assert row is not None
    flag_id = int(row[0])
    flag = {
        "resourceType": "Flag",
        "id": str(flag_id),
        "status": "active",
        "code": {"text": rule},
        "subject": {"reference": f"Patient/{resident}"},
    }
    await conn.execute(
        "UPDATE risk_flag SET fhir_flag = %s::jsonb WHERE id = %s", (json.dumps(flag), flag_id)
    )
    return flag_id


async def notify(
    conn: AsyncConnection[Any],
    flag_id: int,
    resident: str,
    *,
    kind: str = "notify",
    notice: str = "raised",
    count: int = 1,
) -> list[int]:
    """``count`` flag events of ``kind`` in one statement (as the runner batches them)."""
    cur = await conn.execute(
        """INSERT INTO flag_event (flag_id, resident_id, rule, at, kind, notice, targets, severity)
           SELECT %s, %s, 'BP-CRISIS', now(), %s, %s, '{nurse}', 'critical'
           FROM generate_series(1, %s) RETURNING id""",
        (flag_id, resident, kind, notice, count),
    )
    return [int(r[0]) for r in await cur.fetchall()]


def wait_for(predicate: Any, timeout: float = 10.0, step: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)
