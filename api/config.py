"""The api's own configuration, built by ``daon api`` / ``daon demo`` from the settings.

Never built at import time. The ``[api]`` table of the TOML file may set the keys of
:func:`ApiConfig.with_overrides`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from api.security import DEFAULT_PARAMS, ScryptParams
from api.store.throttle import LOGIN_POLICY, STATION_POLICY, Policy


@dataclass(frozen=True, slots=True)
class MqttTarget:
    """The broker the station check-in commands go to."""

    host: str
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def display(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ApiConfig:
    database_url: str
    mqtt: MqttTarget | None = None  # None: check-ins are recorded and the screen says so
    topic_root: str = "daon"
    session_lifetime: timedelta = timedelta(hours=12)
    session_idle: timedelta = timedelta(hours=2)
    cookie_secure: bool = False  # always Secure; else Secure whenever the request came over https
    #: Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or
    #: networks). Empty: the peer address is the client, whatever a header claims.
    trusted_proxies: tuple[str, ...] = ()
    password_params: ScryptParams = DEFAULT_PARAMS
    login_policy: Policy = LOGIN_POLICY  # progressive delay per client address
    station_card_policy: Policy = STATION_POLICY  # card-reader lockout per station
    #: Password hashes computed at once (each ~128 MiB and a core), and how long a login
    #: waits for a slot before the answer is 503.
    hash_concurrency: int = field(default_factory=lambda: max(1, (os.cpu_count() or 2) // 2))
    hash_wait_s: float = 10.0
    pool_min: int = 2
    pool_max: int = 20
    pool_timeout_s: float = 10.0
    statement_timeout_ms: int = 15_000
    mqtt_timeout_s: float = 5.0
    page_size: int = 50
    max_page_size: int = 500
    checkin_minutes: int = 10

    def with_overrides(self, table: dict[str, Any]) -> ApiConfig:
        """Apply the ``[api]`` TOML table (unknown keys are an error, so typos show up)."""
        simple = {
            "topic_root",
            "cookie_secure",
            "pool_min",
            "pool_max",
            "pool_timeout_s",
            "statement_timeout_ms",
            "mqtt_timeout_s",
            "page_size",
            "max_page_size",
            "checkin_minutes",
            "hash_concurrency",
            "hash_wait_s",
        }
        durations = {
            "session_lifetime_minutes": "session_lifetime",
            "session_idle_minutes": "session_idle",
        }
        changes: dict[str, Any] = {}
        for key, value in table.items():
            if key == "trusted_proxies":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError("[api] trusted_proxies must be a list of addresses")
                changes[key] = tuple(value)
            elif key in simple:
                changes[key] = value
            elif key in durations:
                changes[durations[key]] = timedelta(minutes=float(value))
            else:
                raise ValueError(f"unknown [api] setting {key!r}")
        return replace(self, **changes)
