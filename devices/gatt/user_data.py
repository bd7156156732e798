"""User Data Service 0x181C (UDS), ble-profiles.md §5.3: multi-user scales and BLS 1.1 monitors.

User Index 0x2A9A (read): uint8, 255 = unknown user.
Database Change Increment 0x2A99 (read/write/notify): uint32.

User Control Point 0x2A9F (write + indicate), both directions::

    op    request                 operand
    0x01  register new user       consent code (uint16, 0..9999)
    0x02  consent                 user index (uint8) + consent code (uint16, 0..9999)
    0x03  delete user data        none (the current user)
    0x04  list all users          none (later UDS, optional)
    0x05  delete user(s)          user index (uint8; 255 = all) (later UDS, optional)
    0x20  response code           request op code (uint8), response value (uint8), parameters

    response values: 1 success, 2 op code not supported, 3 invalid parameter,
                     4 operation failed (openScale: "slots full"), 5 user not authorized
                     (wrong consent code); others raw
    parameters: after a successful "register new user", the new user index (uint8)

A centre gateway maps one resident to one (device, user index, consent code) and keeps the
consent code secret. Sources: openScale, Spezi ``UserControlPoint``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from struct import pack, unpack_from

from devices.errors import EncodeError
from devices.gatt._common import check_uint, fail
from devices.uuids import DATABASE_CHANGE_INCREMENT, USER_CONTROL_POINT, USER_INDEX

UNKNOWN_USER = 0xFF
MAX_CONSENT_CODE = 9999


class UcpOpCode(IntEnum):
    """User Control Point op codes."""

    REGISTER_NEW_USER = 0x01
    CONSENT = 0x02
    DELETE_USER_DATA = 0x03
    LIST_ALL_USERS = 0x04
    DELETE_USERS = 0x05
    RESPONSE_CODE = 0x20


RESPONSE_NAMES: dict[int, str] = {
    1: "success",
    2: "op_code_not_supported",
    3: "invalid_parameter",
    4: "operation_failed",
    5: "user_not_authorized",
}
SUCCESS = 1


@dataclass(frozen=True, slots=True)
class UserIndex:
    """0x2A9A."""

    user_index: int


@dataclass(frozen=True, slots=True)
class DatabaseChangeIncrement:
    """0x2A99 (uint32): bumped whenever the current user's data changes."""

    value: int


@dataclass(frozen=True, slots=True)
class UcpRequest:
    """A request the gateway writes; ``parameter`` keeps the operand of an unknown op code."""

    op_code: int
    user_index: int | None = None
    consent_code: int | None = None
    parameter: bytes = b""


@dataclass(frozen=True, slots=True)
class UcpResponse:
    """0x20 indicated by the device; ``user_index`` is filled for register-new-user success."""

    request_op_code: int
    response_value: int
    user_index: int | None = None
    parameter: bytes = b""

    @property
    def name(self) -> str | None:
        """cli-decode.md's response name, None for reserved values."""
        return RESPONSE_NAMES.get(self.response_value)


UcpValue = UcpRequest | UcpResponse


def decode_user_index(data: bytes) -> UserIndex:
    """Decode 0x2A9A."""
    if not data:
        raise fail(USER_INDEX, data, "needs 1 byte (uint8 user index), got 0")
    return UserIndex(data[0])


def encode_user_index(value: UserIndex) -> bytes:
    """The 0x2A9A payload."""
    return bytes([check_uint(value.user_index, 8, "user index")])


def decode_database_change_increment(data: bytes) -> DatabaseChangeIncrement:
    """Decode 0x2A99."""
    if len(data) < 4:
        raise fail(DATABASE_CHANGE_INCREMENT, data, f"needs 4 bytes (uint32), got {len(data)}")
    return DatabaseChangeIncrement(int.from_bytes(data[:4], "little"))


def encode_database_change_increment(value: DatabaseChangeIncrement) -> bytes:
    """The 4 bytes of 0x2A99."""
    return pack("<I", check_uint(value.value, 32, "database change increment"))


def _consent(data: bytes, offset: int) -> int:
    (code,) = unpack_from("<H", data, offset)
    if code > MAX_CONSENT_CODE:
        raise fail(USER_CONTROL_POINT, data, f"consent code {code} is outside 0..9999")
    return int(code)


def decode_user_control_point(data: bytes) -> UcpValue:
    """Decode a 0x2A9F value in either direction; raises :class:`DecodeError`."""
    uuid = USER_CONTROL_POINT
    if not data:
        raise fail(uuid, data, "needs at least the op code (1 byte), got 0")
    op = data[0]
    n = len(data)
    if op == UcpOpCode.REGISTER_NEW_USER:
        if n < 3:
            raise fail(
                uuid, data, f"register new user needs a uint16 consent code: 3 bytes, got {n}"
            )
        return UcpRequest(op, consent_code=_consent(data, 1))
    if op == UcpOpCode.CONSENT:
        if n < 4:
            raise fail(
                uuid,
                data,
                f"consent needs a user index and a uint16 consent code: 4 bytes, got {n}",
            )
        return UcpRequest(op, user_index=data[1], consent_code=_consent(data, 2))
    if op in (UcpOpCode.DELETE_USER_DATA, UcpOpCode.LIST_ALL_USERS):
        return UcpRequest(op)
    if op == UcpOpCode.DELETE_USERS:
        if n < 2:
            raise fail(uuid, data, f"delete user(s) needs a user index: 2 bytes, got {n}")
        return UcpRequest(op, user_index=data[1])
    if op == UcpOpCode.RESPONSE_CODE:
        if n < 3:
            raise fail(
                uuid, data, f"a response needs the request op code and a value: 3 bytes, got {n}"
            )
        request, response = data[1], data[2]
        if request == UcpOpCode.REGISTER_NEW_USER and response == SUCCESS:
            if n < 4:
                raise fail(
                    uuid, data, "a successful register-new-user response needs the new user index"
                )
            return UcpResponse(request, response, data[3], bytes(data[4:]))
        return UcpResponse(request, response, parameter=bytes(data[3:]))
    return UcpRequest(op, parameter=bytes(data[1:]))


def encode_user_control_point(value: UcpValue) -> bytes:
    """The 0x2A9F bytes of ``value``; raises :class:`EncodeError` for a missing operand."""
    if isinstance(value, UcpResponse):
        head = bytes(
            [
                UcpOpCode.RESPONSE_CODE,
                check_uint(value.request_op_code, 8, "request op code"),
                check_uint(value.response_value, 8, "response value"),
            ]
        )
        if value.user_index is not None:
            head += bytes([check_uint(value.user_index, 8, "user index")])
        return head + value.parameter
    op = check_uint(value.op_code, 8, "op code")
    if op in (UcpOpCode.REGISTER_NEW_USER, UcpOpCode.CONSENT):
        if value.consent_code is None:
            raise EncodeError(f"UCP op {op:#04x} needs a consent code")
        if not 0 <= value.consent_code <= MAX_CONSENT_CODE:
            raise EncodeError(f"consent code {value.consent_code} is outside 0..9999")
        if op == UcpOpCode.REGISTER_NEW_USER:
            return pack("<BH", op, value.consent_code)
        if value.user_index is None:
            raise EncodeError("consent needs the user index")
        return pack("<BBH", op, check_uint(value.user_index, 8, "user index"), value.consent_code)
    if op == UcpOpCode.DELETE_USERS:
        if value.user_index is None:
            raise EncodeError("delete user(s) needs a user index (255 = all)")
        return bytes([op, check_uint(value.user_index, 8, "user index")])
    if op in (UcpOpCode.DELETE_USER_DATA, UcpOpCode.LIST_ALL_USERS):
        return bytes([op])
    return bytes([op]) + value.parameter


def register_new_user(consent_code: int) -> bytes:
    """``01 <consent LE>``: take a free user slot on the scale."""
    return encode_user_control_point(
        UcpRequest(UcpOpCode.REGISTER_NEW_USER, consent_code=consent_code)
    )


def consent(user_index: int, consent_code: int) -> bytes:
    """``02 <index> <consent LE>``: act as that user for this connection."""
    return encode_user_control_point(
        UcpRequest(UcpOpCode.CONSENT, user_index=user_index, consent_code=consent_code)
    )
