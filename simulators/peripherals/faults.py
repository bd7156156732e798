"""Fault knobs shared by every simulated health device, and the device's own clock.

Faults are plain frozen values; swap them at any time (``device.faults = Faults(...)``),
even while connected: the device reads them at the moment it acts. What each one does is
what a real device does (ble-profiles.md §7, §11):

* ``drop_after``: the link is lost (supervision timeout, ``org.bluez.Reason.Timeout``) after
  this many records of a transfer. Records not confirmed stay in memory and are sent again.
* ``truncate``: the records at these transfer positions (0-based, per session) lose their last
  two bytes, so the flags announce fields the payload no longer has (a strict decoder rejects
  them).
* ``corrupt``: the records at these positions have every byte after the flags inverted: the
  shape stays valid but the values are garbage (plausibility checks must catch them).
* ``resend_all``: the device sends its whole memory every session, never only what is new
  (Silvercrest SBM69, Beurer BM59/BM85): the gateway must deduplicate.
* ``refuse_time_write``: a time write is answered with ATT 0x80 (CTS "data field ignored",
  hass-omron's HEM-6232T log) and the clock stays wrong; the device carries on regardless.
* ``racp_busy``: every RACP write fails with "procedure already in progress" (ATT 0x80 in GLS
  1.0, 0xFE in newer services).
* ``racp_refuse``: RACP requests are answered with this response code instead of being
  served (e.g. 0x08 procedure not completed).

Pairing required, bond lost, a wrong or reset clock, and slow or sparse advertising are not
in :class:`Faults` because they are device state: ``device.require_pairing()``,
``device.forget_bonds()``, ``device.clock`` (``reset()``, ``offset``), and
``device.advertise_sparsely()``.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Final

#: Korea Standard Time: UTC+9 all year (no daylight saving), so a fixed offset is exact.
KST: Final = timezone(timedelta(hours=9), "KST")

#: The epoch many devices restart from after a battery change (ble-profiles.md §6).
RESET_EPOCH: Final = datetime(2000, 1, 1, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Faults:
    """What should go wrong, per device; the default is a well-behaved device."""

    drop_after: int | None = None
    truncate: AbstractSet[int] = field(default_factory=frozenset)
    corrupt: AbstractSet[int] = field(default_factory=frozenset)
    resend_all: bool = False
    refuse_time_write: bool = False
    racp_busy: bool = False
    racp_refuse: int | None = None

    def __post_init__(self) -> None:
        if self.drop_after is not None and self.drop_after < 0:
            raise ValueError("drop_after counts records: 0 or more")
        if self.racp_refuse is not None and not 0x02 <= self.racp_refuse <= 0xFF:
            raise ValueError("racp_refuse is an RACP response code other than success")
        object.__setattr__(self, "truncate", frozenset(self.truncate))
        object.__setattr__(self, "corrupt", frozenset(self.corrupt))

    def mangle(self, position: int, payload: bytes, *, flags_len: int = 1) -> bytes:
        """The bytes actually sent for the record at ``position`` of this transfer."""
        if position in self.corrupt:
            payload = payload[:flags_len] + bytes(b ^ 0xFF for b in payload[flags_len:])
        if position in self.truncate:
            payload = payload[: max(flags_len, len(payload) - 2)]
        return payload


def seoul_now() -> datetime:
    """Wall-clock time in Seoul, naive (devices carry no zone)."""
    return datetime.now(KST).replace(tzinfo=None)


class DeviceClock:
    """A device's wall clock: true local time plus an error.

    ``offset`` is how wrong the clock is (``timedelta(minutes=-7)``: seven minutes slow).
    :meth:`reset` is a battery change: the clock restarts at 2000-01-01 00:00 and runs from
    there. :meth:`set` is a host writing the time (CTS or Date Time). ``host_set`` says whether
    a host has set it since the last reset, as Omron's "time not set" advertising bit does.
    """

    def __init__(
        self,
        offset: timedelta = timedelta(0),
        *,
        source: Callable[[], datetime] = seoul_now,
    ) -> None:
        self._source = source
        self.offset = offset
        self.host_set = True

    def now(self) -> datetime:
        """The device's idea of the time, to the second."""
        return (self._source() + self.offset).replace(microsecond=0)

    def set(self, wall: datetime) -> None:
        """A host wrote ``wall`` as the current time."""
        self.offset = wall - self._source()
        self.host_set = True

    def reset(self, epoch: datetime = RESET_EPOCH) -> None:
        """Battery change: the clock starts again at ``epoch``."""
        self.offset = epoch - self._source()
        self.host_set = False

    @property
    def error(self) -> timedelta:
        """How far the clock is from the true time (positive: fast)."""
        return self.offset
