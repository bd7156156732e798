"""``daon gateway``: the status report, the TOML loading, and the demo centres' tables."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from daon.cli import main
from daon.commands.gateway import demo_tables
from devices import catalogue
from gateway.ble import _configured_model
from gateway.config import OutboxConfig, config_from_mapping
from gateway.outbox import DeviceUpdate, Entry, Outbox, new_reading_id


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(
        f"""
[gateway]
centre = "yaksu"
id = "yaksu-gw-1"
[gateway.central]
url = "mqtt://127.0.0.1:1"
[gateway.outbox]
path = "{tmp_path / "outbox.sqlite3"}"
[[gateway.stations]]
id = "yaksu-station-1"
[[gateway.devices]]
address = "C4:7C:8D:6A:1B:22"
model = "UA-651BLE"
id = "cuff-1"
station = "yaksu-station-1"
""",
        encoding="utf-8",
    )
    return path


async def fill(tmp_path: Path) -> None:
    async with Outbox(OutboxConfig(path=tmp_path / "outbox.sqlite3")) as box:
        await box.add(
            [Entry(new_reading_id(), "cuff-1", "{}") for _ in range(3)],
            devices=[
                DeviceUpdate("cuff-1", battery_pct=77, clock_offset_s=-12.0, clock_trusted=True)
            ],
        )
        await box.take(1)


def test_status_reports_depth_devices_battery_and_clock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(fill(tmp_path))
    path = write_config(tmp_path)
    assert main(["gateway", "status", "--json", "--gateway-config", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["queue_depth"], report["unsent"], report["in_flight"]) == (3, 2, 1)
    assert report["oldest_unacked_at"] is not None
    (device,) = report["devices"]
    assert (device["id"], device["battery_pct"], device["clock_offset_s"]) == ("cuff-1", 77, -12.0)
    assert main(["gateway", "status", "--gateway-config", str(path)]) == 0
    text = capsys.readouterr().out
    assert "queue depth" in text
    assert "77 %" in text
    assert "-12 s" in text


def test_status_without_an_outbox_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    assert main(["gateway", "status", "--gateway-config", str(path)]) == 1
    assert "no outbox" in capsys.readouterr().err


def test_a_bad_config_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[gateway]\ncentre = "yaksu"\nid = "x"\nmode = "mobile"\n', encoding="utf-8")
    assert main(["gateway", "status", "--gateway-config", str(path)]) == 1
    assert "mode" in capsys.readouterr().err


def test_the_three_demo_centres_make_valid_gateways(tmp_path: Path) -> None:
    tables = demo_tables()
    assert [t["centre"] for t in tables] == ["yaksu", "hwanghak", "pil"]
    for table in tables:
        config = config_from_mapping(
            table, default_broker_url="mqtt://127.0.0.1", state_dir=tmp_path
        )
        assert config.ble_devices
        assert config.cards
        for device in config.ble_devices:
            row = _configured_model(device)
            assert row is not None, device.model
            assert row in catalogue.CATALOGUE
