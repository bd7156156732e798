"""The BLE side: scan the allow-list, connect, sync the clock, transfer, store, release.

bleak on BlueZ, in the habits of bleak and bleak-retry-connector (house-style.md anchor B):

* **Scan** with 128-bit service-UUID filters (the catalogue's services of the registered
  models; bleak compares filter strings literally, so never ``"1810"``) and accept only the
  registered addresses. The scanner stops while a session runs: one connection at a time on
  the adapter, for every device of every station.
* **Connect** with bounded attempts, a backoff chosen by the error's class, and an outer
  safety timeout around each attempt (a stalled stack cannot hang the gateway). Devices the
  catalogue says need a bond are connected with ``pair=True`` (BlueZ pairs once, re-encrypts
  afterwards); passkey devices get their key from the registry through our BlueZ agent
  (``gateway.agent``). A device that forgot our bond (``le-connection-key-missing``,
  ``AuthenticationFailed``) is removed from BlueZ and paired again the next time it is seen
  in pairing mode.
* **Transfer**, per the profile found in GATT (ble-profiles.md §7): Device Information and
  battery; the device clock read (CTS) *before* it is set (CTS write, Date Time 0x2A08 in the
  measurement service, or i-SENS's vendor command); then blood-pressure stored readings by
  indication; glucose by RACP from the stored high-water mark + 1 (checked against the stored
  record, so a memory reset or the 65535 → 0 wrap is noticed); weight and body composition
  after a UDS consent for the mapped user slot. The device hanging up after its data is the
  normal end.
* Notification callbacks only enqueue (bleak's async_callback_with_queue example). Each
  record is decoded, placed in time, bound, and **written to the outbox before the next step
  releases the device** (the glucose mark moves in the same commit). A record that does not
  decode is logged at WARNING with the address and the hex, dead-lettered, and the loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakDBusError,
    BleakDeviceNotFoundError,
    BleakError,
)
from dbus_fast import BusType, DBusError, Message, MessageType
from dbus_fast.aio import MessageBus

from devices import catalogue
from devices.uuids import (
    BLOOD_PRESSURE_SERVICE,
    BODY_COMPOSITION_SERVICE,
    GLUCOSE_SERVICE,
    WEIGHT_SCALE_SERVICE,
)
from gateway.agent import PairingAgent
from gateway.binding import Binder
from gateway.config import DeviceConfig, GatewayConfig
from gateway.errors import (
    BleError,
    BondLost,
    ConnectionFailed,
    DeviceNotFound,
    OutboxError,
    PairingFailed,
    TransferError,
)
from gateway.outbox import Outbox
from gateway.session import Facts, Link, SessionContext, Transfer
from gateway.sink import Sink

logger = logging.getLogger(__name__)

_KIND_SERVICE = {
    "blood-pressure": BLOOD_PRESSURE_SERVICE,
    "glucose": GLUCOSE_SERVICE,
    "body-weight": WEIGHT_SCALE_SERVICE,
    "body-composition": BODY_COMPOSITION_SERVICE,
}
_NEEDS_BOND = frozenset({"just_works", "passkey", "single_bond"})

#: Low-level BlueZ errors, by class: how long to wait before the next connect attempt.
BACKOFF_S: dict[str, float] = {
    "abort": 0.25,  # le-connection-abort-by-local: RF, retry at once
    "busy": 1.0,  # InProgress / out of connection slots
    "timeout": 0.5,  # no answer: the device may be between adverts
    "other": 1.0,
}


def classify(exc: BaseException) -> str:
    """One place that reads BlueZ's error strings (bleak-retry-connector has to, and so do we)."""
    text = f"{getattr(exc, 'dbus_error', '')} {exc}".lower()
    if isinstance(exc, BleakDeviceNotFoundError) or "unknownobject" in text:
        return "not_found"
    if "key-missing" in text:
        return "bond_lost"  # BlueZ has keys, the device has none
    if "authentication" in text or "rejected" in text:
        return "auth"
    if "abort-by-local" in text:
        return "abort"
    if "inprogress" in text or "in progress" in text or "no free connection" in text:
        return "busy"
    if isinstance(exc, TimeoutError) or "timeout" in text:
        return "timeout"
    return "other"


@dataclass(slots=True)
class _Seen:
    device: BLEDevice
    name: str | None
    uuids: tuple[str, ...]
    at: float


class BleSide:
    """Scanning and sessions for one gateway (one adapter)."""

    def __init__(
        self, config: GatewayConfig, *, binder: Binder, outbox: Outbox, sink: Sink
    ) -> None:
        self.config = config
        self.ble = config.ble
        self.zone = ZoneInfo(config.clock.timezone)
        self.sink = sink
        self.context = SessionContext(
            ble=config.ble,
            clock=config.clock,
            zone=self.zone,
            gateway_id=config.gateway_id,
            binder=binder,
            outbox=outbox,
            sink=sink,
        )
        self.devices = {d.address: d for d in config.ble_devices if d.address}
        self.models = {addr: _configured_model(d) for addr, d in self.devices.items()}
        self.service_filter = _service_filter(self.models.values())
        self.cooldown_until: dict[str, float] = {}
        self.served_at: dict[str, float] = {}
        self.repair: set[str] = set()  # bond lost: pair again when next seen
        self.sessions = 0
        self._seen: dict[str, _Seen] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # the adapter: one connection at a time

    # --- main loop ------------------------------------------------------------------------

    async def run(self) -> None:
        backoff = 1.0
        agent: PairingAgent | None = None
        started = False  # agent registration tried and stale links released
        try:
            while True:
                try:
                    if not started:
                        # once per start of Bluetooth, not per scan: a BlueZ without an agent
                        # manager would otherwise be asked (and warned about) every few seconds
                        started = True
                        if agent is None:
                            agent = await self._start_agent()
                        await self.release_stale_links()
                    seen = await self.scan_once()
                    backoff = 1.0
                    if seen is not None:
                        await self.serve(seen)
                except (BleakBluetoothNotAvailableError, BleakDBusError, OSError, EOFError) as exc:
                    logger.error("Bluetooth unavailable (%s); retrying in %.0f s", exc, backoff)
                    started = False  # bluetoothd may have restarted: register again
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                except BleakError as exc:
                    logger.warning("scan failed: %s", exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                except Exception:
                    # A bug, not a radio problem: log it with its traceback and go on.
                    logger.exception("BLE side failed; restarting in %.0f s", backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
        finally:
            if agent is not None:
                await agent.stop()

    async def _start_agent(self) -> PairingAgent | None:
        agent = PairingAgent(self._passkey_for)
        try:
            await agent.start()
        except Exception as exc:  # no agent manager: Just Works devices still work
            logger.warning("pairing agent not registered (%s): passkey devices cannot pair", exc)
            return None
        return agent

    async def release_stale_links(self) -> None:
        """Disconnect registered devices BlueZ still holds from a crashed previous run.

        BlueZ keeps a connection when the application that made it dies (bluez/bluez#89, the
        reason bleak skips ``Connect`` for a connected device). A device held that way does
        not advertise, so a restarted gateway would wait for the device to time out; instead
        we ask BlueZ to drop the link, and the device advertises again.
        """
        try:
            async with asyncio.timeout(self.ble.connect_timeout_s):
                bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        except (OSError, EOFError, DBusError, TimeoutError) as exc:
            logger.debug("no system bus to look for stale links: %s", exc)
            return
        try:
            for address in self.devices:
                path = f"/org/bluez/{self.ble.adapter}/dev_{address.replace(':', '_')}"
                try:
                    async with asyncio.timeout(self.ble.connect_timeout_s):
                        reply = await bus.call(
                            Message(
                                destination="org.bluez",
                                path=path,
                                interface="org.freedesktop.DBus.Properties",
                                member="Get",
                                signature="ss",
                                body=["org.bluez.Device1", "Connected"],
                            )
                        )
                        if reply.message_type is not MessageType.METHOD_RETURN:
                            continue
                        if not reply.body[0].value:
                            continue
                        logger.warning(
                            "%s: still connected from a previous run; releasing", address
                        )
                        await bus.call(
                            Message(
                                destination="org.bluez",
                                path=path,
                                interface="org.bluez.Device1",
                                member="Disconnect",
                            )
                        )
                except TimeoutError:
                    logger.debug("%s: no answer about a stale link", address)
        finally:
            bus.disconnect()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]

    def _passkey_for(self, address: str) -> int | None:
        device = self.devices.get(address.upper())
        return None if device is None else device.passkey

    # --- scanning --------------------------------------------------------------------------

    def _on_advert(self, device: BLEDevice, adv: AdvertisementData) -> None:
        """bleak's detection callback: only records and wakes (no I/O here)."""
        address = device.address.upper()
        if address not in self.devices:
            return
        now = time.monotonic()
        if self.cooldown_until.get(address, 0.0) > now:
            return
        self._seen[address] = _Seen(device, adv.local_name, tuple(adv.service_uuids), now)
        self._wake.set()

    async def scan_once(self) -> _Seen | None:
        """Scan until a registered device that is due advertises (or ``rescan_s`` passes)."""
        self._seen.clear()
        self._wake.clear()
        scanner = BleakScanner(
            self._on_advert,
            service_uuids=list(self.service_filter) or None,
            bluez={"adapter": self.ble.adapter},
        )
        async with asyncio.timeout(self.ble.connect_timeout_s):
            await scanner.start()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.ble.rescan_s):
                    await self._wake.wait()
            if self._seen and self.ble.gather_s:
                await asyncio.sleep(self.ble.gather_s)  # devices advertising together all seen
        finally:
            with contextlib.suppress(TimeoutError, BleakError):
                async with asyncio.timeout(self.ble.connect_timeout_s):
                    await scanner.stop()
        if not self._seen:
            return None
        # Fairness: of the devices waiting, the one served longest ago goes first.
        return min(
            self._seen.values(), key=lambda s: self.served_at.get(s.device.address.upper(), 0.0)
        )

    # --- one session ---------------------------------------------------------------------------

    async def serve(self, seen: _Seen) -> None:
        address = seen.device.address.upper()
        config = self.devices[address]
        self.served_at[address] = time.monotonic()
        started = time.monotonic()
        try:
            async with self._lock:
                facts = await self.session(seen, config)
            logger.info(
                "%s (%s): session done in %.2f s, %d records (%d dead letters)",
                address,
                config.model,
                time.monotonic() - started,
                facts.records,
                facts.dead,
            )
            # A session can succeed with a problem worth showing (a refused clock write).
            await self._note(
                config, last_session_at=time.time(), last_error="; ".join(facts.errors)
            )
        except BondLost as exc:
            self.repair.add(address)
            logger.error("%s; put it in pairing mode to pair it again", exc)
            await self._note(config, last_error=str(exc))
        except (BleError, OutboxError) as exc:
            logger.warning("%s", exc)
            await self._note(config, last_error=str(exc))
        except (BleakError, TimeoutError, EOFError) as exc:
            logger.warning("BLE %s: session failed: %s", address, exc or type(exc).__name__)
            await self._note(config, last_error=f"{type(exc).__name__}: {exc}")
        finally:
            self.sessions += 1
            self.cooldown_until[address] = time.monotonic() + self.ble.cooldown_s

    async def _note(self, config: DeviceConfig, **fields: Any) -> None:
        await self.sink.note(config.id, **fields)

    async def session(self, seen: _Seen, config: DeviceConfig) -> Facts:
        address = seen.device.address.upper()
        model = self.models.get(address) or catalogue.match_advertisement(seen.name, seen.uuids)
        pair = (
            address in self.repair
            or config.passkey is not None
            or (model is not None and model.pairing in _NEEDS_BOND)
        )
        link = await self.connect(seen.device, pair=pair)
        self.repair.discard(address)
        facts = Facts()
        try:
            if self.ble.settle_s:
                await asyncio.sleep(self.ble.settle_s)
            async with asyncio.timeout(self.ble.transfer_timeout_s):
                await Transfer(self.context, link, config, model, facts).run()
        except TimeoutError:
            raise TransferError(
                address, f"transfer exceeded {self.ble.transfer_timeout_s:.0f} s"
            ) from None
        finally:
            await _release(link)
        return facts

    async def connect(self, device: BLEDevice, *, pair: bool) -> Link:
        """bleak-retry-connector's discipline: attempts, backoff by error class, safety bound.

        One client per attempt, and every client that does not come back connected is
        released here (failed, timed out or cancelled): see :meth:`Link.close`.
        """
        address = device.address.upper()
        last = "no attempt"
        for attempt in range(1, self.ble.attempts + 1):
            link = Link(address)
            link.client = BleakClient(
                device,
                disconnected_callback=link.on_disconnect,
                timeout=self.ble.connect_timeout_s,
                pair=pair,
                bluez={"adapter": self.ble.adapter},
            )
            try:
                async with asyncio.timeout(self.ble.safety_timeout_s):
                    await link.bleak.connect()
            except (BleakError, TimeoutError, EOFError, OSError) as exc:
                kind = classify(exc)
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                logger.debug("%s: connect attempt %d failed (%s): %s", address, attempt, kind, last)
                try:
                    if kind == "bond_lost":
                        await self._forget(link.bleak, address)
                        raise BondLost(address, "the device forgot our bond") from None
                    if kind == "auth":
                        await self._forget(link.bleak, address)
                        raise PairingFailed(address, f"pairing refused ({last})") from None
                    if kind == "not_found":
                        raise DeviceNotFound(
                            address, "gone from BlueZ (stopped advertising)"
                        ) from None
                finally:
                    await _release(link)
                await asyncio.sleep(BACKOFF_S.get(kind, 1.0) * attempt * self.ble.backoff_s / 0.25)
                continue
            except BaseException:
                await _release(link)  # cancelled mid-connect
                raise
            return link
        raise ConnectionFailed(address, "could not connect", attempts=self.ble.attempts, cause=last)

    async def _forget(self, client: BleakClient, address: str) -> None:
        """Remove the stale bond from BlueZ so the next pairing starts clean."""
        try:
            async with asyncio.timeout(self.ble.connect_timeout_s):
                await client.unpair()
            logger.info("%s: stale bond removed from BlueZ", address)
        except (BleakError, TimeoutError, EOFError) as exc:
            logger.debug("%s: could not remove the bond: %s", address, exc)


# --- helpers ------------------------------------------------------------------------------


async def _release(link: Link) -> None:
    """Close a link even when the caller is being cancelled (the close itself is bounded)."""
    closing = asyncio.ensure_future(link.close())
    try:
        await asyncio.shield(closing)
    except asyncio.CancelledError:
        await asyncio.wait({closing})  # cancelled again while closing: finish closing first
        raise


def _configured_model(device: DeviceConfig) -> catalogue.DeviceModel | None:
    """The catalogue row the registry names (``model`` or ``Manufacturer Model``)."""
    found = catalogue.find_model(None, device.model)
    if found is not None:
        return found
    for row in catalogue.CATALOGUE:
        if device.model in (row.label, row.model):
            return row
    return None


def _service_filter(models: Any) -> tuple[str, ...]:
    """128-bit UUIDs of the health services the registered models advertise.

    Empty (no filter) when any registered model's advertised services are unknown: the
    allow-list still applies, but a device advertising none of them must not be missed.
    """
    wanted: set[str] = set()
    for model in models:
        if model is None:
            return ()
        health = [u for u in model.service_uuids if u in _KIND_SERVICE.values()]
        if not health:
            return ()
        wanted.update(health)
    return tuple(sorted(wanted))


__all__ = ["BleSide", "classify"]
