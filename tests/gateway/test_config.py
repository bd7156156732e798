"""The gateway's TOML configuration: the documented example loads, bad tables name their key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from gateway.ble import _configured_model
from gateway.config import Mode, Overflow, config_from_mapping, parse_broker_url
from gateway.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "gateway.toml.example"


def minimal(**extra: object) -> dict[str, object]:
    table: dict[str, object] = {
        "centre": "yaksu",
        "id": "yaksu-gw-1",
        "stations": [{"id": "yaksu-station-1", "name": "약수동 측정대"}],
        "devices": [
            {"address": "c4:7c:8d:6a:1b:22", "model": "UA-651BLE", "station": "yaksu-station-1"}
        ],
    }
    table.update(extra)
    return table


def test_the_documented_example_loads() -> None:
    with EXAMPLE.open("rb") as fh:
        data = tomllib.load(fh)
    config = config_from_mapping(data["gateway"], topic_root="daon")
    assert config.centre == "yaksu"
    assert config.mode is Mode.STATION
    assert config.central.tls is True
    assert config.local is not None
    assert config.local.host == "127.0.0.1"
    assert config.outbox.overflow is Overflow.REFUSE
    scale = config.device("d0:2b:20:00:00:01")
    assert scale is not None
    assert scale.resident_for_slot(1) == "R0001234"
    assert scale.resident_for_slot(3) is None
    for device in config.ble_devices:  # every model named resolves to a catalogue row
        assert _configured_model(device) is not None, device.model


def test_defaults_and_address_normalisation(tmp_path: Path) -> None:
    config = config_from_mapping(
        minimal(), default_broker_url="mqtt://127.0.0.1:1883", state_dir=tmp_path
    )
    assert config.devices[0].address == "C4:7C:8D:6A:1B:22"
    assert config.devices[0].id == "C4:7C:8D:6A:1B:22"
    assert config.outbox.path == tmp_path / "gateway" / "yaksu-gw-1" / "outbox.sqlite3"
    assert config.central.port == 1883
    assert config.local_broker is config.central
    assert config.ble.attempts == 4  # bleak-retry-connector's bound


def test_broker_url_with_credentials_is_not_echoed() -> None:
    broker = parse_broker_url("mqtts://gw:s%40cret@broker.example:8884", "central.url")
    assert (broker.username, broker.password, broker.port, broker.tls) == (
        "gw",
        "s@cret",
        8884,
        True,
    )
    assert "s@cret" not in broker.display()
    assert "s@cret" not in repr(broker)


def test_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    config = config_from_mapping(
        minimal(central={"url": "mqtt://gw@h:1883", "password_file": str(secret)}),
        state_dir=tmp_path,
    )
    assert config.central.password_file == secret  # read when connecting, not at load time


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"centre": ""}, "centre"),
        ({"mode": "mobile"}, "mode"),
        ({"colour": "blue"}, "colour"),
        (
            {"devices": [{"address": "nope", "model": "X", "station": "yaksu-station-1"}]},
            "devices[0].address",
        ),
        (
            {"devices": [{"address": "AA:BB:CC:DD:EE:FF", "model": "X", "station": "elsewhere"}]},
            "devices[0].station",
        ),
        ({"devices": [{"address": "AA:BB:CC:DD:EE:FF", "model": "X"}]}, "devices[0].station"),
        (
            {
                "devices": [
                    {
                        "address": "AA:BB:CC:DD:EE:FF",
                        "model": "X",
                        "users": [{"index": 1, "resident": "R1", "consent_code": 10000}],
                    }
                ]
            },
            "devices[0].users[0].consent_code",
        ),
        ({"outbox": {"overflow": "ignore"}}, "outbox.overflow"),
        ({"outbox": {"batch_size": 0}}, "outbox.batch_size"),
        ({"ble": {"attempts": "four"}}, "ble.attempts"),
        ({"clock": {"timezone": "Mars/Olympus"}}, "clock.timezone"),
        ({"cards": {"123": 5}}, "cards"),
        ({"central": {"url": "http://x"}}, "central.url"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, change: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(minimal(**change), default_broker_url="mqtt://h", state_dir=tmp_path)
    assert info.value.key == key


def test_no_broker_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="central broker"):
        config_from_mapping(minimal(), state_dir=tmp_path)


def test_visit_mode_gets_its_own_station(tmp_path: Path) -> None:
    config = config_from_mapping(
        {"centre": "pil", "id": "nurse-tablet-3", "mode": "visit"},
        default_broker_url="mqtt://h",
        state_dir=tmp_path,
    )
    assert config.station_ids == ("nurse-tablet-3",)
