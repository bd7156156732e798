"""Our own JSON encoding of FHIR resources: precision as the device sent it, one canonical order.

Why not ``json.dumps(float)`` or the ``fhir.resources`` serialiser: both drop trailing zeros
(``Decimal("5.60")`` becomes ``5.6``), and HL7 PHD FLOATS.md requires the precision the device
reported (2 vs 2.0 vs 2.00) to survive (fhir-mapping-and-anchors.md §2.1, pitfall).

- :func:`dumps` writes :class:`~decimal.Decimal` values as JSON numbers with their exponent
  (``36.50`` stays ``36.50``; never scientific notation), compact separators, UTF-8 text as is.
- :func:`loads` reads numbers back as ``Decimal`` (and integers as ``int``), so
  ``dumps(loads(text)) == text`` for anything :func:`dumps` wrote.
- :func:`canonical` puts keys in FHIR element order. PostgreSQL's ``jsonb`` reorders keys, so
  the API renders a stored resource with ``dumps(canonical(loads(text)))`` and gets, byte for
  byte, what ``daon fhir`` printed and ingest stored.
- :class:`Template` is the hot-path form of a resource: a shape rendered once with named
  placeholders, then filled per reading by string joins (a few µs instead of building and
  dumping dicts). Tests check that a template fill equals :func:`dumps` of the same dict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any, Final

# Decimals travel through the C encoder as marked strings and are unmarked afterwards; the
# marker starts with NUL, which no string in our resources contains (external text is cleaned
# with clean_text before it reaches a resource).
_NUMBER_MARK: Final = "\x00#"
_NUMBER_RE: Final = re.compile(r'"\\u0000#(-?[0-9][0-9.]*)"')
_SLOT_RE: Final = re.compile(r'"\\u0000\$([A-Za-z0-9_]+)"')
_CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def decimal_text(value: Decimal) -> str:
    """A finite Decimal as a JSON number keeping its exponent: 36.50 → ``36.50``, 2E+1 → ``20``."""
    text = str(value)
    if "E" in text or "e" in text:
        text = format(value, "f")
    return text


def _default(value: object) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return _NUMBER_MARK + decimal_text(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(obj: Any) -> str:
    """Compact JSON text; Decimals keep their precision (a float would not: pass Decimals)."""
    text = json.dumps(
        obj, ensure_ascii=False, separators=(",", ":"), default=_default, allow_nan=False
    )
    if "\\u0000#" in text:
        text = _NUMBER_RE.sub(r"\1", text)
    return text


def loads(text: str | bytes) -> Any:
    """Parse JSON with every non-integer number as a Decimal (precision kept)."""
    return json.loads(text, parse_float=Decimal)


def clean_text(text: str) -> str:
    """External text (device strings, ids) without control characters (FHIR strings forbid them)."""
    return _CONTROL_RE.sub("", text).strip()


# FHIR R4 element order, per resource and per data type. PostgreSQL's jsonb forgets key order,
# so :func:`canonical` restores it from the key set: an object's type is known from the key it
# sits under (``"valueQuantity"`` → Quantity) or from its ``resourceType``. Keys not listed
# sort after the listed ones, alphabetically.
_DOMAIN: Final = (
    "resourceType",
    "id",
    "meta",
    "implicitRules",
    "language",
    "text",
    "contained",
    "extension",
    "modifierExtension",
)
_RESOURCES: Final[dict[str, tuple[str, ...]]] = {
    "Observation": (
        *_DOMAIN,
        "identifier",
        "basedOn",
        "partOf",
        "status",
        "category",
        "code",
        "subject",
        "focus",
        "encounter",
        "effectiveDateTime",
        "effectivePeriod",
        "effectiveInstant",
        "issued",
        "performer",
        "valueQuantity",
        "valueCodeableConcept",
        "valueString",
        "valueBoolean",
        "valueInteger",
        "valueRange",
        "valueRatio",
        "valueSampledData",
        "valueTime",
        "valueDateTime",
        "valuePeriod",
        "dataAbsentReason",
        "interpretation",
        "note",
        "bodySite",
        "method",
        "specimen",
        "device",
        "referenceRange",
        "hasMember",
        "derivedFrom",
        "component",
    ),
    "Device": (
        *_DOMAIN,
        "identifier",
        "definition",
        "udiCarrier",
        "status",
        "statusReason",
        "distinctIdentifier",
        "manufacturer",
        "manufactureDate",
        "expirationDate",
        "lotNumber",
        "serialNumber",
        "deviceName",
        "modelNumber",
        "partNumber",
        "type",
        "specialization",
        "version",
        "property",
        "patient",
        "owner",
        "contact",
        "location",
        "url",
        "note",
        "safety",
        "parent",
    ),
    "Provenance": (
        *_DOMAIN,
        "target",
        "occurredPeriod",
        "occurredDateTime",
        "recorded",
        "policy",
        "location",
        "reason",
        "activity",
        "agent",
        "entity",
        "signature",
    ),
}
_CODING: Final = ("system", "version", "code", "display", "userSelected")
_CONCEPT: Final = ("coding", "text")
_QUANTITY: Final = ("value", "comparator", "unit", "system", "code")
_REFERENCE: Final = ("reference", "type", "identifier", "display")
_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "meta": ("versionId", "lastUpdated", "source", "profile", "security", "tag"),
    "extension": ("url",),  # then value[x] (alphabetical after url)
    "modifierExtension": ("url",),
    "identifier": ("use", "type", "system", "value", "period", "assigner"),
    "coding": _CODING,
    "security": _CODING,
    "tag": _CODING,
    "code": _CONCEPT,
    "category": _CONCEPT,
    "interpretation": _CONCEPT,
    "dataAbsentReason": _CONCEPT,
    "valueCodeableConcept": _CONCEPT,
    "type": _CONCEPT,
    "systemType": _CONCEPT,
    "method": _CONCEPT,
    "bodySite": _CONCEPT,
    "activity": _CONCEPT,
    "reason": _CONCEPT,
    "valueQuantity": _QUANTITY,
    "low": _QUANTITY,
    "high": _QUANTITY,
    "subject": _REFERENCE,
    "device": _REFERENCE,
    "performer": _REFERENCE,
    "derivedFrom": _REFERENCE,
    "hasMember": _REFERENCE,
    "valueReference": _REFERENCE,
    "who": _REFERENCE,
    "onBehalfOf": _REFERENCE,
    "target": _REFERENCE,
    "what": _REFERENCE,
    "patient": _REFERENCE,
    "parent": _REFERENCE,
    "specimen": _REFERENCE,
    "note": ("authorReference", "authorString", "time", "text"),
    "component": (
        "code",
        "valueQuantity",
        "valueCodeableConcept",
        "valueString",
        "valueBoolean",
        "valueInteger",
        "valueRange",
        "valueRatio",
        "valueSampledData",
        "valueTime",
        "valueDateTime",
        "valuePeriod",
        "dataAbsentReason",
        "interpretation",
        "referenceRange",
    ),
    "specialization": ("systemType", "version"),
    "version": ("type", "component", "value"),
    "deviceName": ("name", "type"),
    "agent": ("type", "role", "who", "onBehalfOf"),
    "entity": ("role", "what", "agent"),
    "effectivePeriod": ("start", "end"),
    "period": ("start", "end"),
}
_RANKS: Final = {
    name: {key: i for i, key in enumerate(order)}
    for name, order in (*_RESOURCES.items(), *_TYPES.items())
}
_NONE: Final[dict[str, int]] = {}


def _ranking(obj: dict[str, Any], parent: str | None) -> dict[str, int]:
    resource_type = obj.get("resourceType")
    if isinstance(resource_type, str) and resource_type in _RANKS:
        return _RANKS[resource_type]
    return _RANKS.get(parent or "", _NONE)


def _order(obj: dict[str, Any], parent: str | None) -> list[str]:
    rank = _ranking(obj, parent)
    last = len(rank)
    return sorted(obj, key=lambda k: (rank.get(k, last), k))


def canonical(obj: Any, parent: str | None = None) -> Any:
    """The same JSON value with every object's keys in FHIR element order (lists keep order)."""
    if isinstance(obj, dict):
        return {k: canonical(obj[k], k) for k in _order(obj, parent)}
    if isinstance(obj, list):
        return [canonical(v, parent) for v in obj]
    return obj


def is_canonical(obj: Any, parent: str | None = None) -> bool:
    """True when every object's keys are already in canonical order."""
    if isinstance(obj, dict):
        return list(obj) == _order(obj, parent) and all(is_canonical(v, k) for k, v in obj.items())
    if isinstance(obj, list):
        return all(is_canonical(v, parent) for v in obj)
    return True


class _Placeholders(dict[str, str]):
    """Hands out a placeholder for any slot name a builder asks for."""

    def __missing__(self, key: str) -> str:
        return f"\x00${key}"


def encode_slot(value: str | Decimal) -> str:
    """One slot value as JSON text: a string literal, or a number keeping its precision."""
    if type(value) is str:
        return encode_basestring(value)
    if isinstance(value, Decimal):
        return decimal_text(value)
    raise TypeError(f"slot value {value!r} is neither str nor Decimal")


class Template:
    """A resource shape rendered once with placeholders; :meth:`fill` renders one instance.

    ``build(slots)`` must only *place* slot values (no arithmetic or branching on them), so the
    structure depends on the shape alone; every slot is a ``str`` or a ``Decimal``.
    """

    __slots__ = ("_first", "_pairs", "slot_names")

    def __init__(self, build: Callable[[Mapping[str, Any]], Any]) -> None:
        text = dumps(build(_Placeholders()))
        pieces = _SLOT_RE.split(text)
        self._first: str = pieces[0]
        pairs = zip(pieces[1::2], pieces[2::2], strict=True)
        self._pairs: tuple[tuple[str, str], ...] = tuple(pairs)
        self.slot_names: frozenset[str] = frozenset(pieces[1::2])

    def fill(self, slots: Mapping[str, str | Decimal]) -> str:
        out = [self._first]
        append = out.append
        for name, literal in self._pairs:
            value = slots[name]
            if type(value) is str:
                append(encode_basestring(value))
            elif isinstance(value, Decimal):
                append(decimal_text(value))
            else:
                raise TypeError(f"slot {name}={value!r} is neither str nor Decimal")
            append(literal)
        return "".join(out)


# --- rendering and validation ------------------------------------------------------------------


def render(resource: Any) -> str:
    """A resource (dict, or JSON text as read back from jsonb) as the API serves it."""
    value = loads(resource) if isinstance(resource, str | bytes) else resource
    return dumps(canonical(value))


def render_bundle(resources: Sequence[str]) -> str:
    """A JSON array of already-rendered resources (what ``daon fhir`` prints per line)."""
    return "[" + ",".join(resources) + "]"


def validate(resource: Mapping[str, Any] | str) -> None:
    """Check a resource against the ``fhir.resources`` R4B model (tests and audits only).

    Raises ``pydantic.ValidationError``. Imported lazily: model construction costs about
    0.5 ms per Observation, far too much for the hot path.
    """
    from fhir.resources.R4B import get_fhir_model_class

    data = loads(resource) if isinstance(resource, str) else dict(resource)
    model = get_fhir_model_class(str(data["resourceType"]))
    model.model_validate(data)
