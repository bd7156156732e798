"""A blood-pressure monitor (BLS 0x1810) that behaves like the Omron and A&D cuffs.

Behaviour (ble-profiles.md §3, §7.2):

* It keeps stored readings with user IDs and measurement status bits, stamped by its own
  clock (which may be wrong, or back in 2000 after a battery change).
* On a connection it waits until the host has written the time (Omron: Current Time 0x2A2B,
  answering the CTS notification the cuff sends once subscribed; A&D: Date Time 0x2A08 inside
  0x1810) and has enabled indications on 0x2A35; then it indicates every reading the host has
  not had yet, lingers ``timing.hang_up`` seconds and hangs up by itself. A host that never
  writes the time gets nothing: after ``idle_timeout`` the cuff hangs up.
* Readings are marked sent only once their indication was confirmed, so a transfer cut short
  resends the rest next time; ``delete_after_transfer`` (Omron X4 Smart) forgets them
  instead, ``faults.resend_all`` (SBM69, Beurer BM85) sends the whole memory every time.
* Omron style advertises the company 0x020E manufacturer data: ``01``, a flags byte (bits 0-1
  users - 1, bit 2 time not set, bit 3 pairing mode, bit 5 standard-services mode) and per
  user ``uint16 sequence number, uint8 records not yet transferred``; its name starts with
  ``BLEsmart_`` in pairing mode and ``BLESmart_`` otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from struct import pack

from devices.gatt.blood_pressure import (
    BloodPressureFeature,
    BloodPressureMeasurement,
    IntermediateCuffPressure,
    PressureUnit,
    encode_feature,
    encode_intermediate_cuff_pressure,
    encode_measurement,
    status_bits,
)
from devices.ieee11073 import DateTime
from devices.model import Special
from devices.uuids import (
    BLOOD_PRESSURE_FEATURE,
    BLOOD_PRESSURE_MEASUREMENT,
    BLOOD_PRESSURE_SERVICE,
    INTERMEDIATE_CUFF_PRESSURE,
    OMRON_COMPANY_ID,
)
from simulators.bluez import GattCharacteristic, GattService, Link, Security, Timing
from simulators.bluez.peripheral import Advertisement
from simulators.peripherals.base import HealthDevice, Identity, TimeSync
from simulators.peripherals.faults import DeviceClock, Faults

Pressure = Decimal | Special | int

#: Feature bits: body movement, cuff fit, irregular pulse, pulse-rate range detection.
DEFAULT_FEATURE = 0b0000_1111


@dataclass(slots=True, eq=False)
class StoredReading:
    """One reading in the cuff's memory."""

    measurement: BloodPressureMeasurement
    sent: bool = False

    @property
    def user(self) -> int | None:
        return self.measurement.user_id


def _pressure(value: Pressure) -> Decimal | Special:
    return Decimal(value) if isinstance(value, int) else value


class BloodPressureCuff(HealthDevice):
    """A BLS cuff; build one with :meth:`omron` or :meth:`and_ua651`, or configure freely."""

    measurement_service = BLOOD_PRESSURE_SERVICE

    def __init__(
        self,
        address: str,
        name: str,
        identity: Identity,
        *,
        users: int = 2,
        delete_after_transfer: bool = False,
        omron_advertising: bool = False,
        feature: int = DEFAULT_FEATURE,
        time_sync: TimeSync = TimeSync.CTS,
        security: Security | None = None,
        timing: Timing | None = None,
        clock: DeviceClock | None = None,
        faults: Faults | None = None,
        idle_timeout: float = 10.0,
    ) -> None:
        if not 1 <= users <= 4:
            raise ValueError("an Omron-style cuff has 1 to 4 user slots")
        super().__init__(
            address,
            name,
            identity,
            time_sync=time_sync,
            security=security,
            timing=timing,
            clock=clock,
            faults=faults,
            idle_timeout=idle_timeout,
            appearance=0x0381,  # Blood Pressure: Arm
        )
        self.users = users
        self.delete_after_transfer = delete_after_transfer
        self.omron_advertising = omron_advertising
        self.feature = feature
        self.memory: list[StoredReading] = []
        self._taken: dict[int, int] = {}

    # -- factories -------------------------------------------------------------------------

    @classmethod
    def omron(
        cls,
        address: str,
        *,
        model: str = "HEM-7600T",
        serial: str = "20240001",
        firmware: str = "2.0",
        **options: object,
    ) -> BloodPressureCuff:
        """An Omron cuff: CTS time write, 0x020E manufacturer data, one bonded host only."""
        options.setdefault("security", Security(required=True, single_bond=True))
        cuff = cls(
            address,
            _omron_name(address, pairing=True),
            Identity("OMRON", model, serial, firmware),
            omron_advertising=True,
            time_sync=TimeSync.CTS,
            **options,  # type: ignore[arg-type]
        )
        return cuff

    @classmethod
    def and_ua651(
        cls,
        address: str,
        *,
        serial: str = "5120034871",
        firmware: str = "1.3",
        **options: object,
    ) -> BloodPressureCuff:
        """An A&D UA-651BLE: Date Time 0x2A08 write before indications, limited adverts
        while pairable, one bonded host only."""
        options.setdefault("security", Security(required=True, single_bond=True))
        options.setdefault("users", 1)
        tail = address.replace(":", "")[-6:]
        cuff = cls(
            address,
            f"A&D_UA-651BLE_{tail}",
            Identity("A&D Medical", "UA-651BLE", serial, firmware),
            time_sync=TimeSync.DATE_TIME,
            **options,  # type: ignore[arg-type]
        )
        cuff.pairing_flag = True
        return cuff

    # -- memory ------------------------------------------------------------------------------

    def store(self, measurement: BloodPressureMeasurement, *, sent: bool = False) -> None:
        """Put a reading in memory as is (its own timestamp, user and status)."""
        self.memory.append(StoredReading(measurement, sent))
        if measurement.user_id is not None:
            self._taken[measurement.user_id] = self._taken.get(measurement.user_id, 0) + 1

    def take_reading(
        self,
        systolic: Pressure,
        diastolic: Pressure,
        pulse: Pressure | None = None,
        *,
        user: int | None = 1,
        status: Sequence[str] = (),
        mean: Pressure | None = None,
        at: datetime | None = None,
        unit: PressureUnit = PressureUnit.MMHG,
    ) -> BloodPressureMeasurement:
        """Measure: stamp with the device clock (or ``at``), store, and start advertising.

        ``mean`` defaults to the cuff's own estimate DBP + (SBP - DBP) / 3, rounded.
        ``status`` takes the names of cli-decode.md (``irregular_pulse`` ...).
        """
        sys_value, dia_value = _pressure(systolic), _pressure(diastolic)
        if mean is None:
            if isinstance(sys_value, Decimal) and isinstance(dia_value, Decimal):
                mean_value: Decimal | Special = (dia_value + (sys_value - dia_value) / 3).quantize(
                    Decimal(1)
                )
            else:
                mean_value = Special.NAN
        else:
            mean_value = _pressure(mean)
        stamp = at if at is not None else self.clock.now()
        measurement = BloodPressureMeasurement(
            systolic=sys_value,
            diastolic=dia_value,
            mean_arterial_pressure=mean_value,
            unit=unit,
            timestamp=DateTime.from_datetime(stamp),
            pulse_rate=None if pulse is None else _pressure(pulse),
            user_id=user,
            status_raw=status_bits(tuple(status)),
        )
        self.store(measurement)
        self.wake_advertising()
        return measurement

    def take_error_reading(self, user: int | None = 1) -> BloodPressureMeasurement:
        """The cuff showed "Err": every value NaN, status bits left 0 (derdilla #80)."""
        return self.take_reading(Special.NAN, Special.NAN, Special.NAN, user=user, mean=Special.NAN)

    def pending(self) -> list[StoredReading]:
        """What the next transfer sends."""
        if self.faults.resend_all:
            return list(self.memory)
        return [r for r in self.memory if not r.sent]

    # -- GATT ---------------------------------------------------------------------------------

    def services(self) -> list[GattService]:
        bls = GattService(
            BLOOD_PRESSURE_SERVICE,
            (
                GattCharacteristic(BLOOD_PRESSURE_MEASUREMENT, ("indicate",), secure=True),
                GattCharacteristic(INTERMEDIATE_CUFF_PRESSURE, ("notify",), secure=True),
                GattCharacteristic(BLOOD_PRESSURE_FEATURE, ("read",)),
                *self.time_characteristics(),
            ),
        )
        return [*self.common_services(), bls]

    async def on_read(self, link: Link, char: GattCharacteristic) -> bytes | None:
        if char.uuid == BLOOD_PRESSURE_FEATURE:
            self.touch()
            return encode_feature(BloodPressureFeature(self.feature))
        return await super().on_read(link, char)

    async def run_session(self, link: Link) -> None:
        if not await self.wait_until_ready(link, BLOOD_PRESSURE_MEASUREMENT):
            return  # the idle timer hangs up
        await self.transfer(link)

    async def transfer(self, link: Link) -> int:
        """Indicate the pending readings, then hang up; returns how many were confirmed."""
        confirmed = 0
        for reading in self.pending():
            payload = encode_measurement(reading.measurement)
            if not await self.send_record(link, [(BLOOD_PRESSURE_MEASUREMENT, payload)]):
                return confirmed
            confirmed += 1
            reading.sent = True
            if self.delete_after_transfer and reading in self.memory:
                self.memory.remove(reading)
        await self.hang_up_after(link)
        return confirmed

    async def stream_cuff_pressure(self, link: Link, pressures: Sequence[int]) -> None:
        """Live 0x2A36 notifications while inflating (display only, never a result)."""
        for value in pressures:
            live = IntermediateCuffPressure(Decimal(value), user_id=1)
            await link.notify(INTERMEDIATE_CUFF_PRESSURE, encode_intermediate_cuff_pressure(live))
            await asyncio.sleep(self.timing.notify_gap)

    # -- advertising ------------------------------------------------------------------------

    def set_pairing_mode(self, on: bool) -> None:
        super().set_pairing_mode(on)
        if self.omron_advertising:
            self.name = _omron_name(self.address, pairing=on)

    def advertisement(self) -> Advertisement:
        adv = super().advertisement()
        if not self.omron_advertising:
            return adv
        flags = (self.users - 1) & 0x03
        if not self.clock.host_set:
            flags |= 0x04
        if self.security.pairable:
            flags |= 0x08
        flags |= 0x20
        data = bytearray([0x01, flags])
        pending = self.pending()
        for user in range(1, self.users + 1):
            count = sum(1 for r in pending if r.user == user)
            data += pack("<HB", self._taken.get(user, 0) & 0xFFFF, min(count, 255))
        return Advertisement(
            name=self.name,
            service_uuids=adv.service_uuids,
            manufacturer_data={OMRON_COMPANY_ID: bytes(data)},
            service_data=adv.service_data,
            tx_power=adv.tx_power,
            rssi=adv.rssi,
            appearance=adv.appearance,
            flags=adv.flags,
        )


def _omron_name(address: str, *, pairing: bool) -> str:
    """Omron's name: ``BLEsmart_`` (pairing mode) or ``BLESmart_``, model id, then the MAC."""
    prefix = "BLEsmart_" if pairing else "BLESmart_"
    return f"{prefix}0000015F{address.replace(':', '')}"
