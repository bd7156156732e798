"""The errors ``devices`` raises. Pure code raises; the service boundary decides what to do.

::

    DeviceError                      base of everything this package raises on purpose
    ├── DecodeError (ValueError)     bytes that are not a valid value of a characteristic
    │   └── UnknownCharacteristic    a UUID we have no decoder for
    ├── EncodeError (ValueError)     a value an encoder cannot put on the wire exactly
    ├── InvalidUuid (ValueError)     text that is not a 16-, 32- or 128-bit Bluetooth UUID
    ├── UnknownQuirk (ValueError)    a quirk name that is not in devices.quirks.QUIRKS
    ├── StationPayloadError (ValueError)   a station MQTT payload that breaks its schema
    ├── WireError (ValueError)       a gateway → ingest wire message that breaks its schema
    └── MqttError                    devices.mqttlink: a broker refused, dropped or did not answer
        ├── MqttConnectError         CONNACK refused or the connection could not be made
        └── MqttTimeout              a connect, subscribe or publish did not finish in time

Every error carries the facts a log line needs (characteristic, payload hex, field, reason), so
the caller can log it at WARNING with the device address and carry on (house-style.md §3.4).
"""

from __future__ import annotations


class DeviceError(Exception):
    """Base class of every error raised by ``devices``."""


class DecodeError(DeviceError, ValueError):
    """A payload that is not a valid value of ``characteristic``; never a partial record.

    ``characteristic`` is the 128-bit lowercase UUID, or ``""`` when a field decoder
    (for example :func:`devices.ieee11073.decode_date_time`) is used on its own.
    """

    def __init__(self, characteristic: str, payload_hex: str, reason: str) -> None:
        self.characteristic = characteristic
        self.payload_hex = payload_hex
        self.reason = reason
        super().__init__(characteristic, payload_hex, reason)

    def __str__(self) -> str:
        from devices.uuids import describe  # local: uuids imports nothing from here

        where = describe(self.characteristic) if self.characteristic else "value"
        return f"{where}: {self.reason}"

    def for_characteristic(self, characteristic: str, payload: bytes) -> DecodeError:
        """The same reason, re-attributed to the characteristic whose payload held the field."""
        return type(self)(characteristic, payload.hex(), self.reason)


class UnknownCharacteristic(DecodeError):
    """No decoder exists for this characteristic UUID."""


class EncodeError(DeviceError, ValueError):
    """A value that cannot be written exactly in the requested wire format (never rounded)."""


class InvalidUuid(DeviceError, ValueError):
    """Text that is not a Bluetooth UUID in any accepted spelling."""


class UnknownQuirk(DeviceError, ValueError):
    """A quirk name that :data:`devices.quirks.QUIRKS` does not define."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        self.name = name
        self.known = known
        super().__init__(name, known)

    def __str__(self) -> str:
        return f"unknown quirk {self.name!r} (known: {', '.join(self.known)})"


class StationPayloadError(DeviceError, ValueError):
    """A station payload that breaks the schema; ``field`` is a path like ``values[1].unit``."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(field, reason)

    def __str__(self) -> str:
        return f"station payload field {self.field!r}: {self.reason}"


class WireError(DeviceError, ValueError):
    """A wire message (batch, reading or ack) that breaks the schema; ``field`` names where."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(field, reason)

    def __str__(self) -> str:
        return f"wire message field {self.field!r}: {self.reason}"


class MqttError(DeviceError):
    """A broker operation failed (``devices.mqttlink``); ``broker`` is the display URL."""

    def __init__(self, broker: str, reason: str) -> None:
        self.broker = broker
        self.reason = reason
        super().__init__(broker, reason)

    def __str__(self) -> str:
        return f"MQTT {self.broker}: {self.reason}"


class MqttConnectError(MqttError):
    """The broker could not be reached or refused the connection."""


class MqttTimeout(MqttError):
    """A connect, subscribe or publish did not complete in time."""
