"""One BLE transfer session over a connected link: facts, clock, records, per profile.

:class:`Link` is one bleak connection (the client, whether the device hung up, the
notification queue); :class:`Transfer` runs the profile's procedure over it (ble-profiles.md
§7): Device Information and battery, the device clock read before it is set, then
blood-pressure indications, glucose by RACP from the stored high-water mark, or scale
weighings after a UDS consent. Every record is written to the outbox (through the
:class:`~gateway.sink.Sink`) before the next step. The session receives what it uses in a
:class:`SessionContext`; it knows nothing of scanning, connecting or the gateway service.
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

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.exc import BleakError

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
from gateway.binding import Binder
from gateway.clock import ClockCheck, check_clock
from gateway.config import BleConfig, ClockPolicy, DeviceConfig
from gateway.errors import OutboxError, TransferError
from gateway.outbox import DeviceUpdate, Outbox
from gateway.pipeline import Prepared, device_info, prepare_ble_record
from gateway.sink import Sink
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

logger = logging.getLogger(__name__)

#: Bound on releasing a link (bleak waits up to 10 s for BlueZ to confirm a disconnect).
DISCONNECT_TIMEOUT_S = 12.0
#: After a UDS consent, a slot with nothing more to send for this long is done.
CONSENT_IDLE_S = 1.0


@dataclass(frozen=True, slots=True)
class SessionContext:
    """What a session uses from the gateway: timings, clock policy, binder, outbox, sink."""

    ble: BleConfig
    clock: ClockPolicy
    zone: ZoneInfo
    gateway_id: str
    binder: Binder
    outbox: Outbox
    sink: Sink


Profile = Literal["blood-pressure", "glucose", "scale"]

#: Services that identify a health profile, in the order they are tried.
PROFILE_SERVICES: tuple[tuple[str, Profile], ...] = (
    (GLUCOSE_SERVICE, "glucose"),
    (BODY_COMPOSITION_SERVICE, "scale"),
    (WEIGHT_SCALE_SERVICE, "scale"),
    (BLOOD_PRESSURE_SERVICE, "blood-pressure"),
)


@dataclass(slots=True)
class Facts:
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
        """Disconnect and release the client's own D-Bus connection, on every path.

        bleak (3.1, BlueZ) opens a D-Bus connection per ``connect()`` and closes it only in
        ``disconnect()``, also when the device has already hung up (``is_connected`` is then
        False and ``disconnect()`` sends nothing to BlueZ, it only releases). Skipping it after
        the device's hang-up leaked one connection per session, until the bus's per-user
        limit stopped every BLE session (issue 12.1). Bounded; never raises.
        """
        client = self.client
        if client is None:
            return
        try:
            async with asyncio.timeout(DISCONNECT_TIMEOUT_S):
                await client.disconnect()
        except (BleakError, TimeoutError, EOFError, OSError) as exc:
            logger.debug("%s: disconnect: %s", self.address, exc or type(exc).__name__)


class Transfer:
    """The per-profile procedure over one link."""

    def __init__(
        self,
        ctx: SessionContext,
        link: Link,
        config: DeviceConfig,
        model: catalogue.DeviceModel | None,
        facts: Facts,
    ) -> None:
        self.ctx = ctx
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
        await self.ctx.sink.note(
            self.config.id,
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
            async with asyncio.timeout(self.ctx.ble.connect_timeout_s):
                return bytes(await self.link.bleak.read_gatt_char(uuid))
        except (BleakError, TimeoutError) as exc:
            logger.debug("%s: reading %s failed: %s", self.address, uuid, exc)
            return None

    async def write(self, uuid: str, data: bytes) -> None:
        async with asyncio.timeout(self.ctx.ble.connect_timeout_s):
            await self.link.bleak.write_gatt_char(uuid, data, response=True)

    async def subscribe(self, uuid: str) -> None:
        async with asyncio.timeout(self.ctx.ble.connect_timeout_s):
            await self.link.bleak.start_notify(uuid, self.link.callback(uuid))

    # --- clock ----------------------------------------------------------------------------------

    def local_now(self) -> datetime:
        return datetime.now(self.ctx.zone).replace(tzinfo=None)

    async def sync_clock(self) -> None:
        """Read the device clock (when it can be read), record the offset, then set it."""
        gateway_now = datetime.now(self.ctx.zone)
        device_now: datetime | None = None
        readable = False
        if self.link.has(CURRENT_TIME):
            data = await self.read(CURRENT_TIME)
            if data is not None:
                readable = True
                with contextlib.suppress(DecodeError):
                    device_now = decode_current_time(data).date_time.to_datetime()
        if readable:
            check = check_clock(device_now, gateway_now, self.ctx.clock)
            self.facts.clock = check
            level = logging.INFO if check.trusted else logging.WARNING
            logger.log(level, "%s: %s", self.address, check.reason)
            await self.ctx.sink.note(
                self.config.id,
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
        idle = idle_s if idle_s is not None else self.ctx.ble.idle_timeout_s
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
        prepared: Prepared = prepare_ble_record(
            record,
            device=self.config,
            info=self.info,
            quirks=self.quirks,
            clock=self.facts.clock,
            received_at=datetime.now(self.ctx.zone),
            binder=self.ctx.binder,
            policy=self.ctx.clock,
            gateway_id=self.ctx.gateway_id,
        )
        if prepared.dead_letter is not None:
            self.facts.dead += 1
        else:
            update["last_reading_at"] = time.time()
        try:
            await self.ctx.sink.store([prepared], devices=[DeviceUpdate(self.config.id, **update)])
        except OutboxError as exc:
            raise TransferError(self.address, f"outbox refused the record: {exc}") from None
        self.facts.records += 1

    # --- glucose: RACP ---------------------------------------------------------------------------

    async def glucose(self) -> None:
        state = await self.ctx.outbox.device_state(self.config.id)
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
            async with asyncio.timeout(self.ctx.ble.racp_timeout_s):
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
                await self.collect(idle_s=min(self.ctx.ble.idle_timeout_s, CONSENT_IDLE_S))
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
        deadline = self.ctx.ble.racp_timeout_s
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


__all__ = ["CONSENT_IDLE_S", "Facts", "Link", "SessionContext", "Transfer"]
