"""Settings precedence, the command line's help, and clear errors for unreachable services."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daon.cli import COMMANDS, build_parser, main
from daon.settings import MqttUrl, SettingsError, load_settings


def test_environment_overrides_the_toml_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "daon.toml"
    config.write_text(
        'database_url = "postgresql://file@db/daon"\n'
        'topic_root = "fromfile"\n'
        "[gateway]\n"
        'centre = "yaksu"\n'
    )
    monkeypatch.setenv("DAON_DATABASE_URL", "postgresql://env@db/daon")
    monkeypatch.delenv("DAON_TOPIC_ROOT", raising=False)
    settings = load_settings(config)
    assert settings.database_url == "postgresql://env@db/daon"
    assert settings.topic_root == "fromfile"
    assert settings.gateway == {"centre": "yaksu"}


def test_a_broken_toml_file_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("database_url = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(config)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"nope\.toml"):
        load_settings(tmp_path / "nope.toml")


def test_wildcards_are_refused_in_the_topic_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAON_TOPIC_ROOT", "daon/#")
    with pytest.raises(SettingsError, match="topic_root"):
        load_settings(None)


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "user"),
    [
        ("mqtt://127.0.0.1:1883", "127.0.0.1", 1883, False, None),
        ("mqtts://broker.example", "broker.example", 8883, True, None),
        ("mqtt://gw:secret@central:1884", "central", 1884, False, "gw"),
    ],
)
def test_mqtt_urls(url: str, host: str, port: int, tls: bool, user: str | None) -> None:
    parsed = MqttUrl.parse(url)
    assert (parsed.host, parsed.port, parsed.tls, parsed.username) == (host, port, tls, user)
    assert "secret" not in parsed.display()


def test_mqtt_url_with_another_scheme_is_refused() -> None:
    with pytest.raises(SettingsError, match="mqtt://"):
        MqttUrl.parse("http://broker:1883")


def test_every_landed_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    sub_actions = [a for a in parser._actions if a.dest == "command"]
    registered = set(sub_actions[0].choices) if sub_actions else set()  # type: ignore[attr-defined]
    assert {"db", "status"} <= registered
    assert registered <= {name for name, _, _ in COMMANDS}
    for name in sorted(registered):
        with pytest.raises(SystemExit) as exited:
            main([name, "--help"])
        assert exited.value.code == 0
        assert capsys.readouterr().out.startswith("usage: daon")


@pytest.mark.db
def test_unreachable_database_gives_one_line_not_a_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "daon", "status"],
        env={
            "DAON_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/daon",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "127.0.0.1:1" in lines[0]
    assert "DAON_DATABASE_URL" in lines[0]


@pytest.mark.db
def test_db_migrate_is_idempotent_from_the_command_line(empty_db_url: str) -> None:
    env = {"DAON_DATABASE_URL": empty_db_url, "PATH": "/usr/bin:/bin"}
    first = subprocess.run(
        [sys.executable, "-m", "daon", "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "applied" in first.stdout
    second = subprocess.run(
        [sys.executable, "-m", "daon", "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "up to date" in second.stdout
    status = subprocess.run(
        [sys.executable, "-m", "daon", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert '"schema_version"' in status.stdout
