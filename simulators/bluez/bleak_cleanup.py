"""Closing bleak's per-event-loop BlueZ manager before the virtual bus goes away.

bleak keeps one D-Bus manager per event loop and never re-reads BlueZ's objects. When a test
or the demo stops the private bus while that manager is alive, its reader task fails with
EOFError ("Future exception was never retrieved"); closing it first keeps shutdown quiet.
"""

from __future__ import annotations

import asyncio
import contextlib


async def close_bleak_manager() -> None:
    """Close bleak's BlueZ manager of the running loop, if anything in this loop made one."""
    with contextlib.suppress(ImportError):
        from bleak.backends.bluezdbus import manager as bleak_manager

        instance = bleak_manager._global_instances.pop(asyncio.get_running_loop(), None)
        watcher = getattr(instance, "_bus_watcher_task", None)
        if watcher is not None:  # first, so it does not report the bus as lost
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        bus = getattr(instance, "_bus", None)
        if bus is not None:
            # The watcher awaited the bus's disconnect future, so cancelling it cancelled
            # that future: wait for the socket to close by polling instead.
            bus.disconnect()
            for _ in range(100):
                if not bus.connected:
                    break
                await asyncio.sleep(0.001)
