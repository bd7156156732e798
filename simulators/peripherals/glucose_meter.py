"""A glucose meter (GLS 0x1808) with numbered records, context records and a full RACP.

Behaviour (ble-profiles.md §4, §7.3):

* Records carry sequence numbers that survive across connections and wrap 65535 → 0;
  :meth:`GlucoseMeter.reset_memory` (battery out, factory reset) empties the memory and starts
  the numbers again, which a gateway sees as "newest sequence below my high-water mark".
* A measurement with meal (or other) context sets flags bit 4 and is followed by its
  Glucose Measurement Context 0x2A34 with the same sequence number.
* The meter sends nothing by itself: the host enables notifications on 0x2A18/0x2A34 and
  indications on the RACP 0x2A52, then writes an RACP request with a Write Request:

  ====================  =====================================================================
  ``01 01``             report all records, then ``06 00 01 01``
  ``01 03 01 <n LE>``   report records with sequence ≥ n (``02``: ≤, ``04``: range, ``05``
                        first, ``06`` last); nothing matching: ``06 00 01 06`` no records found
  ``04 01`` / ``04 03``  number of records: ``05 00 <uint16>``
  ``02 ..``             delete records (same filters); ``06 00 02 01`` / ``06``
  ``03 00``             abort a running report: it stops, then ``06 00 03 01``
  anything else         ``06 00 <op> 02`` op code not supported; bad operator ``03``/``04``,
                        bad operand ``05``, time filter (type 2) ``09`` operand not supported
  ====================  =====================================================================

* ATT errors on the RACP write: indications not enabled → 0x81 (GLS 1.0) or 0xFD (newer
  services, ``common_att_codes=True``); a request while one is running, or the
  ``racp_busy`` fault → 0x80 / 0xFE "procedure already in progress".
* After ``idle_timeout`` seconds without a request the meter hangs up.
* ``month_13_bug`` reproduces the i-SENS firmware that sends January base times as month 13
  of the year before (Tidepool; the ``isens_month_13`` quirk of ``devices.quirks``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from struct import pack

from devices.errors import DecodeError
from devices.gatt.glucose import (
    ConcentrationUnit,
    GlucoseContext,
    GlucoseFeature,
    GlucoseMeasurement,
    encode_context,
    encode_feature,
    encode_measurement,
)
from devices.gatt.racp import (
    FILTER_SEQUENCE_NUMBER,
    OpCode,
    Operator,
    RacpNumberOfRecords,
    RacpRequest,
    RacpResponse,
    decode_racp,
    encode_racp,
)
from devices.ieee11073 import DateTime
from devices.model import Special
from devices.uuids import (
    GLUCOSE_FEATURE,
    GLUCOSE_MEASUREMENT,
    GLUCOSE_MEASUREMENT_CONTEXT,
    GLUCOSE_SERVICE,
    RECORD_ACCESS_CONTROL_POINT,
)
from simulators.bluez import AttError, GattCharacteristic, GattService, Link, Security, Timing
from simulators.bluez.errors import (
    ATT_CCCD_IMPROPERLY_CONFIGURED,
    ATT_GLS_CCCD_IMPROPERLY_CONFIGURED,
    ATT_GLS_PROCEDURE_IN_PROGRESS,
    ATT_PROCEDURE_IN_PROGRESS,
)
from simulators.peripherals.base import HealthDevice, Identity, TimeSync
from simulators.peripherals.faults import DeviceClock, Faults

# RACP response codes (GLS 1.0 Table 3.x; devices.gatt.racp.RESPONSE_NAMES).
SUCCESS = 0x01
OP_CODE_NOT_SUPPORTED = 0x02
INVALID_OPERATOR = 0x03
_FILTERED = frozenset({0x01, 0x02, 0x04})  # report, delete, count: operators 1-6 only
OPERATOR_NOT_SUPPORTED = 0x04
INVALID_OPERAND = 0x05
NO_RECORDS_FOUND = 0x06
OPERAND_NOT_SUPPORTED = 0x09

#: Feature bits: low battery, sensor malfunction, sample size, strip insertion, strip type,
#: result high/low, temperature high/low, read interrupt, general fault, time fault.
DEFAULT_FEATURE = 0x03FF

SAMPLE_CAPILLARY_WHOLE_BLOOD = 1
SAMPLE_CAPILLARY_PLASMA = 2
LOCATION_FINGER = 1
CONTROL_SOLUTION_TYPE = 10
CONTROL_SOLUTION_LOCATION = 4


@dataclass(slots=True, eq=False)
class GlucoseRecord:
    """One record in the meter: the measurement and, when flags bit 4 says so, its context."""

    measurement: GlucoseMeasurement
    context: GlucoseContext | None = None

    @property
    def sequence(self) -> int:
        return self.measurement.sequence_number


class GlucoseMeter(HealthDevice):
    """A GLS meter; :meth:`caresens` builds the demo's i-SENS CareSens N Premier."""

    measurement_service = GLUCOSE_SERVICE

    def __init__(
        self,
        address: str,
        name: str,
        identity: Identity,
        *,
        capacity: int = 500,
        first_sequence: int = 1,
        sample_type: int = SAMPLE_CAPILLARY_PLASMA,
        unit: ConcentrationUnit = ConcentrationUnit.KG_PER_L,
        common_att_codes: bool = False,
        feature: int = DEFAULT_FEATURE,
        time_sync: TimeSync = TimeSync.CTS,
        security: Security | None = None,
        timing: Timing | None = None,
        clock: DeviceClock | None = None,
        faults: Faults | None = None,
        idle_timeout: float = 10.0,
        month_13_bug: bool = False,
    ) -> None:
        super().__init__(
            address,
            name,
            identity,
            time_sync=time_sync,
            wait_for_time=False,
            security=security,
            timing=timing,
            clock=clock,
            faults=faults,
            idle_timeout=idle_timeout,
            appearance=0x0400,  # Generic Glucose Meter
        )
        if capacity < 1:
            raise ValueError("a meter keeps at least one record")
        self.capacity = capacity
        self.first_sequence = first_sequence & 0xFFFF
        self.next_sequence = self.first_sequence
        self.sample_type = sample_type
        self.unit = unit
        self.feature = feature
        self.records: list[GlucoseRecord] = []
        #: i-SENS firmware: January base times go out as month 13 of the year before.
        self.month_13_bug = month_13_bug
        self._busy_code = (
            ATT_PROCEDURE_IN_PROGRESS if common_att_codes else (ATT_GLS_PROCEDURE_IN_PROGRESS)
        )
        self._cccd_code = (
            ATT_CCCD_IMPROPERLY_CONFIGURED
            if common_att_codes
            else (ATT_GLS_CCCD_IMPROPERLY_CONFIGURED)
        )
        self._procedure: asyncio.Task[None] | None = None

    @classmethod
    def caresens(
        cls,
        address: str,
        *,
        serial: str = "5120001201",
        firmware: str = "2.1",
        **options: object,
    ) -> GlucoseMeter:
        """An i-SENS CareSens N Premier: GLS + RACP, bonded, plasma-calibrated, clock set by
        the i-SENS vendor command (devices.catalogue: clock ``vendor_command``)."""
        options.setdefault("security", Security(required=True))
        options.setdefault("time_sync", TimeSync.ISENS)
        tail = address.replace(":", "")[-4:]
        return cls(
            address,
            f"CareSens {tail}",
            Identity("i-SENS", "CareSens N Premier", serial, firmware),
            **options,  # type: ignore[arg-type]
        )

    # -- memory ------------------------------------------------------------------------------

    def take_reading(
        self,
        value: Decimal | int | Special,
        *,
        meal: int | None = None,
        at: datetime | None = None,
        sample_type: int | None = None,
        location: int = LOCATION_FINGER,
        sensor_status: int | None = None,
        context: GlucoseContext | None = None,
        time_offset_min: int | None = None,
    ) -> GlucoseRecord:
        """Measure: ``value`` is mg/dL for a kg/L meter, mmol/L for a mol/L one.

        ``meal`` (1 preprandial, 2 postprandial, 3 fasting, 4 casual, 5 bedtime; 6 is the
        CareSens Dual ketone marker) adds a context record; ``context`` gives a full one.
        """
        sequence = self.next_sequence
        self.next_sequence = (sequence + 1) & 0xFFFF
        if isinstance(value, Special):
            concentration: Decimal | Special = value
        elif self.unit is ConcentrationUnit.KG_PER_L:
            concentration = Decimal(value).scaleb(-5)  # mg/dL → kg/L, exponent kept
        else:
            concentration = Decimal(value).scaleb(-3)  # mmol/L → mol/L
        if context is None and meal is not None:
            context = GlucoseContext(sequence_number=sequence, meal=meal)
        elif context is not None:
            context = replace(context, sequence_number=sequence)
        stamp = at if at is not None else self.clock.now()
        measurement = GlucoseMeasurement(
            sequence_number=sequence,
            base_time=DateTime.from_datetime(stamp),
            time_offset_min=time_offset_min,
            concentration=concentration,
            unit=self.unit,
            sample_type=sample_type if sample_type is not None else self.sample_type,
            sample_location=location,
            sensor_status_raw=sensor_status,
            context_follows=context is not None,
        )
        record = GlucoseRecord(measurement, context)
        self.records.append(record)
        if len(self.records) > self.capacity:
            self.records.pop(0)
        self.wake_advertising()
        return record

    def take_control_solution(self, value: int = 110) -> GlucoseRecord:
        """A control-solution check (type 10, location 4): never a patient result."""
        return self.take_reading(
            value, sample_type=CONTROL_SOLUTION_TYPE, location=CONTROL_SOLUTION_LOCATION
        )

    def reset_memory(self) -> None:
        """Battery out or factory reset: records gone, numbering starts again."""
        self.records.clear()
        self.next_sequence = self.first_sequence

    # -- GATT ---------------------------------------------------------------------------------

    def services(self) -> list[GattService]:
        gls = GattService(
            GLUCOSE_SERVICE,
            (
                GattCharacteristic(GLUCOSE_MEASUREMENT, ("notify",), secure=True),
                GattCharacteristic(GLUCOSE_MEASUREMENT_CONTEXT, ("notify",), secure=True),
                GattCharacteristic(GLUCOSE_FEATURE, ("read",)),
                GattCharacteristic(RECORD_ACCESS_CONTROL_POINT, ("write", "indicate"), secure=True),
                *self.time_characteristics(),
            ),
        )
        return [*self.common_services(), gls]

    async def on_read(self, link: Link, char: GattCharacteristic) -> bytes | None:
        if char.uuid == GLUCOSE_FEATURE:
            self.touch()
            return encode_feature(GlucoseFeature(self.feature))
        return await super().on_read(link, char)

    async def on_write(
        self, link: Link, char: GattCharacteristic, data: bytes, with_response: bool
    ) -> None:
        if char.uuid != RECORD_ACCESS_CONTROL_POINT:
            await super().on_write(link, char, data, with_response)
            return
        self.touch()
        if not link.subscribed(RECORD_ACCESS_CONTROL_POINT):
            raise AttError(self._cccd_code, "RACP indications are not enabled")
        if self.faults.racp_busy:
            raise AttError(self._busy_code, "busy (fault)")
        running = self._procedure is not None and not self._procedure.done()
        if running and data[:1] != bytes([OpCode.ABORT_OPERATION]):
            raise AttError(self._busy_code, "a procedure is already running")
        if data[:1] == bytes([OpCode.ABORT_OPERATION]):
            link.spawn(self._abort(link, data))
            return
        self._procedure = link.spawn(self._serve(link, bytes(data)))

    # -- RACP ---------------------------------------------------------------------------------

    async def _respond(self, link: Link, op: int, code: int) -> None:
        await link.notify(RECORD_ACCESS_CONTROL_POINT, encode_racp(RacpResponse(op, code)))

    async def _abort(self, link: Link, data: bytes) -> None:
        await asyncio.sleep(0)  # the write response goes out first
        if len(data) < 2 or data[1] != Operator.NULL:
            await self._respond(link, OpCode.ABORT_OPERATION, INVALID_OPERATOR)
            return
        procedure = self._procedure
        if procedure is not None and not procedure.done():
            procedure.cancel()
            await asyncio.wait({procedure})
        await self._respond(link, OpCode.ABORT_OPERATION, SUCCESS)

    async def _serve(self, link: Link, data: bytes) -> None:
        await asyncio.sleep(0)  # the write response goes out first
        op = data[0] if data else 0
        if op in _FILTERED and len(data) >= 2 and data[1] == Operator.NULL:
            await self._respond(link, op, INVALID_OPERATOR)  # the decoder refuses it too
            return
        if op in _FILTERED and len(data) >= 2 and data[1] > Operator.LAST_RECORD:
            await self._respond(link, op, OPERATOR_NOT_SUPPORTED)
            return
        try:
            request = decode_racp(data)
        except DecodeError:
            await self._respond(link, op, INVALID_OPERAND)
            return
        if not isinstance(request, RacpRequest) or request.op_code not in (
            OpCode.REPORT_STORED_RECORDS,
            OpCode.DELETE_STORED_RECORDS,
            OpCode.REPORT_NUMBER_OF_RECORDS,
        ):
            await self._respond(link, op, OP_CODE_NOT_SUPPORTED)
            return
        if self.faults.racp_refuse is not None:
            await self._respond(link, op, self.faults.racp_refuse)
            return
        selected = self.select(request)
        if isinstance(selected, int):
            await self._respond(link, op, selected)
            return
        if request.op_code == OpCode.REPORT_NUMBER_OF_RECORDS:
            count = RacpNumberOfRecords(len(selected))
            await link.notify(RECORD_ACCESS_CONTROL_POINT, encode_racp(count))
            return
        if not selected:
            await self._respond(link, op, NO_RECORDS_FOUND)
            return
        if request.op_code == OpCode.DELETE_STORED_RECORDS:
            doomed = {id(r) for r in selected}
            self.records = [r for r in self.records if id(r) not in doomed]
            await self._respond(link, op, SUCCESS)
            return
        for record in selected:
            packets = [(GLUCOSE_MEASUREMENT, self.encode(record.measurement))]
            if record.context is not None:
                packets.append((GLUCOSE_MEASUREMENT_CONTEXT, encode_context(record.context)))
            if not await self.send_record(link, packets):
                return
        await self._respond(link, op, SUCCESS)

    def encode(self, measurement: GlucoseMeasurement) -> bytes:
        """The 0x2A18 payload, with the month-13 firmware bug when this meter has it."""
        payload = encode_measurement(measurement)
        if self.month_13_bug and measurement.base_time.month == 1:
            year = measurement.base_time.year - 1
            payload = payload[:3] + pack("<HB", year, 13) + payload[6:]
        return payload

    def select(self, request: RacpRequest) -> list[GlucoseRecord] | int:
        """The records an RACP filter designates, or the response code refusing it."""
        operator = request.operator
        records = self.records
        if operator == Operator.NULL:
            return INVALID_OPERATOR
        if operator > Operator.LAST_RECORD:
            return OPERATOR_NOT_SUPPORTED
        if operator in (Operator.ALL_RECORDS, Operator.FIRST_RECORD, Operator.LAST_RECORD):
            if request.operand or request.filter_type is not None:
                return INVALID_OPERAND
            if operator == Operator.ALL_RECORDS:
                return list(records)
            if not records:
                return []
            return [records[0]] if operator == Operator.FIRST_RECORD else [records[-1]]
        if request.filter_type != FILTER_SEQUENCE_NUMBER:
            return OPERAND_NOT_SUPPORTED
        low = request.min_sequence if request.min_sequence is not None else 0
        high = request.max_sequence if request.max_sequence is not None else 0xFFFF
        if low > high:
            return INVALID_OPERAND
        return [r for r in records if low <= r.sequence <= high]


__all__: Sequence[str] = ("GlucoseMeter", "GlucoseRecord")
