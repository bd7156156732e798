"""The gateway's configuration: one centre's gateway, its stations, devices and brokers.

Built once by ``daon gateway`` from the ``[gateway]`` table of the TOML file (documented with
an example in ``docs/gateway.toml.example``) and passed down; nothing here reads files or the
environment at import time. Every value is a frozen dataclass, validated on construction by
:func:`config_from_mapping`, which names the offending key in a :class:`ConfigError`.

A station gateway (``mode = "station"``) serves the measurement stations of one U-health
centre; a visiting nurse's tablet runs the same software with ``mode = "visit"``: it has one
pseudo-station (the tablet itself) on which the nurse checks residents in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from devices.mqttlink import Broker
from gateway.errors import ConfigError

_ADDRESS_RE = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Mode(StrEnum):
    STATION = "station"  # a centre's box next to the measurement stations
    VISIT = "visit"  # a visiting nurse's tablet


class Overflow(StrEnum):
    """What the outbox does when ``max_readings`` are waiting (always counted and logged)."""

    REFUSE = "refuse"  # new readings are refused: they stay on the device (RACP mark not advanced)
    DROP_OLDEST = "drop_oldest"  # the oldest unsent readings are deleted to make room


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """One MQTT broker. ``password`` is a secret: never logged (see :meth:`display`)."""

    host: str
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None  # read when connecting (kept out of the TOML)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    client_id: str | None = None  # default: derived from the gateway id
    keepalive_s: int = 30
    # Further nodes of a broker cluster (host, port), tried in turn after the first fails.
    more_nodes: tuple[tuple[str, int], ...] = ()

    def display(self) -> str:
        """The broker as a URL without the password, for logs and messages."""
        return self.broker().display()

    def broker(self, attempt: int = 0) -> Broker:
        """Where to connect, for the MQTT adapter (``devices.mqttlink``): with a cluster's
        nodes listed, attempt ``n`` goes to node ``n`` modulo their number."""
        nodes = ((self.host, self.port), *self.more_nodes)
        host, port = nodes[attempt % len(nodes)]
        return Broker(
            host=host,
            port=port,
            tls=self.tls,
            username=self.username,
            password=self.password,
            password_file=self.password_file,
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            keepalive_s=self.keepalive_s,
        )


@dataclass(frozen=True, slots=True)
class UserSlot:
    """A personal multi-user device's user slot mapped to a resident (the registry's device_user).

    ``consent_code`` is the UDS consent code (0-9999) the gateway sends for that slot; it is a
    secret and never logged.
    """

    index: int
    resident: str
    consent_code: int | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """A registered device: the allow-list entry the scanner accepts.

    Station devices name their ``station`` and are bound by check-in sessions; their ``users``
    (a shared scale's UDS slots) only give the consent codes to read those slots, never the
    person. Personal devices name an ``owner`` (single user) or ``users`` (slots of a
    multi-user scale or cuff); a slot is never a person unless it is listed here.
    """

    address: str | None  # upper-case BLE address; None for an MQTT (kiosk / Wi-Fi) device
    model: str  # catalogue model name (devices.catalogue), or the kiosk's model
    id: str  # registry device id (System ID / serial), default the address
    station: str | None = None
    owner: str | None = None
    users: tuple[UserSlot, ...] = ()
    passkey: int | None = field(default=None, repr=False)  # for passkey pairing (Accu-Chek PIN)
    calibration: str | None = None  # glucose meters: "plasma" | "whole_blood"
    station_user: int | None = None  # UDS slot a shared station scale uses for everyone
    station_consent: int | None = field(default=None, repr=False)

    def resident_for_slot(self, index: int | None) -> str | None:
        """The resident mapped to user slot ``index``, or None (never guessed)."""
        if index is None:
            return None
        for slot in self.users:
            if slot.index == index:
                return slot.resident
        return None


@dataclass(frozen=True, slots=True)
class StationConfig:
    id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    path: Path
    max_readings: int = 500_000
    max_age_days: float = 90.0  # unsent readings older than this are expired (counted, logged)
    overflow: Overflow = Overflow.REFUSE
    batch_size: int = 500  # readings per MQTT message
    resend_after_s: float = 30.0  # no ack within this → publish again (ingest de-duplicates)
    keep_dead_letters_days: float = 90.0


@dataclass(frozen=True, slots=True)
class BleConfig:
    """BLE timings. Defaults follow bleak and bleak-retry-connector (house-style.md anchor B)."""

    adapter: str = "hci0"
    enabled: bool = True
    connect_timeout_s: float = 20.0  # one BleakClient.connect
    safety_timeout_s: float = 60.0  # outer bound around one connect attempt (stalled stacks)
    attempts: int = 4  # connect attempts per session
    settle_s: float = 0.5  # pause after connecting before GATT traffic (Tidepool 500 ms)
    idle_timeout_s: float = 10.0  # no record for this long → the transfer is over
    transfer_timeout_s: float = 60.0  # whole session bound
    racp_timeout_s: float = 30.0  # glucose RACP response (Tidepool 30 s)
    rescan_s: float = 5.0  # scan window per scan cycle
    gather_s: float = 0.15  # after the first due advert, let devices advertising together show
    cooldown_s: float = 5.0  # after a session, ignore the device's adverts this long
    backoff_s: float = 0.25  # base of the backoff between connect attempts


@dataclass(frozen=True, slots=True)
class ClockPolicy:
    """How device clocks are judged (fhir-mapping-and-anchors.md §2.1, ble-profiles.md §6)."""

    timezone: str = "Asia/Seoul"
    sync_tolerance_s: float = 2.0  # |offset| within this: the device is on the gateway's time
    max_offset_s: float = 300.0  # |offset| beyond this: times are corrected but not trusted
    earliest_year: int = 2020  # device times before this are reset epochs (2000-01-01 ...)
    future_tolerance_s: float = 120.0  # a record later than now + this is not trusted


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    centre: str
    gateway_id: str
    topic_root: str
    central: BrokerConfig
    local: BrokerConfig | None  # the centre's broker for station topics; None = central
    outbox: OutboxConfig
    mode: Mode = Mode.STATION
    stations: tuple[StationConfig, ...] = ()
    devices: tuple[DeviceConfig, ...] = ()
    cards: Mapping[str, str] = field(default_factory=dict, repr=False)  # card → resident id
    checkin_window_s: float = 600.0
    heartbeat_s: float = 30.0
    mqtt_timeout_s: float = 10.0
    reconnect_max_s: float = 30.0
    ble: BleConfig = field(default_factory=BleConfig)
    clock: ClockPolicy = field(default_factory=ClockPolicy)

    @property
    def ble_devices(self) -> tuple[DeviceConfig, ...]:
        """The BLE allow-list."""
        return tuple(d for d in self.devices if d.address is not None)

    def device(self, address: str) -> DeviceConfig | None:
        """The registered device with this BLE address (any case), or None."""
        wanted = address.upper()
        for dev in self.devices:
            if dev.address == wanted:
                return dev
        return None

    def device_by_id(self, device_id: str) -> DeviceConfig | None:
        for dev in self.devices:
            if device_id == dev.id or (dev.address is not None and device_id == dev.address):
                return dev
        return None

    @property
    def station_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.stations)

    @property
    def local_broker(self) -> BrokerConfig:
        return self.local or self.central


def parse_broker_url(url: str, key: str) -> BrokerConfig:
    """``mqtt://user:pass@host:1883`` / ``mqtts://host:8883`` → :class:`BrokerConfig`.

    The nodes of a broker cluster may be listed comma-separated
    (``mqtts://gw@mq1:8883,mqtts://mq2:8883``): credentials and TLS come from the first."""
    first, *more = [u.strip() for u in url.split(",") if u.strip()] or [url]
    if more:
        head = parse_broker_url(first, key)
        nodes = tuple((n.host, n.port) for n in (parse_broker_url(u, key) for u in more))
        return replace(head, more_nodes=nodes)
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ConfigError(key, f"{_redact(url)!r}: scheme must be mqtt:// or mqtts://")
    if not parts.hostname:
        raise ConfigError(key, f"{_redact(url)!r} has no host")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ConfigError(key, f"{_redact(url)!r}: {exc}") from None
    return BrokerConfig(
        host=parts.hostname,
        port=port,
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


# --- building from a TOML table -------------------------------------------------------------


class _Table:
    """Typed access to one TOML table that names the key path in every error."""

    def __init__(self, data: Mapping[str, Any], path: str, known: Sequence[str]) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(path or "gateway", "must be a table")
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(
                f"{path}.{unknown[0]}" if path else unknown[0],
                f"unknown key (known keys: {', '.join(sorted(known))})",
            )
        self.data = data
        self.path = path

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        return name in self.data

    def str_(
        self, name: str, default: str | None = None, *, pattern: re.Pattern[str] | None = None
    ) -> str:
        value = self.data.get(name, default)
        if value is None:
            raise ConfigError(self.key(name), "is required")
        if not isinstance(value, str) or not value:
            raise ConfigError(self.key(name), f"must be a non-empty string, not {value!r}")
        if pattern is not None and not pattern.fullmatch(value):
            raise ConfigError(
                self.key(name), f"{value!r} is not a valid id (letters, digits, . _ -)"
            )
        return value

    def opt_str(self, name: str) -> str | None:
        if self.data.get(name) is None:
            return None
        return self.str_(name)

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.data.get(name, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ConfigError(self.key(name), f"must be a number, not {value!r}")
        if value < minimum:
            raise ConfigError(self.key(name), f"must be at least {minimum}, not {value!r}")
        return float(value)

    def integer(
        self, name: str, default: int | None, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        value = self.data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.key(name), f"must be an integer, not {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            top = f" and at most {maximum}" if maximum is not None else ""
            raise ConfigError(self.key(name), f"must be at least {minimum}{top}, not {value}")
        return value

    def opt_int(self, name: str, *, minimum: int = 0, maximum: int | None = None) -> int | None:
        if self.data.get(name) is None:
            return None
        return self.integer(name, None, minimum=minimum, maximum=maximum)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), f"must be true or false, not {value!r}")
        return value

    def table(self, name: str, known: Sequence[str]) -> _Table | None:
        value = self.data.get(name)
        if value is None:
            return None
        return _Table(value, self.key(name), known)

    def tables(self, name: str, known: Sequence[str]) -> list[_Table]:
        value = self.data.get(name, [])
        if not isinstance(value, list):
            raise ConfigError(self.key(name), "must be an array of tables ([[...]])")
        return [_Table(item, f"{self.key(name)}[{i}]", known) for i, item in enumerate(value)]


_BROKER_KEYS = (
    "url", "host", "port", "tls", "username", "password", "password_file",
    "ca_file", "cert_file", "key_file", "client_id", "keepalive_s",
)  # fmt: skip


def _broker(t: _Table) -> BrokerConfig:
    if t.has("url"):
        base = parse_broker_url(t.str_("url"), t.key("url"))
    else:
        tls = t.boolean("tls", False)
        base = BrokerConfig(host=t.str_("host"), port=8883 if tls else 1883, tls=tls)
    password = t.opt_str("password") or base.password
    return BrokerConfig(
        host=base.host,
        port=t.integer("port", base.port, minimum=1, maximum=65535),
        tls=t.boolean("tls", base.tls),
        username=t.opt_str("username") or base.username,
        password=password,
        password_file=_path(t, "password_file"),
        ca_file=_path(t, "ca_file"),
        cert_file=_path(t, "cert_file"),
        key_file=_path(t, "key_file"),
        client_id=t.opt_str("client_id"),
        keepalive_s=t.integer("keepalive_s", 30, minimum=5, maximum=3600),
        more_nodes=base.more_nodes,
    )


def _path(t: _Table, name: str) -> Path | None:
    value = t.opt_str(name)
    return Path(value) if value else None


def _address(t: _Table) -> str | None:
    if not t.has("address"):
        if not t.has("id"):
            raise ConfigError(t.key("address"), "a BLE device needs an address, an MQTT one an id")
        return None
    value = t.str_("address").upper().replace("-", ":")
    if not _ADDRESS_RE.fullmatch(value):
        raise ConfigError(
            t.key("address"), f"{value!r} is not a BLE address like C4:7C:8D:6A:1B:22"
        )
    return value


_DEVICE_KEYS = (
    "address", "model", "id", "station", "owner", "users", "passkey", "calibration",
    "station_user", "station_consent",
)  # fmt: skip
_TOP_KEYS = (
    "centre", "id", "mode", "stations", "devices", "cards", "checkin_window_s", "heartbeat_s",
    "mqtt_timeout_s", "reconnect_max_s", "central", "local", "outbox", "ble", "clock",
)  # fmt: skip


def config_from_mapping(
    data: Mapping[str, Any],
    *,
    topic_root: str = "daon",
    default_broker_url: str | None = None,
    state_dir: Path | None = None,
) -> GatewayConfig:
    """Validate the ``[gateway]`` table and build the configuration.

    ``default_broker_url`` (the system's ``DAON_MQTT_URL``) is the central broker when the
    table has no ``[gateway.central]``; ``state_dir`` holds the outbox when ``outbox.path`` is
    not given.
    """
    top = _Table(data, "", _TOP_KEYS)
    centre = top.str_("centre", pattern=_ID_RE)
    gateway_id = top.str_("id", pattern=_ID_RE)
    try:
        mode = Mode(top.str_("mode", "station"))
    except ValueError:
        raise ConfigError("mode", "must be 'station' or 'visit'") from None

    central_t = top.table("central", _BROKER_KEYS)
    if central_t is not None:
        central = _broker(central_t)
    elif default_broker_url:
        central = parse_broker_url(default_broker_url, "central.url (DAON_MQTT_URL)")
    else:
        raise ConfigError(
            "central", "no central broker: add [gateway.central] url or set DAON_MQTT_URL"
        )
    local_t = top.table("local", _BROKER_KEYS)
    local = _broker(local_t) if local_t is not None else None

    stations = []
    for st in top.tables("stations", ("id", "name")):
        stations.append(
            StationConfig(id=st.str_("id", pattern=_ID_RE), name=st.opt_str("name") or "")
        )
    station_ids = {s.id for s in stations}
    if len(station_ids) != len(stations):
        raise ConfigError("stations", "station ids must be unique")
    if mode is Mode.VISIT and not stations:
        stations.append(StationConfig(id=gateway_id, name="visit tablet"))
        station_ids.add(gateway_id)

    devices = []
    for dt in top.tables("devices", _DEVICE_KEYS):
        devices.append(_device(dt, station_ids))
    addresses = [d.address for d in devices if d.address is not None]
    if len(set(addresses)) != len(addresses):
        raise ConfigError("devices", "a BLE address is registered twice")
    ids = [d.id for d in devices]
    if len(set(ids)) != len(ids):
        raise ConfigError("devices", "a device id is registered twice")

    cards_raw = data.get("cards", {})
    if not isinstance(cards_raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in cards_raw.items()
    ):
        raise ConfigError("cards", 'must be a table of "card number" = "resident id" strings')

    outbox = _outbox(top.table("outbox", _OUTBOX_KEYS), gateway_id, state_dir)
    return GatewayConfig(
        centre=centre,
        gateway_id=gateway_id,
        topic_root=topic_root,
        central=central,
        local=local,
        outbox=outbox,
        mode=mode,
        stations=tuple(stations),
        devices=tuple(devices),
        cards=dict(cards_raw),
        checkin_window_s=top.number("checkin_window_s", 600.0, minimum=1.0),
        heartbeat_s=top.number("heartbeat_s", 30.0, minimum=0.1),
        mqtt_timeout_s=top.number("mqtt_timeout_s", 10.0, minimum=0.1),
        reconnect_max_s=top.number("reconnect_max_s", 30.0, minimum=0.1),
        ble=_ble(top.table("ble", _BLE_KEYS)),
        clock=_clock(top.table("clock", _CLOCK_KEYS)),
    )


def _device(t: _Table, station_ids: set[str]) -> DeviceConfig:
    address = _address(t)
    station = t.opt_str("station")
    if station is not None and station not in station_ids:
        raise ConfigError(t.key("station"), f"{station!r} is not one of the [[stations]]")
    owner = t.opt_str("owner")
    users = tuple(
        UserSlot(
            index=u.integer("index", None, minimum=0, maximum=254),
            resident=u.str_("resident"),
            consent_code=u.opt_int("consent_code", maximum=9999),
        )
        for u in t.tables("users", ("index", "resident", "consent_code"))
    )
    if len({u.index for u in users}) != len(users):
        raise ConfigError(t.key("users"), "a user index is mapped twice")
    if station is None and owner is None and not users:
        raise ConfigError(t.key("station"), "a device needs a station, an owner or users")
    if station is not None and owner is not None:
        raise ConfigError(t.key("owner"), "a station device is shared: it has no owner")
    calibration = t.opt_str("calibration")
    if calibration not in (None, "plasma", "whole_blood"):
        raise ConfigError(t.key("calibration"), "must be 'plasma' or 'whole_blood'")
    return DeviceConfig(
        address=address,
        model=t.str_("model"),
        id=t.opt_str("id") or str(address),
        station=station,
        owner=owner,
        users=users,
        passkey=t.opt_int("passkey", maximum=999_999),
        calibration=calibration,
        station_user=t.opt_int("station_user", maximum=254),
        station_consent=t.opt_int("station_consent", maximum=9999),
    )


_OUTBOX_KEYS = (
    "path", "max_readings", "max_age_days", "overflow", "batch_size", "resend_after_s",
    "keep_dead_letters_days",
)  # fmt: skip


def _outbox(t: _Table | None, gateway_id: str, state_dir: Path | None) -> OutboxConfig:
    t = t or _Table({}, "outbox", _OUTBOX_KEYS)
    if t.has("path"):
        path = Path(t.str_("path"))
    elif state_dir is not None:
        path = state_dir / "gateway" / gateway_id / "outbox.sqlite3"
    else:
        raise ConfigError("outbox.path", "is required (or a state directory)")
    try:
        overflow = Overflow(t.str_("overflow", "refuse"))
    except ValueError:
        raise ConfigError("outbox.overflow", "must be 'refuse' or 'drop_oldest'") from None
    return OutboxConfig(
        path=path,
        max_readings=t.integer("max_readings", 500_000, minimum=1),
        max_age_days=t.number("max_age_days", 90.0, minimum=0.001),
        overflow=overflow,
        batch_size=t.integer("batch_size", 500, minimum=1, maximum=10_000),
        resend_after_s=t.number("resend_after_s", 30.0, minimum=0.05),
        keep_dead_letters_days=t.number("keep_dead_letters_days", 90.0, minimum=0.001),
    )


_BLE_KEYS = (
    "adapter", "enabled", "connect_timeout_s", "safety_timeout_s", "attempts", "settle_s",
    "idle_timeout_s", "transfer_timeout_s", "racp_timeout_s", "rescan_s", "gather_s", "cooldown_s",
    "backoff_s",
)  # fmt: skip


def _ble(t: _Table | None) -> BleConfig:
    if t is None:
        return BleConfig()
    d = BleConfig()
    return BleConfig(
        adapter=t.str_("adapter", d.adapter),
        enabled=t.boolean("enabled", d.enabled),
        connect_timeout_s=t.number("connect_timeout_s", d.connect_timeout_s, minimum=0.1),
        safety_timeout_s=t.number("safety_timeout_s", d.safety_timeout_s, minimum=0.1),
        attempts=t.integer("attempts", d.attempts, minimum=1, maximum=20),
        settle_s=t.number("settle_s", d.settle_s),
        idle_timeout_s=t.number("idle_timeout_s", d.idle_timeout_s, minimum=0.05),
        transfer_timeout_s=t.number("transfer_timeout_s", d.transfer_timeout_s, minimum=0.1),
        racp_timeout_s=t.number("racp_timeout_s", d.racp_timeout_s, minimum=0.05),
        rescan_s=t.number("rescan_s", d.rescan_s, minimum=0.05),
        gather_s=t.number("gather_s", d.gather_s),
        cooldown_s=t.number("cooldown_s", d.cooldown_s),
        backoff_s=t.number("backoff_s", d.backoff_s),
    )


_CLOCK_KEYS = (
    "timezone", "sync_tolerance_s", "max_offset_s", "earliest_year", "future_tolerance_s",
)  # fmt: skip


def _clock(t: _Table | None) -> ClockPolicy:
    if t is None:
        return ClockPolicy()
    d = ClockPolicy()
    tz = t.str_("timezone", d.timezone)
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(t.key("timezone"), f"{tz!r} is not a known time zone") from None
    return ClockPolicy(
        timezone=tz,
        sync_tolerance_s=t.number("sync_tolerance_s", d.sync_tolerance_s),
        max_offset_s=t.number("max_offset_s", d.max_offset_s),
        earliest_year=t.integer("earliest_year", d.earliest_year, minimum=1583, maximum=9999),
        future_tolerance_s=t.number("future_tolerance_s", d.future_tolerance_s),
    )
