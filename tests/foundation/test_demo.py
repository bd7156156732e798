"""The demo, end to end: from an empty database to observations served by the FHIR API.

Runs the real ``run_demo`` (kiosks → gateways → broker → ingest → database → API, plus the
virtual BLE fleet when dbus-daemon is present) against the test's own database and topic root,
and reads ``GET /fhir/Observation`` the way an integrator would, with the printed token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from api.config import ApiConfig
from api.main import create_app
from daon.demo import ApiDidNotStart, DemoReport, run_demo, serve_web
from daon.embedded import free_port
from daon.settings import Settings
from tests.fix_db import _admin, _drop, _with_dbname

pytestmark = [pytest.mark.db, pytest.mark.mqtt, pytest.mark.slow]


def _get(url: str, token: str) -> dict[str, object]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["content-type"].startswith("application/fhir+json")
        body: dict[str, object] = json.loads(response.read())
        return body


async def test_the_demo_serves_station_readings_within_a_minute(
    db_url: str, mqtt_url: str, topic_root: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=db_url,
        mqtt_url=mqtt_url,
        topic_root=topic_root,
        state_dir=tmp_path,
        api_port=free_port(),
    )
    started = datetime.now(UTC)
    stop = asyncio.Event()
    ready: asyncio.Future[DemoReport] = asyncio.get_running_loop().create_future()
    demo = asyncio.create_task(
        run_demo(settings, db_url, mqtt_url, stop=stop, on_ready=ready.set_result)
    )
    try:
        report = await asyncio.wait_for(ready, timeout=60)
        assert any(line.startswith("nurse") for line in report.logins)
        url = f"{report.url}fhir/Observation?_count=50&_sort=-date"
        bundle: dict[str, object] = {}
        subjects: list[str] = []
        # A reading nobody was checked in for is served with its Device as subject (unbound);
        # wait for one bound to a resident and received since the demo started (the seeded
        # 90-day history is older). Without dbus-daemon only the kiosks measure.
        live: list[str] = []
        async with asyncio.timeout(90):
            while not any(s.startswith("Patient/") for s in live):
                await asyncio.sleep(2)
                bundle = await asyncio.to_thread(_get, url, report.fhir_token)
                entries = bundle.get("entry") or []
                assert isinstance(entries, list)
                subjects = [e["resource"]["subject"]["reference"] for e in entries]
                live = [
                    e["resource"]["subject"]["reference"]
                    for e in entries
                    if datetime.fromisoformat(e["resource"]["meta"]["lastUpdated"]) >= started
                ]
        assert bundle["resourceType"] == "Bundle"
        assert bundle["type"] == "searchset"
        assert all(e["resource"]["resourceType"] == "Observation" for e in entries)
        assert all(s.startswith(("Patient/", "Device/")) for s in subjects)
        # the demo relay is subscribed to every Flag and the delivering service took it up
        assert report.relay.startswith("http://127.0.0.1:")
        subs: dict[str, object] = {}
        async with asyncio.timeout(30):
            while not subs.get("entry"):
                subs = await asyncio.to_thread(
                    _get, f"{report.url}fhir/Subscription?status=active", report.fhir_token
                )
                await asyncio.sleep(0.5)
        relays = [e["resource"] for e in subs["entry"]]  # type: ignore[attr-defined]
        assert [r["channel"]["endpoint"] for r in relays] == [report.relay]
    finally:
        stop.set()
        await asyncio.wait_for(demo, timeout=60)


def _status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        status: int = response.status
        return status


async def test_the_web_application_waits_for_a_database_that_is_not_there_yet(
    pg_server_url: str, migrated_template: str, caplog: pytest.LogCaptureFixture
) -> None:
    """uvicorn exits (SystemExit) when the lifespan cannot open the pool; the demo's web
    application retries instead, says so in Korean and English, and serves once it can."""
    name = f"daon_t_{uuid.uuid4().hex[:16]}"
    app = create_app(ApiConfig(database_url=_with_dbname(pg_server_url, name), pool_timeout_s=5))
    port = free_port()
    stop, up = asyncio.Event(), asyncio.Event()
    caplog.set_level(logging.WARNING, logger="daon.demo")
    serving = asyncio.create_task(
        serve_web(app, "127.0.0.1", port, stop, up, attempts=30, retry_max_s=0.5)
    )
    try:
        async with asyncio.timeout(60):
            while not (retries := [r.getMessage() for r in caplog.records if "attempt" in r.msg]):
                assert not serving.done(), serving
                await asyncio.sleep(0.1)
        assert not up.is_set()
        assert "웹 애플리케이션을 시작하지 못했습니다 (시도 1/30)" in retries[0]
        assert "attempt 1 of 30" in retries[0]
        assert f'database "{name}" does not exist' in retries[0]  # the reason, in one line
        with _admin(pg_server_url) as conn:  # the database appears
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"'.encode())
        await asyncio.wait_for(up.wait(), timeout=60)
        assert not serving.done()
        assert await asyncio.to_thread(_status, f"http://127.0.0.1:{port}/login") == 200
    finally:
        stop.set()
        await asyncio.wait_for(serving, timeout=30)
        _drop(pg_server_url, name)


async def test_the_web_application_gives_up_after_its_attempts_with_the_reason(
    pg_server_url: str,
) -> None:
    name = f"daon_t_{uuid.uuid4().hex[:16]}"  # never created
    app = create_app(ApiConfig(database_url=_with_dbname(pg_server_url, name), pool_timeout_s=5))
    stop, up = asyncio.Event(), asyncio.Event()
    with pytest.raises(ApiDidNotStart) as failure:  # not SystemExit
        await asyncio.wait_for(
            serve_web(app, "127.0.0.1", free_port(), stop, up, attempts=3, retry_max_s=0.1),
            timeout=60,
        )
    assert "did not start after 3 attempts" in str(failure.value)
    assert "시작하지 못했습니다 (3번 시도)" in str(failure.value)
    assert f'database "{name}" does not exist' in str(failure.value)
    assert not up.is_set()
