"""Small helpers shared by the GATT codecs (private)."""

from __future__ import annotations

from collections.abc import Sequence

from devices.errors import DecodeError, EncodeError


def fail(uuid: str, data: bytes, reason: str) -> DecodeError:
    """A :class:`DecodeError` for ``uuid`` carrying the payload hex (raise it)."""
    return DecodeError(uuid, data.hex(), reason)


def require_length(uuid: str, data: bytes, needed: int, what: str) -> None:
    """Raise unless ``data`` holds at least ``needed`` bytes; ``what`` says who needs them."""
    if len(data) < needed:
        raise DecodeError(
            uuid, data.hex(), f"{what} needs {needed} bytes but the payload has {len(data)}"
        )


def bit_names(bits: int, names: Sequence[str | None]) -> tuple[str, ...]:
    """The names of the set bits, in bit order; None entries (reserved bits) are skipped."""
    return tuple(name for i, name in enumerate(names) if name is not None and bits >> i & 1)


def check_uint(value: int, bits: int, what: str) -> int:
    """``value`` when it fits an unsigned field of ``bits`` bits, else :class:`EncodeError`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise EncodeError(f"{what}: {value!r} does not fit an unsigned {bits}-bit field")
    return value
