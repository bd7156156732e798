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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
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
from devices.errors import DecodeError
from devices.gatt import racp
from devices.gatt import user_data as uds
from devices.gatt.battery import decode_battery_level
from devices.gatt.current_time import (
    current_time_for,
    decode_current_time,
    encode_current_time,
    encode_date_time_characteristic,
)
from devices.gatt.device_information import decode_string
from devices.gatt.vendor import (
    AND_SEND_ALL_DATA,
    AND_SEND_ALL_DATA_CHARACTERISTIC,
    isens_clock_command,
)
from devices.uuids import (
    BATTERY_LEVEL,
    BLOOD_PRESSURE_MEASUREMENT,
    BLOOD_PRESSURE_SERVICE,
    BODY_COMPOSITION_MEASUREMENT,
    BODY_COMPOSITION_SERVICE,
    CURRENT_TIME,
    DATE_TIME,
    FIRMWARE_REVISION,
    GLUCOSE_MEASUREMENT,
    GLUCOSE_MEASUREMENT_CONTEXT,
    GLUCOSE_SERVICE,
    ISENS_CLOCK_CHARACTERISTIC,
    MANUFACTURER_NAME,
    MODEL_NUMBER,
    RECORD_ACCESS_CONTROL_POINT,
    SERIAL_NUMBER,
    USER_CONTROL_POINT,
    USER_DATA_SERVICE,
    WEIGHT_MEASUREMENT,
    WEIGHT_SCALE_SERVICE,
)
from gateway.agent import PairingAgent
from gateway.clock import ClockCheck, check_clock
from gateway.config import DeviceConfig
from gateway.errors import (
    BleError,
    BondLost,
    ConnectionFailed,
    DeviceNotFound,
    OutboxError,
    PairingFailed,
    TransferError,
)
from gateway.outbox import DeviceUpdate
from gateway.pipeline import Prepared, device_info, prepare_ble_record
from gateway.transfer import (
    Mark,
    RecordAssembler,
    check_request,
    continue_request,
    glucose_sequence,
    is_new,
    mark_still_valid,
)

if TYPE_CHECKING:
    from devices.wire import DeviceInfo
    from gateway.service import Gateway

logger = logging.getLogger(__name__)

Profile = Literal["blood-pressure", "glucose", "scale"]

#: Services that identify a health profile, in the order they are tried.
PROFILE_SERVICES: tuple[tuple[str, Profile], ...] = (
    (GLUCOSE_SERVICE, "glucose"),
    (BODY_COMPOSITION_SERVICE, "scale"),
    (WEIGHT_SCALE_SERVICE, "scale"),
    (BLOOD_PRESSURE_SERVICE, "blood-pressure"),
)
_KIND_SERVICE = {
    "blood-pressure": BLOOD_PRESSURE_SERVICE,
    "glucose": GLUCOSE_SERVICE,
    "body-weight": WEIGHT_SCALE_SERVICE,
    "body-composition": BODY_COMPOSITION_SERVICE,
}
_NEEDS_BOND = frozenset({"just_works", "passkey", "single_bond"})
#: After a UDS consent, a slot with nothing more to send for this long is done.
CONSENT_IDLE_S = 1.0

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


@dataclass(slots=True)
class _Facts:
    """What the session learnt from the device."""

    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    battery: int | None = None
    clock: ClockCheck | None = None
    records: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


class BleSide:
    """Scanning and sessions for one gateway (one adapter)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.config = gateway.config
        self.ble = gateway.config.ble
        self.zone = ZoneInfo(gateway.config.clock.timezone)
        self.devices = {d.address: d for d in gateway.config.ble_devices if d.address}
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
            if self._seen:
                await asyncio.sleep(0.15)  # let devices advertising together all be seen
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
        with contextlib.suppress(OutboxError):
            await self.gateway.outbox.update_devices([DeviceUpdate(config.id, **fields)])

    async def session(self, seen: _Seen, config: DeviceConfig) -> _Facts:
        address = seen.device.address.upper()
        model = self.models.get(address) or catalogue.match_advertisement(seen.name, seen.uuids)
        pair = (
            address in self.repair
            or config.passkey is not None
            or (model is not None and model.pairing in _NEEDS_BOND)
        )
        link = await self.connect(seen.device, pair=pair)
        self.repair.discard(address)
        facts = _Facts()
        try:
            async with asyncio.timeout(self.ble.transfer_timeout_s):
                await Transfer(self, link, config, model, facts).run()
        except TimeoutError:
            raise TransferError(
                address, f"transfer exceeded {self.ble.transfer_timeout_s:.0f} s"
            ) from None
        finally:
            await link.close()
        return facts

    async def connect(self, device: BLEDevice, *, pair: bool) -> Link:
        """bleak-retry-connector's discipline: attempts, backoff by error class, safety bound."""
        address = device.address.upper()
        last = "no attempt"
        for attempt in range(1, self.ble.attempts + 1):
            link = Link(address)
            client = BleakClient(
                device,
                disconnected_callback=link.on_disconnect,
                timeout=self.ble.connect_timeout_s,
                pair=pair,
                bluez={"adapter": self.ble.adapter},
            )
            link.client = client
            try:
                async with asyncio.timeout(self.ble.safety_timeout_s):
                    await client.connect()
            except (BleakError, TimeoutError, EOFError, OSError) as exc:
                kind = classify(exc)
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                logger.debug("%s: connect attempt %d failed (%s): %s", address, attempt, kind, last)
                if kind == "bond_lost":
                    await self._forget(client, address)
                    raise BondLost(address, "the device forgot our bond") from None
                if kind == "auth":
                    await self._forget(client, address)
                    raise PairingFailed(address, f"pairing refused ({last})") from None
                if kind == "not_found":
                    raise DeviceNotFound(address, "gone from BlueZ (stopped advertising)") from None
                await asyncio.sleep(BACKOFF_S.get(kind, 1.0) * attempt * self.ble.backoff_s / 0.25)
                continue
            if self.ble.settle_s:
                await asyncio.sleep(self.ble.settle_s)
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


class Link:
    """One connection: the client, whether the device hung up, and the notification queue."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.client: BleakClient | None = None
        self.lost = asyncio.Event()
        self.values: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    def on_disconnect(self, client: BleakClient) -> None:
        self.lost.set()

    def callback(self, uuid: str) -> Callable[[BleakGATTCharacteristic, bytearray], None]:
        def enqueue(_char: BleakGATTCharacteristic, data: bytearray) -> None:
            self.values.put_nowait((uuid, bytes(data)))

        return enqueue

    @property
    def bleak(self) -> BleakClient:
        assert self.client is not None
        return self.client

    def has(self, uuid: str) -> bool:
        return self.bleak.services.get_characteristic(uuid) is not None

    def has_service(self, uuid: str) -> bool:
        return self.bleak.services.get_service(uuid) is not None

    async def close(self) -> None:
        client = self.client
        if client is None or not client.is_connected:
            return
        with contextlib.suppress(BleakError, TimeoutError, EOFError):
            async with asyncio.timeout(10.0):
                await client.disconnect()


class Transfer:
    """The per-profile procedure over one link."""

    def __init__(
        self,
        side: BleSide,
        link: Link,
        config: DeviceConfig,
        model: catalogue.DeviceModel | None,
        facts: _Facts,
    ) -> None:
        self.side = side
        self.link = link
        self.config = config
        self.model = model
        self.facts = facts
        self.assembler = RecordAssembler()
        self.quirks: tuple[str, ...] = model.quirks if model else ()
        self.info: DeviceInfo = device_info(config, config.id)
        self.mark: Mark | None = None
        self.glucose_found: list[tuple[int, bytes]] = []
        self.filter_mark: int | None = None  # glucose: store only records after this
        self.checking = False
        self.racp: asyncio.Queue[racp.RacpValue] = asyncio.Queue()
        self.ucp: asyncio.Queue[uds.UcpValue] = asyncio.Queue()
        self.address = link.address

    # --- the procedure ------------------------------------------------------------------------

    def profile(self) -> Profile:
        for service, profile in PROFILE_SERVICES:
            if self.link.has_service(service):
                return profile
        raise TransferError(self.address, "no blood-pressure, glucose or scale service in GATT")

    async def run(self) -> None:
        profile = self.profile()
        await self.read_facts()
        await self.sync_clock()
        if profile == "glucose":
            await self.glucose()
        elif profile == "blood-pressure":
            if self.link.has(AND_SEND_ALL_DATA_CHARACTERISTIC):
                # A&D: ask for the whole memory before enabling indications (obniz).
                with contextlib.suppress(BleakError, TimeoutError):
                    await self.write(AND_SEND_ALL_DATA_CHARACTERISTIC, AND_SEND_ALL_DATA)
            await self.subscribe(BLOOD_PRESSURE_MEASUREMENT)
            await self.collect()
        else:
            await self.scale()

    async def read_facts(self) -> None:
        facts = self.facts
        for uuid, name in (
            (MANUFACTURER_NAME, "manufacturer"),
            (MODEL_NUMBER, "model"),
            (SERIAL_NUMBER, "serial"),
            (FIRMWARE_REVISION, "firmware"),
        ):
            data = await self.read(uuid)
            if data is not None:
                with contextlib.suppress(DecodeError):
                    setattr(facts, name, decode_string(uuid, data).text)
        data = await self.read(BATTERY_LEVEL)
        if data is not None:
            with contextlib.suppress(DecodeError):
                facts.battery = decode_battery_level(data).percent
        found = catalogue.find_model(facts.manufacturer, facts.model)
        if found is not None:
            self.model = found
            self.quirks = found.quirks
        self.info = device_info(
            self.config,
            self.config.id,
            manufacturer=facts.manufacturer or (self.model.manufacturer if self.model else None),
            model=facts.model,
            serial=facts.serial,
            firmware=facts.firmware,
        )
        await self.side._note(
            self.config,
            address=self.address,
            model=facts.model or self.config.model,
            firmware=facts.firmware,
            serial=facts.serial,
            battery_pct=facts.battery,
            last_seen_at=time.time(),
        )

    async def read(self, uuid: str) -> bytes | None:
        if not self.link.has(uuid):
            return None
        try:
            async with asyncio.timeout(self.side.ble.connect_timeout_s):
                return bytes(await self.link.bleak.read_gatt_char(uuid))
        except (BleakError, TimeoutError) as exc:
            logger.debug("%s: reading %s failed: %s", self.address, uuid, exc)
            return None

    async def write(self, uuid: str, data: bytes) -> None:
        async with asyncio.timeout(self.side.ble.connect_timeout_s):
            await self.link.bleak.write_gatt_char(uuid, data, response=True)

    async def subscribe(self, uuid: str) -> None:
        async with asyncio.timeout(self.side.ble.connect_timeout_s):
            await self.link.bleak.start_notify(uuid, self.link.callback(uuid))

    # --- clock ----------------------------------------------------------------------------------

    def local_now(self) -> datetime:
        return datetime.now(self.side.zone).replace(tzinfo=None)

    async def sync_clock(self) -> None:
        """Read the device clock (when it can be read), record the offset, then set it."""
        gateway_now = datetime.now(self.side.zone)
        device_now: datetime | None = None
        readable = False
        if self.link.has(CURRENT_TIME):
            data = await self.read(CURRENT_TIME)
            if data is not None:
                readable = True
                with contextlib.suppress(DecodeError):
                    device_now = decode_current_time(data).date_time.to_datetime()
        if readable:
            check = check_clock(device_now, gateway_now, self.side.config.clock)
            self.facts.clock = check
            level = logging.INFO if check.trusted else logging.WARNING
            logger.log(level, "%s: %s", self.address, check.reason)
            await self.side._note(
                self.config,
                clock_offset_s=check.offset_s,
                clock_trusted=check.trusted,
                clock_at=gateway_now.timestamp(),
            )
        try:
            if self.link.has(CURRENT_TIME):
                await self.write(
                    CURRENT_TIME, encode_current_time(current_time_for(self.local_now()))
                )
            elif self.link.has(DATE_TIME):
                await self.write(DATE_TIME, encode_date_time_characteristic(self.local_now()))
            elif self.link.has(ISENS_CLOCK_CHARACTERISTIC):
                await self.write(ISENS_CLOCK_CHARACTERISTIC, isens_clock_command(self.local_now()))
            else:
                return
        except (BleakError, TimeoutError) as exc:
            # CTS may answer 0x80 "data field ignored": the clock stays as it was; the offset
            # we recorded still places its records. Never fatal.
            logger.warning("%s: setting the device clock failed: %s", self.address, exc)
            self.facts.errors.append(f"clock write failed: {exc}")

    # --- collecting records --------------------------------------------------------------------

    async def collect(
        self, *, until: asyncio.Event | None = None, idle_s: float | None = None
    ) -> None:
        """Take values until the device hangs up, goes idle, or ``until`` is set."""
        idle = idle_s if idle_s is not None else self.side.ble.idle_timeout_s
        queue = self.link.values
        while True:
            if queue.empty():
                if self.link.lost.is_set() or (until is not None and until.is_set()):
                    break
                getter: asyncio.Future[tuple[str, bytes]] = asyncio.ensure_future(queue.get())
                waiters: list[asyncio.Future[Any]] = [
                    getter,
                    asyncio.ensure_future(self.link.lost.wait()),
                ]
                if until is not None:
                    waiters.append(asyncio.ensure_future(until.wait()))
                done, pending = await asyncio.wait(
                    waiters, timeout=idle, return_when=asyncio.FIRST_COMPLETED
                )
                for fut in pending:
                    fut.cancel()
                if getter in done:
                    await self.take(*getter.result())
                    continue
                if not done:
                    logger.debug("%s: idle for %.1f s: transfer over", self.address, idle)
                    break
                continue
            await self.take(*queue.get_nowait())
        for record in self.assembler.flush():
            await self.store(record)

    async def take(self, uuid: str, data: bytes) -> None:
        if uuid == RECORD_ACCESS_CONTROL_POINT:
            try:
                self.racp.put_nowait(racp.decode_racp(data))
            except DecodeError as exc:
                logger.warning("%s: bad RACP indication %s: %s", self.address, data.hex(), exc)
            return
        if uuid == USER_CONTROL_POINT:
            try:
                self.ucp.put_nowait(uds.decode_user_control_point(data))
            except DecodeError as exc:
                logger.warning("%s: bad UCP indication %s: %s", self.address, data.hex(), exc)
            return
        if uuid == CURRENT_TIME:
            return  # the device telling its time (Omron): already read and answered
        for record in self.assembler.feed(uuid, data):
            await self.store(record)

    async def store(self, record: Sequence[tuple[str, bytes]]) -> None:
        """Decode, place, bind and write one record durably (the glucose mark with it)."""
        update: dict[str, Any] = {"last_seen_at": time.time()}
        first_uuid, first = record[0]
        if first_uuid == GLUCOSE_MEASUREMENT:
            sequence = glucose_sequence(first)
            if self.checking:
                if sequence is not None:
                    self.glucose_found.append((sequence, first))
                return  # the check's record is already stored
            if sequence is not None and not is_new(sequence, self.filter_mark):
                return  # before the mark: stored in an earlier session
            if sequence is not None:
                update["last_sequence"] = sequence
                update["sequence_record"] = first.hex()
                self.mark = Mark(sequence, first.hex())
        gateway = self.side.gateway
        prepared: Prepared = prepare_ble_record(
            record,
            device=self.config,
            info=self.info,
            quirks=self.quirks,
            clock=self.facts.clock,
            received_at=datetime.now(self.side.zone),
            binder=gateway.binder,
            policy=self.side.config.clock,
            gateway_id=self.side.config.gateway_id,
        )
        if prepared.dead_letter is not None:
            self.facts.dead += 1
        else:
            update["last_reading_at"] = time.time()
        try:
            await gateway.store([prepared], devices=[DeviceUpdate(self.config.id, **update)])
        except OutboxError as exc:
            raise TransferError(self.address, f"outbox refused the record: {exc}") from None
        self.facts.records += 1

    # --- glucose: RACP ---------------------------------------------------------------------------

    async def glucose(self) -> None:
        state = await self.side.gateway.outbox.device_state(self.config.id)
        if state is not None and state.last_sequence is not None:
            self.mark = Mark(state.last_sequence, state.sequence_record)
        await self.subscribe(GLUCOSE_MEASUREMENT)
        if self.link.has(GLUCOSE_MEASUREMENT_CONTEXT):
            await self.subscribe(GLUCOSE_MEASUREMENT_CONTEXT)
        await self.subscribe(RECORD_ACCESS_CONTROL_POINT)  # before any RACP write (else 0x81)
        if self.mark is None:
            logger.info("%s: first sync: all records", self.address)
            await self.racp_procedure(racp.report_all_records())
            return
        mark = self.mark
        self.checking = True
        try:
            await self.racp_procedure(check_request(mark))
        finally:
            self.checking = False
        if not mark_still_valid(mark, self.glucose_found):
            logger.warning(
                "%s: record %d is no longer the one stored (memory reset or renumbered): "
                "reading all records; ingest de-duplicates any already stored",
                self.address,
                mark.sequence,
            )
            self.filter_mark = None
            await self.racp_procedure(racp.report_all_records())
            return
        self.filter_mark = mark.sequence
        await self.racp_procedure(continue_request(mark))
        if self.mark is not None and self.mark.sequence == 0xFFFF:
            # the numbers wrapped during this transfer: what follows 65535 is 0, 1, ...
            self.filter_mark = 0xFFFF
            await self.racp_procedure(racp.report_all_records())

    async def racp_procedure(self, request: bytes) -> None:
        """Write an RACP request, store what comes, end on its response code."""
        while not self.racp.empty():
            self.racp.get_nowait()
        try:
            await self.write(RECORD_ACCESS_CONTROL_POINT, request)
        except (BleakError, TimeoutError) as exc:
            raise TransferError(
                self.address, f"RACP request {request.hex()} refused: {exc}"
            ) from None
        done = asyncio.Event()
        outcome: list[racp.RacpValue] = []

        async def watch() -> None:
            value = await self.racp.get()
            outcome.append(value)
            done.set()

        watcher = asyncio.create_task(watch())
        try:
            async with asyncio.timeout(self.side.ble.racp_timeout_s):
                await self.collect(until=done)
                if not done.is_set() and not self.link.lost.is_set():
                    await done.wait()
        except TimeoutError:
            with contextlib.suppress(BleakError, TimeoutError):
                await self.write(RECORD_ACCESS_CONTROL_POINT, racp.abort_operation())
            raise TransferError(self.address, "no RACP response in time (aborted)") from None
        finally:
            watcher.cancel()
        if not outcome:
            raise TransferError(self.address, "the device hung up before the RACP response")
        response = outcome[0]
        if isinstance(response, racp.RacpResponse):
            if not response.completed:
                raise TransferError(
                    self.address,
                    f"RACP answered {response.name or response.response_code} to {request.hex()}",
                )
            return
        if isinstance(response, racp.RacpNumberOfRecords):
            return
        raise TransferError(self.address, f"unexpected RACP indication {response}")

    # --- scales: UDS consent ---------------------------------------------------------------------

    async def scale(self) -> None:
        for uuid in (WEIGHT_MEASUREMENT, BODY_COMPOSITION_MEASUREMENT):
            if self.link.has(uuid):
                await self.subscribe(uuid)
        slots = self.consent_slots()
        if self.link.has_service(USER_DATA_SERVICE) and self.link.has(USER_CONTROL_POINT) and slots:
            await self.subscribe(USER_CONTROL_POINT)
            for index, code in slots:
                await self.consent(index, code)
                # The scale sends the slot's stored weighings right after the consent.
                await self.collect(idle_s=min(self.side.ble.idle_timeout_s, CONSENT_IDLE_S))
                if self.link.lost.is_set():
                    return
            return
        await self.collect()

    def consent_slots(self) -> list[tuple[int, int]]:
        """(user index, consent code) pairs the registry gives for this scale."""
        config = self.config
        slots = [(u.index, u.consent_code) for u in config.users if u.consent_code is not None]
        if config.station_user is not None and config.station_consent is not None:
            slots.insert(0, (config.station_user, config.station_consent))
        return slots

    async def consent(self, index: int, code: int) -> None:
        while not self.ucp.empty():
            self.ucp.get_nowait()
        try:
            await self.write(USER_CONTROL_POINT, uds.consent(index, code))
        except (BleakError, TimeoutError) as exc:
            raise TransferError(self.address, f"UDS consent write failed: {exc}") from None
        deadline = self.side.ble.racp_timeout_s
        try:
            async with asyncio.timeout(deadline):
                while True:
                    if self.ucp.empty():
                        value = await self._next_ucp()
                    else:
                        value = self.ucp.get_nowait()
                    if isinstance(value, uds.UcpResponse):
                        break
        except TimeoutError:
            raise TransferError(self.address, f"no UDS consent answer for user {index}") from None
        if value.response_value != uds.SUCCESS:
            raise TransferError(
                self.address,
                f"UDS consent for user slot {index} refused: {value.name or value.response_value}",
            )
        logger.info("%s: consent given for user slot %d", self.address, index)

    async def _next_ucp(self) -> uds.UcpValue:
        """Wait for a UCP indication while taking the records that arrive meanwhile."""
        queue = self.link.values
        while self.ucp.empty():
            if self.link.lost.is_set() and queue.empty():
                raise TransferError(self.address, "the device hung up during the UDS consent")
            try:
                async with asyncio.timeout(0.1):
                    uuid, data = await queue.get()
            except TimeoutError:
                continue
            await self.take(uuid, data)
        return self.ucp.get_nowait()


# --- helpers ------------------------------------------------------------------------------


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


async def run_ble(gateway: Gateway) -> None:
    """The gateway's BLE task (``gateway.service`` runs it in its TaskGroup)."""
    await BleSide(gateway).run()


__all__ = ["BleSide", "run_ble"]
