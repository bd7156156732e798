"""Record Access Control Point 0x2A52 (GLS, CGMS, BLS 1.1, Omron option service), §4.4.

Value = ``op code (uint8) | operator (uint8) | operand (0..18 bytes)``. The gateway writes
requests with a Write Request; the device answers by indication on the same characteristic.
Both directions decode here.

::

    op    meaning                               operator          operand
    0x01  report stored records                 filter operator   filter
    0x02  delete stored records                 filter operator   filter   (never from a gateway)
    0x03  abort operation                       0x00 null         none
    0x04  report number of stored records       filter operator   filter
    0x05  number of stored records response     0x00 null         uint16 count
    0x06  response code                         0x00 null         request op (uint8), code (uint8)
    0x10  Omron: report latest sequence number  0x00 null         none
    0x11  Omron: latest sequence number         0x00 null         uint16

    operators: 0 null, 1 all records, 2 less or equal, 3 greater or equal, 4 within range
               (inclusive), 5 first (oldest), 6 last (most recent)
    filter:    filter type (uint8) then one value (operators 2, 3) or two (operator 4);
               type 1 = sequence number (uint16), type 2 = user-facing time (Date Time, 7 bytes)
    response codes: 1 success, 2 op code not supported, 3 invalid operator, 4 operator not
               supported, 5 invalid operand, 6 no records found (the normal end of a delta
               sync), 7 abort unsuccessful, 8 procedure not completed, 9 operand not supported;
               other codes are returned raw and are failures.

Examples: ``01 01`` report all; ``01 03 01 0A 00`` report records with sequence ≥ 10;
``04 01`` count all → ``05 00 <uint16>``; ``06 00 01 01`` success; ``06 00 01 06`` no records.

Strict: a response (0x05, 0x06, 0x11) or an abort with an operator other than Null, or with an
operand longer or shorter than its own, is an error; so is an operator outside 1-6 for op codes
1, 2, 4, a reserved filter type, and any operand length its operator does not announce (CGMS's
filter type 1, the time offset, is a uint16 like GLS's sequence number). Op codes these
profiles do not define (0x07/0x08 of newer RACP text) are returned raw with their operand.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from struct import pack, unpack_from

from devices.errors import DecodeError, EncodeError
from devices.gatt._common import check_uint, fail
from devices.ieee11073 import DateTime, decode_date_time, encode_date_time
from devices.uuids import RECORD_ACCESS_CONTROL_POINT as _UUID


class OpCode(IntEnum):
    """RACP op codes (0x07/0x08 from newer RACP text are decoded raw)."""

    REPORT_STORED_RECORDS = 0x01
    DELETE_STORED_RECORDS = 0x02
    ABORT_OPERATION = 0x03
    REPORT_NUMBER_OF_RECORDS = 0x04
    NUMBER_OF_RECORDS_RESPONSE = 0x05
    RESPONSE_CODE = 0x06
    OMRON_REPORT_LATEST_SEQUENCE = 0x10
    OMRON_LATEST_SEQUENCE_RESPONSE = 0x11


class Operator(IntEnum):
    """RACP operators."""

    NULL = 0x00
    ALL_RECORDS = 0x01
    LESS_OR_EQUAL = 0x02
    GREATER_OR_EQUAL = 0x03
    WITHIN_RANGE = 0x04
    FIRST_RECORD = 0x05
    LAST_RECORD = 0x06


FILTER_SEQUENCE_NUMBER = 0x01
FILTER_USER_FACING_TIME = 0x02

RESPONSE_NAMES: dict[int, str] = {
    1: "success",
    2: "op_code_not_supported",
    3: "invalid_operator",
    4: "operator_not_supported",
    5: "invalid_operand",
    6: "no_records_found",
    7: "abort_unsuccessful",
    8: "procedure_not_completed",
    9: "operand_not_supported",
}
SUCCESS = 1
NO_RECORDS_FOUND = 6

_FILTERED_OPS = frozenset({0x01, 0x02, 0x04})
# op codes whose operator is always 0x00 (Null)
_NULL_OPERATOR = frozenset({0x03, 0x05, 0x06, 0x10, 0x11})


@dataclass(frozen=True, slots=True)
class RacpRequest:
    """A request the gateway writes (op codes 1-4, 0x10, or an unknown op with raw operand).

    Sequence filters fill ``min_sequence``/``max_sequence``; time filters ``min_time``/
    ``max_time``; an operand we cannot interpret is kept in ``operand``.
    """

    op_code: int
    operator: int = Operator.NULL
    filter_type: int | None = None
    min_sequence: int | None = None
    max_sequence: int | None = None
    min_time: DateTime | None = None
    max_time: DateTime | None = None
    operand: bytes = b""


@dataclass(frozen=True, slots=True)
class RacpNumberOfRecords:
    """0x05: the device's answer to 'report number of stored records'."""

    count: int


@dataclass(frozen=True, slots=True)
class RacpResponse:
    """0x06: the end of a procedure; ``success`` and ``no_records_found`` both end a sync."""

    request_op_code: int
    response_code: int

    @property
    def name(self) -> str | None:
        """The response name of cli-decode.md, None for reserved codes."""
        return RESPONSE_NAMES.get(self.response_code)

    @property
    def completed(self) -> bool:
        """True when the procedure ended normally (success or no records found)."""
        return self.response_code in (SUCCESS, NO_RECORDS_FOUND)


@dataclass(frozen=True, slots=True)
class RacpLatestSequence:
    """0x11 (Omron extension): the sequence number of the latest record."""

    sequence_number: int


RacpValue = RacpRequest | RacpNumberOfRecords | RacpResponse | RacpLatestSequence


# Which filter values each operator carries: (min, max).
_CARRIED: dict[int, tuple[bool, bool]] = {
    Operator.LESS_OR_EQUAL: (False, True),
    Operator.GREATER_OR_EQUAL: (True, False),
    Operator.WITHIN_RANGE: (True, True),
}


def _exact(data: bytes, needed: int, what: str) -> None:
    if len(data) != needed:
        raise fail(_UUID, data, f"{what} is exactly {needed} bytes, got {len(data)}")


def decode_racp(data: bytes) -> RacpValue:
    """Decode a 0x2A52 value in either direction; raises :class:`DecodeError`.

    Spec-strict (GLS 1.0 §3.3.3, CGMS 1.0.1 §3.4): the responses and the abort carry operator
    0x00 (Null) and exactly their operand; report/delete/count requests carry an operator 1-6
    and exactly the operand it announces. Anything else is an error, never a value.
    """
    if len(data) < 2:
        raise fail(_UUID, data, f"needs an op code and an operator (2 bytes), got {len(data)}")
    op, operator = data[0], data[1]
    if op in _NULL_OPERATOR and operator != Operator.NULL:
        raise fail(
            _UUID, data, f"op code {op:#04x} takes operator 0x00 (Null), got {operator:#04x}"
        )
    if op in (OpCode.NUMBER_OF_RECORDS_RESPONSE, OpCode.OMRON_LATEST_SEQUENCE_RESPONSE):
        _exact(data, 4, f"op code {op:#04x} with its uint16 operand")
        (count,) = unpack_from("<H", data, 2)
        if op == OpCode.NUMBER_OF_RECORDS_RESPONSE:
            return RacpNumberOfRecords(count)
        return RacpLatestSequence(count)
    if op == OpCode.RESPONSE_CODE:
        _exact(data, 4, "a response code (request op code and code)")
        return RacpResponse(data[2], data[3])
    if op in (OpCode.ABORT_OPERATION, OpCode.OMRON_REPORT_LATEST_SEQUENCE):
        _exact(data, 2, f"op code {op:#04x} (no operand)")
        return RacpRequest(op, operator)
    if op not in _FILTERED_OPS:
        return RacpRequest(op, operator, operand=bytes(data[2:]))
    if not Operator.ALL_RECORDS <= operator <= Operator.LAST_RECORD:
        raise fail(
            _UUID,
            data,
            f"operator {operator:#04x} is not allowed with op code {op:#04x} (1-6 are)",
        )
    carried = _CARRIED.get(operator)
    if carried is None:  # all records, first, last: no operand
        _exact(data, 2, f"op code {op:#04x} with operator {operator}")
        return RacpRequest(op, operator)
    if len(data) < 3:
        raise fail(
            _UUID, data, f"operator {operator} announces a filter but the filter type is missing"
        )
    filter_type = data[2]
    count = carried.count(True)
    if filter_type == FILTER_SEQUENCE_NUMBER:
        needed = 3 + 2 * count
        if len(data) != needed:
            raise fail(
                _UUID,
                data,
                f"operator {operator} with a sequence-number filter is exactly {needed} bytes, "
                f"got {len(data)}",
            )
        values = unpack_from(f"<{count}H", data, 3)
        low = values[0] if carried[0] else None
        high = values[-1] if carried[1] else None
        return RacpRequest(op, operator, filter_type, low, high)
    if filter_type == FILTER_USER_FACING_TIME:
        needed = 3 + 7 * count
        if len(data) != needed:
            raise fail(
                _UUID,
                data,
                f"operator {operator} with a user-facing-time filter is exactly {needed} bytes, "
                f"got {len(data)}",
            )
        try:
            times = [decode_date_time(data, 3 + 7 * i) for i in range(count)]
        except DecodeError as exc:
            raise exc.for_characteristic(_UUID, data) from None
        return RacpRequest(
            op,
            operator,
            filter_type,
            min_time=times[0] if carried[0] else None,
            max_time=times[-1] if carried[1] else None,
        )
    raise fail(
        _UUID, data, f"filter type {filter_type:#04x} is reserved (1 sequence number, 2 time)"
    )


def encode_racp(value: RacpValue) -> bytes:
    """The 0x2A52 bytes of ``value``; raises :class:`EncodeError` for an incomplete filter."""
    if isinstance(value, RacpNumberOfRecords):
        return pack(
            "<BBH", OpCode.NUMBER_OF_RECORDS_RESPONSE, 0, check_uint(value.count, 16, "count")
        )
    if isinstance(value, RacpLatestSequence):
        return pack(
            "<BBH",
            OpCode.OMRON_LATEST_SEQUENCE_RESPONSE,
            0,
            check_uint(value.sequence_number, 16, "sequence number"),
        )
    if isinstance(value, RacpResponse):
        return bytes(
            [
                OpCode.RESPONSE_CODE,
                0,
                check_uint(value.request_op_code, 8, "request op code"),
                check_uint(value.response_code, 8, "response code"),
            ]
        )
    head = bytes(
        [check_uint(value.op_code, 8, "op code"), check_uint(value.operator, 8, "operator")]
    )
    carried = _CARRIED.get(value.operator) if value.op_code in _FILTERED_OPS else None
    if carried is None or value.filter_type is None:
        if value.filter_type is not None:
            return head + bytes([check_uint(value.filter_type, 8, "filter type")]) + value.operand
        return head + value.operand
    wanted_min, wanted_max = carried
    if value.filter_type == FILTER_SEQUENCE_NUMBER:
        parts = []
        for wanted, seq, name in (
            (wanted_min, value.min_sequence, "min_sequence"),
            (wanted_max, value.max_sequence, "max_sequence"),
        ):
            if wanted:
                if seq is None:
                    raise EncodeError(f"RACP operator {value.operator} needs {name}")
                parts.append(pack("<H", check_uint(seq, 16, name)))
        return head + bytes([FILTER_SEQUENCE_NUMBER]) + b"".join(parts)
    if value.filter_type == FILTER_USER_FACING_TIME:
        parts = []
        for wanted, when, name in (
            (wanted_min, value.min_time, "min_time"),
            (wanted_max, value.max_time, "max_time"),
        ):
            if wanted:
                if when is None:
                    raise EncodeError(f"RACP operator {value.operator} needs {name}")
                parts.append(encode_date_time(when))
        return head + bytes([FILTER_USER_FACING_TIME]) + b"".join(parts)
    return head + bytes([check_uint(value.filter_type, 8, "filter type")]) + value.operand


# --- the requests a gateway writes (ble-profiles.md §7.3) --------------------------------------


def report_all_records() -> bytes:
    """``01 01``: first sync, or after a sequence reset."""
    return encode_racp(RacpRequest(OpCode.REPORT_STORED_RECORDS, Operator.ALL_RECORDS))


def report_records_from(sequence_number: int) -> bytes:
    """``01 03 01 <seq LE>``: the delta sync from the stored high-water mark + 1."""
    return encode_racp(
        RacpRequest(
            OpCode.REPORT_STORED_RECORDS,
            Operator.GREATER_OR_EQUAL,
            FILTER_SEQUENCE_NUMBER,
            min_sequence=sequence_number,
        )
    )


def report_last_record() -> bytes:
    """``01 06``: the most recent record (BLS 1.1 / Omron, hass-omron)."""
    return encode_racp(RacpRequest(OpCode.REPORT_STORED_RECORDS, Operator.LAST_RECORD))


def report_first_record() -> bytes:
    """``01 05``: the oldest record (TaiDoc DM30b returns its newest for this, xDrip)."""
    return encode_racp(RacpRequest(OpCode.REPORT_STORED_RECORDS, Operator.FIRST_RECORD))


def count_all_records() -> bytes:
    """``04 01``: answered by ``05 00 <uint16>``."""
    return encode_racp(RacpRequest(OpCode.REPORT_NUMBER_OF_RECORDS, Operator.ALL_RECORDS))


def count_records_from(sequence_number: int) -> bytes:
    """``04 03 01 <seq LE>``."""
    return encode_racp(
        RacpRequest(
            OpCode.REPORT_NUMBER_OF_RECORDS,
            Operator.GREATER_OR_EQUAL,
            FILTER_SEQUENCE_NUMBER,
            min_sequence=sequence_number,
        )
    )


def abort_operation() -> bytes:
    """``03 00``: after a transfer timeout."""
    return encode_racp(RacpRequest(OpCode.ABORT_OPERATION, Operator.NULL))
