"""Device clocks against the gateway's NTP clock: pure functions, no I/O, no ``now()``.

Rules (fhir-mapping-and-anchors.md §2.1, ble-profiles.md §6):

* At each connection the gateway reads the device clock *before* setting it, and records the
  offset ``device − gateway`` (both as local wall time: devices carry no zone). Records
  transferred in that session were stamped on the pre-sync timeline, so that offset applies.
* A record on the device's current timeline is mapped to the gateway's timeline by removing
  the offset. Within ``sync_tolerance_s`` the device counts as synchronised and the time is
  kept as is. The raw device time always travels with the reading (ingest builds the PHD
  identifier from it) next to the offset: a time is never relabelled silently.
* Untrusted (the reading is kept and sent, marked ``trusted: false`` with the reason):
  a device clock in a reset epoch (year before ``earliest_year``: 2000-01-01 after a battery
  change, a firmware default year), an unset clock, a clock off by more than ``max_offset_s``,
  a record later than the device's own clock (made before a reset: not on its current
  timeline), a time in the gateway's future, and a stored record with no time at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.config import ClockPolicy


@dataclass(frozen=True, slots=True)
class ClockCheck:
    """The device clock read at one connection. ``device`` is naive wall time or None."""

    device: datetime | None
    gateway: datetime  # aware
    offset_s: float | None  # device − gateway as local wall time; None when not readable
    trusted: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Stamp:
    """Where one record sits on the gateway's timeline.

    ``device_time`` is the raw device time (naive, as sent). ``effective`` is aware and on the
    gateway's timeline, or None when the record cannot be placed. ``corrected`` says the
    offset was applied (effective ≠ raw device time).
    """

    device_time: datetime | None
    effective: datetime | None
    corrected: bool
    trusted: bool
    reason: str


def local_wall(moment: datetime, policy: ClockPolicy) -> datetime:
    """An aware moment as naive wall-clock time in the policy's zone (what a device shows)."""
    if moment.tzinfo is None:
        raise ValueError("gateway times must be timezone-aware")
    return moment.astimezone(ZoneInfo(policy.timezone)).replace(tzinfo=None)


def check_clock(
    device_now: datetime | None, gateway_now: datetime, policy: ClockPolicy
) -> ClockCheck:
    """Judge the device clock read at ``gateway_now`` (aware)."""
    if device_now is None:
        return ClockCheck(None, gateway_now, None, False, "device clock not readable or unset")
    if device_now.tzinfo is not None:
        raise ValueError("device clocks are naive wall time")
    offset = (device_now - local_wall(gateway_now, policy)).total_seconds()
    if device_now.year < policy.earliest_year:
        reason = f"device clock reads {device_now:%Y-%m-%d %H:%M}: reset epoch (battery change?)"
        return ClockCheck(device_now, gateway_now, offset, False, reason)
    if abs(offset) > policy.max_offset_s:
        reason = f"device clock off by {offset:+.0f} s (beyond {policy.max_offset_s:.0f} s)"
        return ClockCheck(device_now, gateway_now, offset, False, reason)
    if abs(offset) <= policy.sync_tolerance_s:
        return ClockCheck(device_now, gateway_now, offset, True, "device clock synchronised")
    return ClockCheck(device_now, gateway_now, offset, True, f"device clock off by {offset:+.1f} s")


def stamp(
    device_time: datetime | None,
    *,
    clock: ClockCheck | None,
    received_at: datetime,
    policy: ClockPolicy,
    live: bool = False,
) -> Stamp:
    """Place one record on the gateway's timeline.

    ``live`` marks a reading measured just now (a station kiosk message, a live-mode cuff):
    without a device time its receive time is its time. A *stored* record without a device
    time cannot be placed and is untrusted.
    """
    zone = ZoneInfo(policy.timezone)
    if device_time is None:
        if live:
            return Stamp(None, received_at, False, True, "live reading: receive time used")
        return Stamp(None, None, False, False, "stored record without a device time")
    if device_time.tzinfo is not None:
        raise ValueError("device times are naive wall time")
    if device_time.year < policy.earliest_year:
        effective = _correct(device_time, clock, policy)
        return Stamp(
            device_time,
            effective.replace(tzinfo=zone) if effective else None,
            clock is not None and clock.offset_s is not None,
            False,
            f"device time {device_time:%Y-%m-%d %H:%M} is in a reset epoch",
        )
    if clock is None or clock.offset_s is None or clock.device is None:
        effective = device_time.replace(tzinfo=zone)
        trusted, reason = _not_in_future(effective, received_at, policy)
        return Stamp(
            device_time,
            effective,
            False,
            trusted,
            reason or "device clock not readable: device time used as sent (set every connection)",
        )
    if (device_time - clock.device).total_seconds() > policy.future_tolerance_s:
        return Stamp(
            device_time,
            None,
            False,
            False,
            "record is later than the device's own clock: made before a clock reset",
        )
    corrected_wall = _correct(device_time, clock, policy)
    assert corrected_wall is not None  # offset known here
    effective = corrected_wall.replace(tzinfo=zone)
    corrected = corrected_wall != device_time
    if not clock.trusted:
        return Stamp(device_time, effective, corrected, False, clock.reason)
    trusted, reason = _not_in_future(effective, received_at, policy)
    if not trusted:
        return Stamp(device_time, effective, corrected, False, reason)
    how = "corrected by the device clock offset" if corrected else "device clock synchronised"
    return Stamp(device_time, effective, corrected, True, how)


def _correct(
    device_time: datetime, clock: ClockCheck | None, policy: ClockPolicy
) -> datetime | None:
    if clock is None or clock.offset_s is None:
        return None
    if abs(clock.offset_s) <= policy.sync_tolerance_s:
        return device_time
    return device_time - timedelta(seconds=clock.offset_s)


def _not_in_future(
    effective: datetime, received_at: datetime, policy: ClockPolicy
) -> tuple[bool, str]:
    ahead = (effective - received_at).total_seconds()
    if ahead > policy.future_tolerance_s:
        return False, f"time is {ahead:.0f} s in the gateway's future"
    return True, ""
