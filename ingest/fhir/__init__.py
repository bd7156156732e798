"""The one home of FHIR in Daon: vocabulary, ids, JSON encoding and resource builders.

Used by ingest (readings → Observations), by the clinical runner (flags → Flag, RiskAssessment,
Task) and by the API (reads, searches, writes) alike, so a reference one of them writes is an id
another one finds, and a code a builder writes is the code a search matches.

- :mod:`ingest.fhir.vocab`: code systems, identifier systems, profiles, codes, units, mapping
  tables (systems and codes live nowhere else);
- :mod:`ingest.fhir.ids`: the one id scheme (``phd-…``/``phg-…`` Devices, Patients,
  Practitioners, Observation UUIDv5) and the PHD conditional-create identifier;
- :mod:`ingest.fhir.encoding`: precision-keeping JSON (``dumps``/``loads``), canonical key
  order, templates, R4B validation (tests and audits only);
- :mod:`ingest.fhir.observations`: device and hand-entered readings → Observations (hot path);
- :mod:`ingest.fhir.devices`: PhdDevice, PhgDevice;
- :mod:`ingest.fhir.people`: Patient, Practitioner;
- :mod:`ingest.fhir.clinical`: Flag, RiskAssessment, Task.

Why inside ``ingest``: the dependency direction allows ``ingest`` → ``devices`` only, and every
layer that needs FHIR (the clinical runner, the API) may already import ``ingest``; the pure
clinical core imports none of it and returns values that the runner renders here. Every
builder is pure (values in, dicts or JSON text out), so storage may later render on read.

The names below are the Observation mapping's public face, re-exported for brevity.
"""

from __future__ import annotations

from ingest.fhir.devices import device_resource, gateway_resource
from ingest.fhir.encoding import render, render_bundle, validate
from ingest.fhir.ids import resource_id
from ingest.fhir.observations import (
    DEFAULT_POLICY,
    MANUAL_NOTE,
    Clock,
    Policy,
    ReadingContext,
    StoredObservation,
    UnboundRecord,
    to_observations,
    unbound_record,
)
from ingest.fhir.vocab import KST

__all__ = [
    "DEFAULT_POLICY",
    "KST",
    "MANUAL_NOTE",
    "Clock",
    "Policy",
    "ReadingContext",
    "StoredObservation",
    "UnboundRecord",
    "device_resource",
    "gateway_resource",
    "render",
    "render_bundle",
    "resource_id",
    "to_observations",
    "unbound_record",
    "validate",
]
