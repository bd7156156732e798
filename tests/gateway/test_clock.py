"""Device clocks (fhir-mapping-and-anchors.md §2.1, ble-profiles.md §6): offsets worked by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.clock import check_clock, stamp
from gateway.config import ClockPolicy

POLICY = ClockPolicy()  # Asia/Seoul, sync 2 s, max offset 300 s, earliest year 2020
KST = timezone(timedelta(hours=9))
# 2026-03-04 10:00:00 in Seoul is 01:00:00 UTC.
GATEWAY_NOW = datetime(2026, 3, 4, 1, 0, 0, tzinfo=UTC)


def test_offset_is_device_minus_gateway_local_wall_time() -> None:
    # The device shows 09:54:00 while Seoul is at 10:00:00: it is 360 s behind.
    check = check_clock(datetime(2026, 3, 4, 9, 54, 0), GATEWAY_NOW, POLICY)
    assert check.offset_s == -360.0
    assert check.trusted is False  # beyond the 300 s bound
    assert "-360" in check.reason


def test_small_offset_is_trusted_and_corrected() -> None:
    check = check_clock(datetime(2026, 3, 4, 10, 1, 30), GATEWAY_NOW, POLICY)
    assert (check.offset_s, check.trusted) == (90.0, True)
    # A record the device stamped 09:31:30 was measured at 09:30:00 Seoul time.
    s = stamp(datetime(2026, 3, 4, 9, 31, 30), clock=check, received_at=GATEWAY_NOW, policy=POLICY)
    assert s.effective == datetime(2026, 3, 4, 9, 30, 0, tzinfo=KST)
    assert s.corrected
    assert s.trusted
    assert s.device_time == datetime(2026, 3, 4, 9, 31, 30)  # the raw time travels on


def test_synchronised_clock_keeps_the_time_as_is() -> None:
    check = check_clock(datetime(2026, 3, 4, 10, 0, 1), GATEWAY_NOW, POLICY)
    s = stamp(datetime(2026, 3, 4, 9, 0, 0), clock=check, received_at=GATEWAY_NOW, policy=POLICY)
    assert s.effective == datetime(2026, 3, 4, 9, 0, 0, tzinfo=KST)
    assert not s.corrected
    assert s.trusted


def test_year_2000_after_a_battery_change_is_not_trusted() -> None:
    check = check_clock(datetime(2000, 1, 1, 0, 12, 0), GATEWAY_NOW, POLICY)
    assert check.trusted is False
    assert "reset epoch" in check.reason
    s = stamp(datetime(2000, 1, 1, 0, 5, 0), clock=check, received_at=GATEWAY_NOW, policy=POLICY)
    assert s.trusted is False
    # Still mapped onto the gateway's timeline through the offset (7 minutes before now).
    assert s.effective == datetime(2026, 3, 4, 9, 53, 0, tzinfo=KST)


def test_record_from_before_a_clock_reset_is_not_on_the_current_timeline() -> None:
    check = check_clock(datetime(2000, 1, 1, 0, 12, 0), GATEWAY_NOW, POLICY)
    s = stamp(datetime(2026, 2, 28, 8, 0, 0), clock=check, received_at=GATEWAY_NOW, policy=POLICY)
    assert s.effective is None
    assert not s.trusted
    assert "before a clock reset" in s.reason


def test_unreadable_clock_uses_device_time_as_sent_when_plausible() -> None:
    s = stamp(datetime(2026, 3, 4, 9, 0, 0), clock=None, received_at=GATEWAY_NOW, policy=POLICY)
    assert s.effective == datetime(2026, 3, 4, 9, 0, 0, tzinfo=KST)
    assert s.trusted
    assert not s.corrected


def test_future_time_is_not_trusted() -> None:
    s = stamp(datetime(2037, 1, 1, 0, 0, 0), clock=None, received_at=GATEWAY_NOW, policy=POLICY)
    assert not s.trusted
    assert "future" in s.reason


def test_missing_time_live_vs_stored() -> None:
    live = stamp(None, clock=None, received_at=GATEWAY_NOW, policy=POLICY, live=True)
    assert live.effective == GATEWAY_NOW
    assert live.trusted
    stored = stamp(None, clock=None, received_at=GATEWAY_NOW, policy=POLICY)
    assert stored.effective is None
    assert not stored.trusted


def test_unset_clock() -> None:
    check = check_clock(None, GATEWAY_NOW, POLICY)
    assert check.offset_s is None
    assert not check.trusted


def test_naive_gateway_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        check_clock(datetime(2026, 3, 4, 10, 0), datetime(2026, 3, 4, 1, 0), POLICY)


@given(
    offset=st.integers(min_value=-290, max_value=290),
    age=st.integers(min_value=0, max_value=30 * 86400),
)
def test_correction_inverts_the_offset(offset: int, age: int) -> None:
    """A record made `age` s ago on a clock `offset` s off lands exactly `age` s ago."""
    gateway_local = datetime(2026, 3, 4, 10, 0, 0)
    check = check_clock(gateway_local + timedelta(seconds=offset), GATEWAY_NOW, POLICY)
    device_time = gateway_local + timedelta(seconds=offset - age)
    s = stamp(device_time, clock=check, received_at=GATEWAY_NOW, policy=POLICY)
    assert s.trusted
    expected = GATEWAY_NOW - timedelta(seconds=age)
    if abs(offset) <= POLICY.sync_tolerance_s:
        expected += timedelta(seconds=offset)  # within tolerance: kept as the device said
    assert s.effective == expected
