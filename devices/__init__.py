"""devices: bytes and station JSON in, typed values out (stdlib only, no I/O).

- :mod:`devices.ieee11073`  SFLOAT, FLOAT, Date Time
- :mod:`devices.gatt`       one codec module per Bluetooth SIG service (wire tables inside)
- :mod:`devices.decode`     any characteristic → the ``daon decode`` JSON object
- :mod:`devices.records`    one record's values → normalised :class:`Measurement`s
- :mod:`devices.quirks`     named opt-in fixes for devices that break the spec
- :mod:`devices.catalogue`  the table of device models
- :mod:`devices.station`    the MQTT station payload
- :mod:`devices.wire`       the gateway → ingest wire format
"""

from devices.errors import (
    DecodeError,
    DeviceError,
    EncodeError,
    InvalidUuid,
    StationPayloadError,
    UnknownCharacteristic,
    UnknownQuirk,
    WireError,
)
from devices.model import COMPONENT_CODES, Component, Kind, Measurement, Special

__all__ = [
    "COMPONENT_CODES",
    "Component",
    "DecodeError",
    "DeviceError",
    "EncodeError",
    "InvalidUuid",
    "Kind",
    "Measurement",
    "Special",
    "StationPayloadError",
    "UnknownCharacteristic",
    "UnknownQuirk",
    "WireError",
]
