"""Pure transfer pieces: record assembly and the glucose mark (ble-profiles.md §4, §5.2, §7.3)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from devices.uuids import (
    BLOOD_PRESSURE_MEASUREMENT,
    BODY_COMPOSITION_MEASUREMENT,
    GLUCOSE_MEASUREMENT,
    GLUCOSE_MEASUREMENT_CONTEXT,
    WEIGHT_MEASUREMENT,
)
from gateway.transfer import (
    Mark,
    RecordAssembler,
    check_request,
    continue_request,
    is_new,
    mark_still_valid,
)

# Glucose measurement flags 0x12 (concentration + context follows), sequence 7, then the rest.
GLUCOSE_7 = bytes.fromhex("120700e80705140a1e0069b011")
GLUCOSE_7_NO_CONTEXT = bytes.fromhex("020700e80705140a1e0069b011")
CONTEXT_7 = bytes.fromhex("02070003")  # flags: meal; sequence 7; meal 3 (fasting)
CONTEXT_8 = bytes.fromhex("02080003")
BP = bytes.fromhex("00800052006100")
# Body composition flags 0x1006 (time stamp, user id, multiple packet) and 0x1000 (continuation)
BCS_FIRST = bytes.fromhex("0610" + "f401" + "e807050e071e00" + "01")
BCS_NEXT = bytes.fromhex("0010" + "f401")


def test_racp_requests_are_the_spec_bytes() -> None:
    # ble-profiles.md §4.4: "report all records with seq >= 10" is 01 03 01 0A 00
    assert continue_request(Mark(9, None)) == bytes.fromhex("0103010a00")
    # within range (operator 4) of sequence numbers (filter type 1), both bounds the mark
    assert check_request(Mark(0x1234, None)) == bytes.fromhex("01040134123412")
    # the number after 65535 is 0: ask for everything and filter with serial arithmetic
    assert continue_request(Mark(0xFFFF, None)) == bytes.fromhex("0101")


def test_serial_number_order_across_the_wrap() -> None:
    assert is_new(1, None)
    assert is_new(10, 9)
    assert not is_new(9, 9)
    assert not is_new(8, 9)
    assert is_new(0, 65535)
    assert is_new(5, 65530)
    assert not is_new(65530, 5)


@given(mark=st.integers(0, 65535), step=st.integers(1, 32767))
def test_the_next_numbers_are_always_new_and_the_earlier_ones_never(mark: int, step: int) -> None:
    assert is_new((mark + step) % 65536, mark)
    assert not is_new((mark - step) % 65536, mark)


def test_mark_validity_compares_the_stored_bytes() -> None:
    mark = Mark(7, GLUCOSE_7.hex())
    assert mark_still_valid(mark, [(7, GLUCOSE_7)])
    assert not mark_still_valid(mark, [(7, GLUCOSE_7_NO_CONTEXT)])  # renumbered after a reset
    assert not mark_still_valid(mark, [])


def test_glucose_measurement_waits_for_its_context() -> None:
    asm = RecordAssembler()
    assert asm.feed(GLUCOSE_MEASUREMENT, GLUCOSE_7) == []
    (record,) = asm.feed(GLUCOSE_MEASUREMENT_CONTEXT, CONTEXT_7)
    assert record == ((GLUCOSE_MEASUREMENT, GLUCOSE_7), (GLUCOSE_MEASUREMENT_CONTEXT, CONTEXT_7))


def test_a_context_for_another_sequence_is_kept_apart() -> None:
    asm = RecordAssembler()
    asm.feed(GLUCOSE_MEASUREMENT, GLUCOSE_7)
    records = asm.feed(GLUCOSE_MEASUREMENT_CONTEXT, CONTEXT_8)
    assert records == [
        ((GLUCOSE_MEASUREMENT, GLUCOSE_7),),
        ((GLUCOSE_MEASUREMENT_CONTEXT, CONTEXT_8),),
    ]


def test_a_repeated_glucose_notification_is_dropped() -> None:
    asm = RecordAssembler()
    assert asm.feed(GLUCOSE_MEASUREMENT, GLUCOSE_7_NO_CONTEXT) == [
        ((GLUCOSE_MEASUREMENT, GLUCOSE_7_NO_CONTEXT),)
    ]
    assert asm.feed(GLUCOSE_MEASUREMENT, GLUCOSE_7_NO_CONTEXT) == []


def test_single_value_records() -> None:
    asm = RecordAssembler()
    assert asm.feed(BLOOD_PRESSURE_MEASUREMENT, BP) == [((BLOOD_PRESSURE_MEASUREMENT, BP),)]
    assert asm.feed(WEIGHT_MEASUREMENT, b"\x00\xb06") == [((WEIGHT_MEASUREMENT, b"\x00\xb06"),)]


def test_multi_packet_body_composition_is_grouped_per_record() -> None:
    asm = RecordAssembler()
    assert asm.feed(BODY_COMPOSITION_MEASUREMENT, BCS_FIRST) == []
    assert asm.feed(BODY_COMPOSITION_MEASUREMENT, BCS_NEXT) == []
    # the next record's first packet (time stamp / user id) closes the previous one
    (first,) = asm.feed(BODY_COMPOSITION_MEASUREMENT, BCS_FIRST)
    assert first == (
        (BODY_COMPOSITION_MEASUREMENT, BCS_FIRST),
        (BODY_COMPOSITION_MEASUREMENT, BCS_NEXT),
    )
    (second,) = asm.flush()
    assert second == ((BODY_COMPOSITION_MEASUREMENT, BCS_FIRST),)


def test_a_weight_after_packets_closes_the_body_composition_record() -> None:
    asm = RecordAssembler()
    asm.feed(BODY_COMPOSITION_MEASUREMENT, BCS_FIRST)
    records = asm.feed(WEIGHT_MEASUREMENT, b"\x00\xb06")
    assert records == [
        ((BODY_COMPOSITION_MEASUREMENT, BCS_FIRST),),
        ((WEIGHT_MEASUREMENT, b"\x00\xb06"),),
    ]
