"""Where the device sides put what they collected: the outbox, with the log lines that say so.

The BLE side and the station side receive a :class:`Sink` (and the binder, and the outbox for
device state) instead of the whole gateway, so ``gateway.ble``, ``gateway.session`` and
``gateway.stations`` import nothing from ``gateway.service``: the service wires them, never
the other way round.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from gateway.errors import OutboxError
from gateway.outbox import DeviceUpdate, Outbox
from gateway.pipeline import Prepared

logger = logging.getLogger(__name__)


class Sink:
    """Durable writes of prepared readings and device-state changes into the outbox."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def store(
        self, prepared: Sequence[Prepared], *, devices: Sequence[DeviceUpdate] = ()
    ) -> None:
        """Write readings (and device-state changes) durably. Raises :class:`OutboxFull`.

        Dead letters are logged here, at WARNING, with where they came from and the raw hex.
        """
        for p in prepared:
            if p.dead_letter is not None:
                logger.warning(
                    "dead letter from %s (%s): %s; raw %s",
                    p.dead_letter.origin,
                    p.dead_letter.source,
                    p.dead_letter.reason,
                    p.dead_letter.raw_hex,
                )
            elif p.reading.binding is None and p.decision is not None:
                logger.info(
                    "unbound reading %s from %s: %s",
                    p.reading.id,
                    p.reading.device.id,
                    p.decision.reason,
                )
        dropped = await self.outbox.add(
            [p.entry for p in prepared],
            devices=devices,
            dead_letters=[p.dead_letter for p in prepared if p.dead_letter is not None],
        )
        if dropped:
            logger.error(
                "outbox full: dropped the %d oldest unsent readings (policy drop_oldest); "
                "the central side has not acknowledged for too long",
                dropped,
            )

    async def note(self, device_id: str, **fields: Any) -> None:
        """Record what we learnt about a device; never fails the caller (it is bookkeeping)."""
        with contextlib.suppress(OutboxError):
            await self.outbox.update_devices([DeviceUpdate(device_id, **fields)])


__all__ = ["Sink"]
