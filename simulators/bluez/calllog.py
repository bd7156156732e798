"""The call log: every D-Bus method call the virtual BlueZ received, in order.

Tests assert on it ("the gateway wrote the time before subscribing", "bleak never called
Disconnect after the cuff hung up"). Entries are recorded on receipt; ``error`` is filled in
when the reply goes out, so a call still running has ``done == False``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Call:
    """One received method call. Mutable only in ``done``/``error``, set at reply time."""

    at: float  # seconds since the service started (event-loop clock)
    sender: str
    path: str
    interface: str
    member: str
    signature: str
    args: tuple[Any, ...] = field(repr=False)
    done: bool = False
    error: str | None = None

    @property
    def name(self) -> str:
        """``Interface1.Member`` without the ``org.bluez.`` / ``org.freedesktop.DBus.`` prefix."""
        short = self.interface.rsplit(".", 1)[-1] if self.interface else "?"
        return f"{short}.{self.member}"


#: The most recent calls kept: a test reads far fewer; a long demo or soak must not grow.
MAX_CALLS = 20_000


class CallLog:
    """The most recent calls (at most ``limit``, the oldest dropped), with filters."""

    def __init__(self, limit: int = MAX_CALLS) -> None:
        self._calls: deque[Call] = deque(maxlen=limit)

    def append(self, call: Call) -> None:
        self._calls.append(call)

    def clear(self) -> None:
        self._calls.clear()

    def __iter__(self) -> Iterator[Call]:
        return iter(list(self._calls))

    def __len__(self) -> int:
        return len(self._calls)

    def find(
        self,
        member: str | None = None,
        *,
        interface: str | None = None,
        path: str | None = None,
        path_prefix: str | None = None,
    ) -> list[Call]:
        """Calls matching every given criterion (``interface`` may be the short name)."""
        found = []
        for call in self._calls:
            if member is not None and call.member != member:
                continue
            if interface is not None and call.interface not in (
                interface,
                f"org.bluez.{interface}",
            ):
                continue
            if path is not None and call.path != path:
                continue
            if path_prefix is not None and not call.path.startswith(path_prefix):
                continue
            found.append(call)
        return found

    def names(self, *, path_prefix: str | None = None) -> list[str]:
        """``Interface.Member`` of each call, optionally only under ``path_prefix``."""
        return [
            c.name for c in self._calls if path_prefix is None or c.path.startswith(path_prefix)
        ]
