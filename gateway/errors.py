"""The errors ``gateway`` raises. Pure parts raise; the service loops decide (log, retry, go on).

::

    GatewayError                     base of everything this package raises on purpose
    ├── ConfigError (ValueError)     the gateway's TOML cannot be used; ``key`` names where
    ├── OutboxError                  the local SQLite outbox cannot be read or written
    │   └── OutboxFull               the retention cap is reached and the policy is "refuse"
    └── BleError                     one device's BLE session failed; ``address`` says which
        ├── DeviceNotFound           not advertising within the scan window
        ├── ConnectionFailed         every connect attempt failed (``attempts``, last ``cause``)
        ├── PairingFailed            the device refused to pair / authenticate
        │   └── BondLost             the device forgot our bond (BlueZ AuthenticationFailed)
        └── TransferError            the profile's procedure failed (RACP/UCP code, timeout)

Errors carry the facts a log line needs (bleak's habit), and the messages say what a person
at the centre can do about it (bleak-retry-connector's habit). The broker's errors are the
MQTT adapter's own (``devices.errors.MqttError`` and subclasses), re-exported here.
"""

from __future__ import annotations

from devices.errors import MqttConnectError, MqttError, MqttTimeout


class GatewayError(Exception):
    """Base class of every error raised by ``gateway``."""


class ConfigError(GatewayError, ValueError):
    """The gateway configuration cannot be used; ``key`` is a path like ``devices[2].model``."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(key, reason)

    def __str__(self) -> str:
        return f"gateway config {self.key}: {self.reason}"


class OutboxError(GatewayError):
    """The local outbox failed; the reading that was being written is NOT stored."""


class OutboxFull(OutboxError):
    """The outbox holds ``limit`` readings and the overflow policy refuses new ones."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(limit)

    def __str__(self) -> str:
        return (
            f"outbox full ({self.limit} readings waiting for the central side): new readings are "
            "refused and stay on the device; check the central broker and ingest"
        )


class BleError(GatewayError):
    """One device's BLE session failed; ``address`` is the device's BLE address."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(address, reason)

    def __str__(self) -> str:
        return f"BLE {self.address}: {self.reason}"


class DeviceNotFound(BleError):
    """The device did not advertise within the scan window (press its button / measure again)."""


class ConnectionFailed(BleError):
    """Every connect attempt failed; ``attempts`` made, ``cause`` the last low-level error."""

    def __init__(self, address: str, reason: str, *, attempts: int, cause: str) -> None:
        super().__init__(address, reason)
        self.attempts = attempts
        self.cause = cause

    def __str__(self) -> str:
        return f"BLE {self.address}: {self.reason} after {self.attempts} attempts ({self.cause})"


class PairingFailed(BleError):
    """Pairing or re-encryption failed (wrong passkey, device not in pairing mode)."""


class BondLost(PairingFailed):
    """The device no longer knows our bond: it must be put in pairing mode and paired again."""


class TransferError(BleError):
    """The profile procedure failed: an RACP/UCP error code, a refused consent, a timeout."""


__all__ = [
    "BleError",
    "BondLost",
    "ConfigError",
    "ConnectionFailed",
    "DeviceNotFound",
    "GatewayError",
    "MqttConnectError",
    "MqttError",
    "MqttTimeout",
    "OutboxError",
    "OutboxFull",
    "PairingFailed",
    "TransferError",
]
