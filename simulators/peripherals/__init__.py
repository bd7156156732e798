"""Virtual BLE health devices for the virtual BlueZ, behaving like the real ones.

Each device is a plain object the tests and the demo configure: identity (address, name, Device
Information strings), stored records, security, timings and fault knobs
(:class:`Faults`, plus ``require_pairing()``, ``forget_bonds()``, ``clock.reset()`` and
``advertise_sparsely()``). Every characteristic value is encoded with ``devices``' encoders.

* :class:`BloodPressureCuff` (BLS): ``omron()`` and ``and_ua651()`` factories.
* :class:`GlucoseMeter` (GLS + RACP): ``caresens()``.
* :class:`WeightScale` (WSS, UDS) and :class:`BodyCompositionScale` (WSS + BCS + UDS):
  ``and_uc352()``, ``beurer_bf720()``.
* :mod:`simulators.peripherals.demo`: the demo's three centres' stations and home devices.

Add them to a :class:`~simulators.bluez.VirtualBlueZ` with ``bluez.add_peripheral(device)``.
"""

from simulators.peripherals.base import HealthDevice, Identity, Session, TimeSync
from simulators.peripherals.bp_cuff import BloodPressureCuff, StoredReading
from simulators.peripherals.faults import RESET_EPOCH, DeviceClock, Faults, seoul_now
from simulators.peripherals.glucose_meter import GlucoseMeter, GlucoseRecord
from simulators.peripherals.scales import (
    BodyCompositionScale,
    ScaleUser,
    Weighing,
    WeightScale,
)

__all__ = [
    "RESET_EPOCH",
    "BloodPressureCuff",
    "BodyCompositionScale",
    "DeviceClock",
    "Faults",
    "GlucoseMeter",
    "GlucoseRecord",
    "HealthDevice",
    "Identity",
    "ScaleUser",
    "Session",
    "StoredReading",
    "TimeSync",
    "Weighing",
    "WeightScale",
    "seoul_now",
]
