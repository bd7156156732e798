"""Errors of the virtual BlueZ.

Two families. The first is for the people running the simulator (a missing ``dbus-daemon``, a
bus that will not start, a peripheral added twice). The second travels *over D-Bus*: a
:class:`BluezError` becomes the exact ``org.bluez.Error.*`` reply bluetoothd would send, and an
:class:`AttError` raised by a peripheral hook is translated the way bluetoothd's
``create_gatt_dbus_error()`` translates an ATT error response.

::

    SimulatorError                  base of everything raised by simulators.bluez
    ├── BusUnavailable              no dbus-daemon binary, or it would not start (message says why)
    ├── ServiceError                the virtual org.bluez could not start or was misused
    │   └── PeripheralError         a peripheral is unknown, or its address is already taken
    ├── BluezError                  a D-Bus error reply, named and worded as bluetoothd's
    └── AttError                    raised by peripheral hooks: an ATT error code (0x01-0xFF)
"""

from __future__ import annotations

from typing import Final

ERROR_PREFIX: Final = "org.bluez.Error."


class SimulatorError(Exception):
    """Base of the virtual BlueZ's errors."""


class BusUnavailable(SimulatorError):
    """The private dbus-daemon cannot be found or started."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"cannot start a private D-Bus daemon: {reason}. Install it with your package "
            "manager (Debian/Ubuntu: apt-get install dbus-daemon), or run `make test` as root, "
            "which installs it."
        )


class ServiceError(SimulatorError):
    """The virtual org.bluez service could not start, or was used the wrong way."""


class PeripheralError(ServiceError):
    """A peripheral is unknown to the service, or its address is already in use."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"peripheral {address}: {reason}")


class BluezError(SimulatorError):
    """A D-Bus error reply, named and worded as bluetoothd words it."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        super().__init__(f"{name}: {text}")

    # bluetoothd's src/error.c, one constructor per helper the simulator needs.
    @classmethod
    def failed(cls, text: str) -> BluezError:
        return cls(ERROR_PREFIX + "Failed", text)

    @classmethod
    def in_progress(cls) -> BluezError:
        return cls(ERROR_PREFIX + "InProgress", "In Progress")

    @classmethod
    def busy(cls) -> BluezError:
        return cls(ERROR_PREFIX + "InProgress", "Operation already in progress")

    @classmethod
    def not_permitted(cls, text: str) -> BluezError:
        return cls(ERROR_PREFIX + "NotPermitted", text)

    @classmethod
    def not_authorized(cls) -> BluezError:
        return cls(ERROR_PREFIX + "NotAuthorized", "Operation Not Authorized")

    @classmethod
    def not_supported(cls) -> BluezError:
        return cls(ERROR_PREFIX + "NotSupported", "Operation is not supported")

    @classmethod
    def not_connected(cls) -> BluezError:
        return cls(ERROR_PREFIX + "NotConnected", "Not Connected")

    @classmethod
    def already_connected(cls) -> BluezError:
        return cls(ERROR_PREFIX + "AlreadyConnected", "Already Connected")

    @classmethod
    def already_exists(cls) -> BluezError:
        return cls(ERROR_PREFIX + "AlreadyExists", "Already Exists")

    @classmethod
    def does_not_exist(cls, text: str = "Does Not Exist") -> BluezError:
        return cls(ERROR_PREFIX + "DoesNotExist", text)

    @classmethod
    def invalid_args(cls, text: str = "Invalid arguments in method call") -> BluezError:
        return cls(ERROR_PREFIX + "InvalidArguments", text)

    @classmethod
    def not_ready(cls) -> BluezError:
        return cls(ERROR_PREFIX + "NotReady", "Resource Not Ready")

    @classmethod
    def authentication(cls, outcome: str) -> BluezError:
        """``outcome`` is Failed, Rejected, Canceled or Timeout (bonding status mapping)."""
        return cls(ERROR_PREFIX + f"Authentication{outcome}", f"Authentication {outcome}")


class AttError(SimulatorError):
    """An ATT error response from a peripheral (Core Vol 3 Part F 3.4.1.1 codes, app 0x80-0x9F)."""

    def __init__(self, code: int, reason: str = "") -> None:
        if not 0 < code <= 0xFF:
            raise ValueError(f"ATT error code out of range: {code:#x}")
        self.code = code
        self.reason = reason
        super().__init__(f"ATT error {code:#04x}" + (f": {reason}" if reason else ""))

    def to_bluez(self) -> BluezError:
        """The reply bluetoothd sends for this ATT error (``create_gatt_dbus_error``)."""
        code = self.code
        if code == ATT_READ_NOT_PERMITTED:
            return BluezError.not_permitted("Read not permitted")
        if code == ATT_WRITE_NOT_PERMITTED:
            return BluezError.not_permitted("Write not permitted")
        if code in (ATT_INSUFFICIENT_AUTHENTICATION, ATT_INSUFFICIENT_ENCRYPTION, 0x0C):
            return BluezError.not_permitted("Not paired")
        if code == ATT_INVALID_OFFSET:
            return BluezError.invalid_args("Invalid offset")
        if code == ATT_INVALID_ATTRIBUTE_VALUE_LENGTH:
            return BluezError.invalid_args("Invalid Length")
        if code == ATT_INSUFFICIENT_AUTHORIZATION:
            return BluezError.not_authorized()
        if code == ATT_REQUEST_NOT_SUPPORTED:
            return BluezError.not_supported()
        return BluezError.failed(f"Operation failed with ATT error: {code:#04x}")


# ATT error codes the simulator raises by name (Core Vol 3 Part F 3.4.1.1; CSS Part B 1.2).
ATT_READ_NOT_PERMITTED: Final = 0x02
ATT_WRITE_NOT_PERMITTED: Final = 0x03
ATT_INSUFFICIENT_AUTHENTICATION: Final = 0x05
ATT_REQUEST_NOT_SUPPORTED: Final = 0x06
ATT_INVALID_OFFSET: Final = 0x07
ATT_INSUFFICIENT_AUTHORIZATION: Final = 0x08
ATT_INVALID_ATTRIBUTE_VALUE_LENGTH: Final = 0x0D
ATT_UNLIKELY_ERROR: Final = 0x0E
ATT_INSUFFICIENT_ENCRYPTION: Final = 0x0F
ATT_VALUE_NOT_ALLOWED: Final = 0x13
# Application errors: GLS 1.0 uses 0x80/0x81; newer services use the common 0xFE/0xFD.
ATT_GLS_PROCEDURE_IN_PROGRESS: Final = 0x80
ATT_GLS_CCCD_IMPROPERLY_CONFIGURED: Final = 0x81
ATT_CCCD_IMPROPERLY_CONFIGURED: Final = 0xFD
ATT_PROCEDURE_IN_PROGRESS: Final = 0xFE
