"""Settings for every service: environment variables over an optional TOML file over defaults.

Built once in ``main`` (``load_settings``) and passed down; nothing reads the environment at
import time. Each service takes only its own section.

Precedence: ``DAON_*`` environment variables > the TOML file (``--config`` or ``$DAON_CONFIG``)
> built-in defaults. With no database or broker URL configured, the embedded services of
``daon demo`` are used (see :mod:`daon.embedded`).

Environment variables (all optional)::

    DAON_DATABASE_URL   postgresql://user@host:5432/daon     (default: embedded demo database)
    DAON_MQTT_URL       mqtt://user:pass@host:1883  or mqtts://host:8883 (default: embedded broker)
    DAON_TOPIC_ROOT     MQTT topic root (default "daon")
    DAON_STATE_DIR      embedded servers' data ($XDG_STATE_HOME/daon; /var/lib/daon as root)
    DAON_API_HOST / DAON_API_PORT      web application bind address (default 127.0.0.1:8000)
    DAON_SECRET_KEY     session signing key (default: generated once and kept in the state dir)
    DAON_CONFIG         a TOML file with the same keys (lower case) and [gateway] etc. tables
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class SettingsError(Exception):
    """The configuration cannot be used; the message says which setting and what to do."""


def default_state_dir() -> Path:
    """Per-user state dir; root gets /var/lib/daon, which an unprivileged postgres can reach."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/daon")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "daon"


class MqttUrl(BaseModel):
    """A parsed ``mqtt://`` / ``mqtts://`` URL."""

    model_config = {"frozen": True}

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> MqttUrl:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise SettingsError(
                f"MQTT URL {url!r}: scheme must be mqtt:// or mqtts:// (e.g. mqtt://127.0.0.1:1883)"
            )
        tls = parts.scheme in ("mqtts", "ssl")
        if not parts.hostname:
            raise SettingsError(f"MQTT URL {url!r} has no host")
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=parts.username,
            password=parts.password,
        )

    def display(self) -> str:
        """The URL without the password, for messages and logs."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


class Settings(BaseSettings):
    """Process-wide settings. Service-specific sections are plain tables in the TOML file."""

    model_config = SettingsConfigDict(env_prefix="DAON_", extra="ignore", frozen=True)

    database_url: str | None = None
    mqtt_url: str | None = None
    topic_root: str = "daon"
    state_dir: Path = Field(default_factory=default_state_dir)
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    secret_key: str | None = None
    timescaledb: str = "auto"  # auto | on | off: use the extension when present (auto)
    gateway: dict[str, Any] = Field(default_factory=dict)
    ingest: dict[str, Any] = Field(default_factory=dict)
    clinical: dict[str, Any] = Field(default_factory=dict)
    api: dict[str, Any] = Field(default_factory=dict)
    delivery: dict[str, Any] = Field(default_factory=dict)

    @field_validator("topic_root")
    @classmethod
    def _topic_root_plain(cls, value: str) -> str:
        if not value or any(c in value for c in "+#") or value.startswith("/"):
            raise ValueError("topic_root must be a plain MQTT topic prefix such as 'daon'")
        return value.rstrip("/")

    @field_validator("timescaledb")
    @classmethod
    def _timescale_choice(cls, value: str) -> str:
        if value not in ("auto", "on", "off"):
            raise ValueError("timescaledb must be auto, on or off")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init kwargs carry the TOML file's values; the environment overrides them.
        return (env_settings, init_settings)

    def mqtt(self) -> MqttUrl:
        """The configured broker; raises SettingsError when none is configured."""
        if not self.mqtt_url:
            raise SettingsError("no MQTT broker configured: set DAON_MQTT_URL (or run `daon demo`)")
        return MqttUrl.parse(self.mqtt_url)


def load_settings(config_path: str | os.PathLike[str] | None = None) -> Settings:
    """Read the TOML file (if any) and the environment into a Settings value."""
    path = config_path or os.environ.get("DAON_CONFIG")
    file_values: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as fh:
                file_values = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise SettingsError(f"config file {path} not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    try:
        return Settings(**file_values)
    except ValueError as exc:
        raise SettingsError(f"invalid settings: {exc}") from exc
