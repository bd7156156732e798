"""Device resources: a PhdDevice per registered device, a PhgDevice per gateway. Pure.

The ids come from :mod:`ingest.fhir.ids`, the same functions ingest uses to write
``Observation.device`` and the gatewayDevice extension, so those references resolve.
"""

from __future__ import annotations

from typing import Any, Final

from devices.model import Kind
from ingest.fhir.encoding import canonical
from ingest.fhir.ids import MAC_RE, phd_device_id, phg_device_id
from ingest.fhir.vocab import (
    BTMAC_SYSTEM,
    CONTINUA_DEVICE_IDENTIFIERS,
    DEVICE_SYSTEM,
    GATEWAY_SYSTEM,
    MDC,
    PHD_DEVICE,
    PHG_DEVICE,
)

#: kind → (MDC specialization code, reference id, specialization version). PHD IG 2.0.0 makes
#: ``specialization.version`` 1..1. Our devices speak the Bluetooth SIG profiles, mapped "as if"
#: they were ACOM objects (Non11073PHDDevices.md), so the version is the profile's: Blood Pressure
#: Profile 1.1, Glucose Profile 1.0.1, Weight Scale Profile 1.0, Body Composition Service 1.0;
#: the generic specialization carries the IEEE 11073-10206 version (1).
_SPECIALIZATION: Final = {
    Kind.BLOOD_PRESSURE.value: ("528391", "MDC_DEV_SPEC_PROFILE_BPM", "1.1"),
    Kind.GLUCOSE.value: ("528401", "MDC_DEV_SPEC_PROFILE_GLUCOSE", "1.0.1"),
    Kind.BODY_WEIGHT.value: ("528399", "MDC_DEV_SPEC_PROFILE_SCALE", "1.0"),
    Kind.BODY_COMPOSITION.value: ("528404", "MDC_DEV_SPEC_PROFILE_BCA", "1.0"),
}
_GENERIC: Final = ("528457", "MDC_DEV_SPEC_PROFILE_GENERIC", "1")


def device_resource(
    device_id: str,
    *,
    address: str | None = None,
    manufacturer: str | None = None,
    model: str | None = None,
    serial: str | None = None,
    firmware: str | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """The PhdDevice for a registry device (BT address as EUI-48, DIS strings)."""
    resource: dict[str, Any] = {
        "resourceType": "Device",
        "id": phd_device_id(device_id),
        "meta": {"versionId": "1", "profile": [PHD_DEVICE]},
    }
    identifiers = []
    mac = (
        address
        if address and MAC_RE.match(address)
        else (device_id if MAC_RE.match(device_id) else None)
    )
    if mac is not None:
        identifiers.append(
            {
                "type": {"coding": [{"system": CONTINUA_DEVICE_IDENTIFIERS, "code": "BTMAC"}]},
                "system": BTMAC_SYSTEM,
                "value": mac.replace(":", "-").upper(),
            }
        )
    else:
        identifiers.append({"system": DEVICE_SYSTEM, "value": device_id})
    resource["identifier"] = identifiers
    if manufacturer:
        resource["manufacturer"] = manufacturer
    if serial:
        resource["serialNumber"] = serial
    if model:
        resource["modelNumber"] = model
    resource["type"] = {
        "coding": [{"system": MDC, "code": "65573", "display": "MDC_MOC_VMS_MDS_SIMP"}]
    }
    spec = _SPECIALIZATION.get(kind or "", _GENERIC)
    resource["specialization"] = [
        {
            "systemType": {"coding": [{"system": MDC, "code": spec[0], "display": spec[1]}]},
            "version": spec[2],
        }
    ]
    if firmware:
        resource["version"] = [
            {
                "type": {
                    "coding": [{"system": MDC, "code": "531976", "display": "MDC_ID_PROD_SPEC_FW"}]
                },
                "value": firmware,
            }
        ]
    return canonical(resource)  # type: ignore[no-any-return]


def gateway_resource(gateway_id: str, *, description: str | None = None) -> dict[str, Any]:
    """The PhgDevice for one of our gateways."""
    resource: dict[str, Any] = {
        "resourceType": "Device",
        "id": phg_device_id(gateway_id),
        "meta": {"versionId": "1", "profile": [PHG_DEVICE]},
        "identifier": [{"system": GATEWAY_SYSTEM, "value": gateway_id}],
        "manufacturer": "Daon (행복다온 중구)",
        "modelNumber": "daon gateway",
        "type": {"coding": [{"system": MDC, "code": "531981", "display": "MDC_MOC_VMS_MDS_AHD"}]},
        # PhgDevice asks for the time synchronisation method: the gateway keeps NTP time
        "property": [
            {
                "type": {
                    "coding": [
                        {"system": MDC, "code": "68220", "display": "MDC_TIME_SYNC_PROTOCOL"}
                    ]
                },
                "valueCode": [
                    {
                        "coding": [
                            {"system": MDC, "code": "532226", "display": "MDC_TIME_SYNC_NTPV4"}
                        ]
                    }
                ],
            }
        ],
    }
    if description:
        resource["deviceName"] = [{"name": description, "type": "user-friendly-name"}]
    return canonical(resource)  # type: ignore[no-any-return]
