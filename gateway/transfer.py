"""Pure pieces of the BLE transfer procedures: record assembly and the glucose sequence mark.

* :class:`RecordAssembler` turns the stream of notifications/indications of one session into
  records, the unit ``devices.records.decode_record`` takes: a blood-pressure or weight
  measurement alone; a glucose measurement with the context it announces (flags bit 4, joined
  on the sequence number, ble-profiles.md §4.2); the packets of a multi-packet body-composition
  record (flags bit 12; a packet carrying the time stamp or user ID starts a new record,
  ble-profiles.md §5.2). A repeated consecutive glucose notification with the same sequence
  number is dropped (Tidepool "skipping double entry").
* :func:`plan_glucose` decides the RACP request from the stored high-water mark, and
  :func:`is_new` filters records against it with serial-number arithmetic (RFC 1982), so the
  wrap 65535 → 0 is not mistaken for old data and a memory reset is noticed (§7.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from devices.gatt import racp
from devices.uuids import (
    BLOOD_PRESSURE_MEASUREMENT,
    BODY_COMPOSITION_MEASUREMENT,
    GLUCOSE_MEASUREMENT,
    GLUCOSE_MEASUREMENT_CONTEXT,
    WEIGHT_MEASUREMENT,
)

Record = tuple[tuple[str, bytes], ...]

SEQUENCE_MODULUS = 1 << 16
_HALF = SEQUENCE_MODULUS // 2

_GLUCOSE_CONTEXT_FOLLOWS = 0x10
_BCS_TIME_STAMP = 0x0002
_BCS_USER_ID = 0x0004
_BCS_MULTIPLE_PACKET = 0x1000


def glucose_sequence(data: bytes) -> int | None:
    """The sequence number of a 0x2A18 or 0x2A34 value (bytes 1-2), or None when too short."""
    return int.from_bytes(data[1:3], "little") if len(data) >= 3 else None


class RecordAssembler:
    """Feed values in received order; complete records come out of :meth:`feed`/:meth:`flush`."""

    def __init__(self) -> None:
        self._held: list[tuple[str, bytes]] = []  # a glucose measurement awaiting its context
        self._packets: list[tuple[str, bytes]] = []  # multi-packet body composition
        self._last_glucose: bytes | None = None

    def feed(self, uuid: str, data: bytes) -> list[Record]:
        out: list[Record] = []
        if uuid == GLUCOSE_MEASUREMENT_CONTEXT:
            if self._held and glucose_sequence(self._held[0][1]) == glucose_sequence(data):
                out.append((*self._held, (uuid, data)))
                self._held = []
            else:
                out.extend(self.flush())
                out.append(((uuid, data),))  # orphan context: decode_record dead-letters it
            return out
        if uuid == GLUCOSE_MEASUREMENT:
            if data == self._last_glucose:
                return out  # the same notification twice in a row
            self._last_glucose = data
            out.extend(self.flush())
            if len(data) >= 1 and data[0] & _GLUCOSE_CONTEXT_FOLLOWS:
                self._held = [(uuid, data)]
            else:
                out.append(((uuid, data),))
            return out
        if uuid == BODY_COMPOSITION_MEASUREMENT and len(data) >= 2:
            flags = int.from_bytes(data[:2], "little")
            if flags & _BCS_MULTIPLE_PACKET:
                if self._packets and flags & (_BCS_TIME_STAMP | _BCS_USER_ID):
                    out.extend(self._flush_packets())
                out.extend(self._flush_held())
                self._packets.append((uuid, data))
                return out
        out.extend(self.flush())
        out.append(((uuid, data),))
        return out

    def _flush_held(self) -> list[Record]:
        held, self._held = self._held, []
        return [tuple(held)] if held else []

    def _flush_packets(self) -> list[Record]:
        packets, self._packets = self._packets, []
        return [tuple(packets)] if packets else []

    def flush(self) -> list[Record]:
        """Whatever is still held (end of the transfer, idle, or a value of another record)."""
        return [*self._flush_held(), *self._flush_packets()]


RECORD_CHARACTERISTICS = (
    BLOOD_PRESSURE_MEASUREMENT,
    GLUCOSE_MEASUREMENT,
    GLUCOSE_MEASUREMENT_CONTEXT,
    WEIGHT_MEASUREMENT,
    BODY_COMPOSITION_MEASUREMENT,
)


# --- glucose sequence numbers ---------------------------------------------------------------


def is_new(sequence: int, mark: int | None) -> bool:
    """True when ``sequence`` comes after ``mark`` in serial-number order (RFC 1982)."""
    if mark is None:
        return True
    distance = (sequence - mark) % SEQUENCE_MODULUS
    return 0 < distance < _HALF


class Plan(StrEnum):
    ALL = "all"  # first sync, or after a memory reset: report all records
    CHECK = "check"  # verify the mark record is still the one we stored, then ask for more
    FROM = "from"  # report records with sequence >= mark + 1


@dataclass(frozen=True, slots=True)
class Mark:
    """The newest glucose record stored for a device: its sequence number and its bytes.

    The bytes (sequence, base time, value, ...) tell the same record from a new one that got
    the same number after a memory reset (§7.3: "sequence alone is not enough after a reset").
    """

    sequence: int
    record: str | None  # hex of that record's 0x2A18 value


def plan_glucose(mark: Mark | None) -> Plan:
    return Plan.ALL if mark is None else Plan.CHECK


def check_request(mark: Mark) -> bytes:
    """``01 04 01 <mark> <mark>``: report the record at the mark (within range mark..mark)."""
    return racp.encode_racp(
        racp.RacpRequest(
            racp.OpCode.REPORT_STORED_RECORDS,
            racp.Operator.WITHIN_RANGE,
            racp.FILTER_SEQUENCE_NUMBER,
            min_sequence=mark.sequence,
            max_sequence=mark.sequence,
        )
    )


def continue_request(mark: Mark) -> bytes:
    """After a good check: records after the mark (all, filtered, when the next number wraps)."""
    following = mark.sequence + 1
    if following >= SEQUENCE_MODULUS:
        return racp.report_all_records()
    return racp.report_records_from(following)


def mark_still_valid(mark: Mark, found: Sequence[tuple[int, bytes]]) -> bool:
    """The check found the very record we stored last (same number, same bytes)."""
    for sequence, data in found:
        if sequence == mark.sequence:
            return mark.record is None or data.hex() == mark.record
    return False
