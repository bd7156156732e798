"""What every simulated health device shares: identity, battery, clock, time sync, sessions.

A :class:`HealthDevice` exposes Device Information (manufacturer, model, serial, hardware and
firmware revisions, System ID derived from its address) and Battery, and takes the time from
the host in one of the ways real devices do (:class:`TimeSync`): the Current Time Service
(Omron, scales: the device notifies its time once the client subscribes and waits for a write),
or a writable Date Time 0x2A08 inside the measurement service (A&D, Roche). Every value is
encoded with the ``devices`` encoders: the simulator never writes its own byte layouts.

Each connection is a :class:`Session`: whether the host wrote the time, how many records went
out (fault positions count per session), when the client last did anything (the device hangs
up after ``idle_timeout`` seconds of silence, as battery devices do).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from devices.errors import DecodeError
from devices.gatt.battery import BatteryLevel, encode_battery_level
from devices.gatt.current_time import (
    SEOUL_TIME_ZONE,
    LocalTimeInformation,
    current_time_for,
    decode_current_time,
    decode_date_time_characteristic,
    encode_current_time,
    encode_local_time_information,
)
from devices.gatt.device_information import (
    DeviceString,
    SystemId,
    encode_string,
    encode_system_id,
)
from devices.ieee11073 import encode_date_time
from devices.uuids import (
    BATTERY_LEVEL,
    BATTERY_SERVICE,
    CURRENT_TIME,
    CURRENT_TIME_SERVICE,
    DATE_TIME,
    DEVICE_INFORMATION_SERVICE,
    FIRMWARE_REVISION,
    HARDWARE_REVISION,
    ISENS_CLOCK_CHARACTERISTIC,
    ISENS_CLOCK_SERVICE,
    LOCAL_TIME_INFORMATION,
    MANUFACTURER_NAME,
    MODEL_NUMBER,
    SERIAL_NUMBER,
    SYSTEM_ID,
)
from simulators.bluez import (
    AttError,
    DisconnectReason,
    GattCharacteristic,
    GattService,
    Link,
    PairingMethod,
    Peripheral,
    Security,
    Timing,
)
from simulators.bluez.errors import ATT_VALUE_NOT_ALLOWED, ATT_WRITE_NOT_PERMITTED
from simulators.bluez.peripheral import ADV_FLAGS_GENERAL, ADV_FLAGS_LIMITED, Advertisement
from simulators.peripherals.faults import DeviceClock, Faults

#: CTS application error "Data field ignored" (CTS 1.1; hass-omron's HEM-6232T log).
ATT_CTS_DATA_FIELD_IGNORED = 0x80
#: i-SENS clock command header (get/set time), ble-profiles.md §8.
ISENS_CLOCK_HEADER = bytes.fromhex("c0030100")


class TimeSync(StrEnum):
    """How the device takes the time from the host."""

    CTS = "cts"  # Current Time 0x2A2B (read, write, notify) in CTS 0x1805
    DATE_TIME = "date-time"  # Date Time 0x2A08 (write) inside the measurement service
    ISENS = "isens"  # i-SENS vendor command on 0xFFF1 in service 0xFFF0 (CareSens)
    NONE = "none"  # keeps its own clock; nothing to write


@dataclass(frozen=True, slots=True)
class Identity:
    """Device Information Service strings."""

    manufacturer: str
    model: str
    serial: str
    firmware: str
    hardware: str = "1.0"


@dataclass(slots=True, eq=False)
class Session:
    """One connection, from the device's side."""

    link: Link
    time_written: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0
    last_activity: float = 0.0


def system_id_for(address: str) -> SystemId:
    """System ID from a BD_ADDR: OUI, then 0xFFFE, then the company-assigned part (DIS §3.7)."""
    octets = bytes.fromhex(address.replace(":", ""))
    oui = int.from_bytes(octets[:3], "big")
    company_part = int.from_bytes(octets[3:], "big")
    return SystemId(0xFFFE << 24 | company_part, oui)


class HealthDevice(Peripheral):
    """Base of the simulated health devices; subclasses add their measurement service."""

    #: The primary service, where a Date Time characteristic lives for TimeSync.DATE_TIME.
    measurement_service: str = ""
    #: Advertise LE Limited Discoverable while pairable (A&D devices show pairing mode so).
    pairing_flag: bool = False

    def __init__(
        self,
        address: str,
        name: str,
        identity: Identity,
        *,
        time_sync: TimeSync = TimeSync.CTS,
        wait_for_time: bool = True,
        security: Security | None = None,
        timing: Timing | None = None,
        clock: DeviceClock | None = None,
        faults: Faults | None = None,
        battery: int = 90,
        idle_timeout: float = 10.0,
        mtu: int = 23,
        appearance: int | None = None,
        manufacturer_data: Mapping[int, bytes] | None = None,
        service_uuids: Sequence[str] = (),
    ) -> None:
        super().__init__(
            address,
            name,
            service_uuids=service_uuids or (self.measurement_service,),
            manufacturer_data=manufacturer_data,
            appearance=appearance,
            security=security,
            timing=timing,
            mtu=mtu,
        )
        self.identity = identity
        self.time_sync = time_sync
        #: Send nothing until the host has written the time (Omron, A&D).
        self.wait_for_time = wait_for_time and time_sync is not TimeSync.NONE
        self.clock = clock or DeviceClock()
        self.faults = faults or Faults()
        self.battery = battery
        self.idle_timeout = idle_timeout
        #: Seconds to advertise after a new reading; None advertises whenever not connected.
        self.advert_window: float | None = None
        self.session: Session | None = None
        self.sessions = 0
        self._advert_timer: asyncio.TimerHandle | None = None

    # -- knobs --------------------------------------------------------------------------------

    def require_pairing(
        self, method: PairingMethod = PairingMethod.JUST_WORKS, passkey: int | None = None
    ) -> None:
        """Measurement data only over an encrypted (bonded) link."""
        self.security = replace(self.security, required=True, method=method, passkey=passkey)

    def set_pairing_mode(self, on: bool) -> None:
        """Pairing mode (hold the Bluetooth button): accepts new bonds, advertises 'limited'."""
        self.security = replace(self.security, pairable=on)

    def advertise_sparsely(self, interval: float = 1.0, loss: float = 0.5) -> None:
        """Slow advertising (long interval) and adverts the scanner misses (``loss`` share)."""
        self.timing = replace(self.timing, adv_interval=interval, adv_loss=loss)

    def wake_advertising(self) -> None:
        """Advertise (for ``advert_window`` seconds when set), as after a measurement."""
        self.advertising = True
        if self.advert_window is None:
            return
        if self._advert_timer is not None:
            self._advert_timer.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._advert_timer = loop.call_later(self.advert_window, self._stop_advertising)

    def _stop_advertising(self) -> None:
        self._advert_timer = None
        self.advertising = False

    def advertisement(self) -> Advertisement:
        adv = super().advertisement()
        flags = (
            ADV_FLAGS_LIMITED if self.security.pairable and self.pairing_flag else ADV_FLAGS_GENERAL
        )
        return replace(adv, flags=flags) if flags != adv.flags else adv

    # -- GATT ---------------------------------------------------------------------------------

    def common_services(self) -> list[GattService]:
        """Device Information, Battery and (for TimeSync.CTS) Current Time."""
        services = [
            GattService(
                DEVICE_INFORMATION_SERVICE,
                tuple(
                    GattCharacteristic(uuid, ("read",))
                    for uuid in (
                        MANUFACTURER_NAME,
                        MODEL_NUMBER,
                        SERIAL_NUMBER,
                        HARDWARE_REVISION,
                        FIRMWARE_REVISION,
                        SYSTEM_ID,
                    )
                ),
            ),
            GattService(BATTERY_SERVICE, (GattCharacteristic(BATTERY_LEVEL, ("read", "notify")),)),
        ]
        if self.time_sync is TimeSync.ISENS:
            services.append(
                GattService(
                    ISENS_CLOCK_SERVICE,
                    (GattCharacteristic(ISENS_CLOCK_CHARACTERISTIC, ("write", "notify")),),
                )
            )
        if self.time_sync is TimeSync.CTS:
            services.append(
                GattService(
                    CURRENT_TIME_SERVICE,
                    (
                        GattCharacteristic(CURRENT_TIME, ("read", "write", "notify")),
                        GattCharacteristic(LOCAL_TIME_INFORMATION, ("read",)),
                    ),
                )
            )
        return services

    def time_characteristics(self) -> tuple[GattCharacteristic, ...]:
        """The Date Time characteristic to put in the measurement service, if any."""
        if self.time_sync is TimeSync.DATE_TIME:
            return (GattCharacteristic(DATE_TIME, ("write",)),)
        return ()

    # -- hooks ----------------------------------------------------------------------------------

    async def on_connect(self, link: Link) -> None:
        loop = asyncio.get_running_loop()
        self.sessions += 1
        self.session = Session(link, last_activity=loop.time())
        if self._advert_timer is not None:
            self._advert_timer.cancel()
            self._advert_timer = None
        link.spawn(self._idle_watch(link))
        link.spawn(self.run_session(link))

    async def on_disconnect(self, link: Link, reason: DisconnectReason) -> None:
        if self.session is not None and self.session.link is link:
            self.session = None
        if self.advert_window is not None:
            self.advertising = False  # back to sleep until the next measurement

    async def run_session(self, link: Link) -> None:
        """The device's side of one connection (subclasses: transfer, then hang up)."""

    def touch(self) -> None:
        """The client did something: the idle timer starts again."""
        if self.session is not None:
            self.session.last_activity = asyncio.get_running_loop().time()

    async def _idle_watch(self, link: Link) -> None:
        loop = asyncio.get_running_loop()
        while link.up:
            session = self.session
            if session is None or session.link is not link:
                return
            remaining = session.last_activity + self.idle_timeout - loop.time()
            if remaining <= 0:
                link.disconnect(DisconnectReason.REMOTE)
                return
            await asyncio.sleep(remaining)

    async def on_read(self, link: Link, char: GattCharacteristic) -> bytes | None:
        self.touch()
        uuid = char.uuid
        strings = {
            MANUFACTURER_NAME: self.identity.manufacturer,
            MODEL_NUMBER: self.identity.model,
            SERIAL_NUMBER: self.identity.serial,
            HARDWARE_REVISION: self.identity.hardware,
            FIRMWARE_REVISION: self.identity.firmware,
        }
        if uuid in strings:
            return encode_string(DeviceString(strings[uuid]))
        if uuid == SYSTEM_ID:
            return encode_system_id(system_id_for(self.address))
        if uuid == BATTERY_LEVEL:
            return encode_battery_level(BatteryLevel(self.battery))
        if uuid == CURRENT_TIME:
            return encode_current_time(current_time_for(self.clock.now()))
        if uuid == LOCAL_TIME_INFORMATION:
            return encode_local_time_information(LocalTimeInformation(SEOUL_TIME_ZONE, 0))
        return None

    async def on_write(
        self, link: Link, char: GattCharacteristic, data: bytes, with_response: bool
    ) -> None:
        self.touch()
        if char.uuid in (CURRENT_TIME, DATE_TIME):
            self.take_time(char.uuid, data)
            return
        if char.uuid == ISENS_CLOCK_CHARACTERISTIC:
            self._isens_clock(link, bytes(data))
            return
        raise AttError(ATT_WRITE_NOT_PERMITTED)

    def _isens_clock(self, link: Link, data: bytes) -> None:
        """i-SENS: ``C0 03 01 00`` + Date Time sets the clock (all zeros reads it); the meter
        answers with a notification of the same header and its time (ble-profiles.md §8; the
        reply layout is assumed, not captured)."""
        if len(data) != 11 or data[:4] != ISENS_CLOCK_HEADER:
            raise AttError(ATT_VALUE_NOT_ALLOWED, "not an i-SENS clock command")
        if any(data[4:]):
            self.take_time(DATE_TIME, data[4:])
        reply = ISENS_CLOCK_HEADER + encode_date_time(self.clock.now())
        link.spawn(self._notify_later(link, ISENS_CLOCK_CHARACTERISTIC, reply))

    async def _notify_later(self, link: Link, uuid: str, data: bytes) -> None:
        await asyncio.sleep(0)  # after the write response
        await link.notify(uuid, data)

    async def on_subscribe(self, link: Link, char: GattCharacteristic) -> None:
        self.touch()
        if char.uuid == CURRENT_TIME:
            # Omron: the device tells its time, the host answers with a write.
            link.spawn(self._notify_time(link))

    async def _notify_time(self, link: Link) -> None:
        await asyncio.sleep(self.timing.notify_gap)
        await link.notify(CURRENT_TIME, encode_current_time(current_time_for(self.clock.now())))

    def take_time(self, uuid: str, data: bytes) -> None:
        """A host wrote the time; refuse it as the device would, or set the clock."""
        if self.faults.refuse_time_write:
            # The exchange happened; the device goes on with its own (wrong) clock.
            if self.session is not None:
                self.session.time_written.set()
            raise AttError(ATT_CTS_DATA_FIELD_IGNORED, "time write refused (fault)")
        try:
            if uuid == CURRENT_TIME:
                wall = decode_current_time(data).date_time.to_datetime()
            else:
                wall = decode_date_time_characteristic(data).to_datetime()
        except DecodeError as exc:
            raise AttError(ATT_CTS_DATA_FIELD_IGNORED, str(exc)) from None
        if wall is None:
            raise AttError(ATT_CTS_DATA_FIELD_IGNORED, "partial date")
        self.clock.set(wall)
        if self.session is not None:
            self.session.time_written.set()

    # -- transfer helpers -------------------------------------------------------------------

    async def wait_until_ready(self, link: Link, *uuids: str) -> bool:
        """Wait for the time write (when required) and the subscriptions; False if never."""
        session = self.session
        if session is None:
            return False
        try:
            async with asyncio.timeout(self.idle_timeout):
                for uuid in uuids:
                    if not await link.wait_subscribed(uuid):
                        return False
                if self.wait_for_time:
                    await session.time_written.wait()
        except TimeoutError:
            return False
        return link.up

    async def send_record(
        self, link: Link, packets: Sequence[tuple[str, bytes]], *, flags_len: int = 1
    ) -> bool:
        """Send one record (one or more notifications) with the faults applied.

        True when every packet was delivered; False when the link dropped (or the fault
        dropped it) first. The first packet carries the payload faults.
        """
        session = self.session
        if session is None or session.link is not link:
            return False
        faults = self.faults
        position = session.sent
        if faults.drop_after is not None and position >= faults.drop_after:
            link.disconnect(DisconnectReason.TIMEOUT)
            return False
        for index, (uuid, payload) in enumerate(packets):
            data = faults.mangle(position, payload, flags_len=flags_len) if index == 0 else payload
            if not await link.notify(uuid, data):
                return False
            self.touch()
            await asyncio.sleep(self.timing.notify_gap)
        session.sent += 1
        return True

    async def hang_up_after(self, link: Link) -> None:
        """The device is done: linger ``timing.hang_up`` seconds, then disconnect."""
        await asyncio.sleep(self.timing.hang_up)
        if link.up:
            link.disconnect(DisconnectReason.REMOTE)
