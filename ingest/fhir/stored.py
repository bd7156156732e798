"""A stored Observation: typed columns, a compiled template and a compact remainder (issue 17).

The one renderer of a stored Observation. A *template* is the resource of one shape with
named placeholders where a reading's values go; it is compiled once into two forms:

- **served** (:meth:`ObservationTemplate.served`): the text the FHIR API has always served on
  reads, which is PostgreSQL's ``jsonb::text`` of the stored resource (keys ordered by length
  then bytes, ``", "`` and ``": "`` separators; :func:`jsonb_text`);
- **compact** (:meth:`ObservationTemplate.compact`): the canonical compact text ingest built
  before (FHIR element order, no spaces), which the write path returns (a created resource,
  a conflicting duplicate's dead letter).

A slot is filled either from the row's typed columns (:data:`DERIVED`: ``id``, ``identifier``,
``status``, ``effective``, ``updated``, ``issued``, ``subject``, ``device``, ``gateway``) or from
the *remainder*: the other slot values (numbers as the device sent them, references to sibling
Observations, a second identifier, a performer) joined by :data:`SEP`, usually a few bytes.

Templates live in the ``observation_template`` table under an id derived from their text
(:func:`template_id`), so every process and every database agree on the id of a template
without asking, and a template is never changed in place: a mapping correction is a new
template (or an UPDATE of the few template rows by a migration), never a rewrite of readings.

A resource that no template describes (a client's own identifiers kept on a FHIR create, a
free-text note) is stored whole in the remainder as its served text (``template_id`` NULL), so
nothing is ever served differently from what was stored.

:func:`templatize` finds the template and remainder of an existing resource (the migration of
rows stored whole before, and writes that did not come through a compiled template); the result
is used only when it renders back byte for byte.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any, Final, NamedTuple

from ingest.fhir.encoding import canonical, decimal_text, dumps, loads
from ingest.fhir.ids import device_reference, gateway_reference
from ingest.fhir.vocab import (
    COINCIDENT_EXTENSION,
    GATEWAY_EXTENSION,
    GLUCOSE_RECORD_SYSTEM,
    iso,
    kst,
)

#: Separates remainder values (a control character: never in a FHIR string, clean_text drops it).
SEP: Final = "\x1f"
#: Slots filled from the typed columns.
DERIVED: Final = frozenset(
    {"id", "identifier", "status", "effective", "updated", "issued", "subject", "device", "gateway"}
)
_MARK: Final = "\x01"  # placeholder prefix; "$" string slot, "%" number slot
_SLOT_RE: Final = re.compile(r'"\\u0001([$%])([A-Za-z0-9_]+)"')


# --- PostgreSQL's jsonb text ----------------------------------------------------------------------


def _key_order(key: str) -> tuple[int, bytes]:
    raw = key.encode()
    return len(raw), raw


def jsonb_text(value: Any) -> str:
    """``value`` as PostgreSQL prints a ``jsonb`` (``jsonb::text``): object keys ordered by byte
    length, then bytes; ``", "`` between items and ``": "`` after keys; numbers as ``numeric``
    prints them (Decimals keep their exponent: 120.0 stays 120.0)."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        return (
            "{"
            + ", ".join(
                encode_basestring(k) + ": " + jsonb_text(value[k])
                for k in sorted(value, key=_key_order)
            )
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ", ".join(jsonb_text(v) for v in value) + "]" if value else "[]"
    if isinstance(value, str):
        return encode_basestring(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return _numeric_text(value)
    if isinstance(value, float):
        return _numeric_text(Decimal(repr(value)))
    raise TypeError(f"{type(value).__name__} is not JSON")


def _numeric_text(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"{value} is not a JSON number")
    text = decimal_text(value)
    return text[1:] if text.startswith("-") and not value else text  # numeric has no -0


# --- the columns a template reads --------------------------------------------------------------


class Columns(NamedTuple):
    """The typed columns the derived slots come from (an Observation row, read or about to be
    written)."""

    id: str
    identifier: str
    status: str
    effective_at: datetime
    received_at: datetime | None
    resident_id: str | None
    device_id: str | None
    gateway_id: str | None


def effective_text(moment: datetime) -> str:
    """``effectiveDateTime`` of a mapped reading: Korea time, whole seconds, or milliseconds
    when the time has a fraction (a gateway clock of a coincident timestamp)."""
    local = kst(moment)
    return local.isoformat(timespec="milliseconds" if local.microsecond else "seconds")


_DEVICE_REFS: dict[str, str] = {}
_GATEWAY_REFS: dict[str, str] = {}


def _device_ref(device_id: str | None) -> str:
    if device_id is None:
        raise ValueError("slot device needs device_id")
    found = _DEVICE_REFS.get(device_id)
    if found is None:
        found = device_reference(device_id)
        if len(_DEVICE_REFS) < 100_000:
            _DEVICE_REFS[device_id] = found
    return found


def _gateway_ref(c: Columns) -> str:
    if c.gateway_id is None:
        raise ValueError("slot gateway needs gateway_id")
    found = _GATEWAY_REFS.get(c.gateway_id)
    if found is None:
        found = gateway_reference(c.gateway_id)
        if len(_GATEWAY_REFS) < 100_000:
            _GATEWAY_REFS[c.gateway_id] = found
    return found


def _received(c: Columns) -> datetime:
    if c.received_at is None:
        raise ValueError("slots updated and issued need received_at")
    return c.received_at


def _subject(c: Columns) -> str:
    if c.resident_id is not None:
        return "Patient/" + c.resident_id
    return _device_ref(c.device_id)


_DERIVE: Final[dict[str, Callable[[Columns], str]]] = {
    "id": lambda c: c.id,
    "identifier": lambda c: c.identifier,
    "status": lambda c: c.status,
    "effective": lambda c: effective_text(c.effective_at),
    "updated": lambda c: kst(_received(c)).isoformat(timespec="milliseconds"),
    "issued": lambda c: iso(_received(c)),
    "subject": _subject,
    "device": lambda c: _device_ref(c.device_id),
    "gateway": _gateway_ref,
}


def derive(name: str, c: Columns) -> str:
    """The value of derived slot ``name`` from the columns (ValueError when it has none)."""
    found = _DERIVE.get(name)
    if found is None:
        raise ValueError(f"{name} is not a derived slot")
    return found(c)


# --- templates --------------------------------------------------------------------------------


def string_slot(name: str) -> str:
    """The placeholder of a string slot (for building a skeleton)."""
    return f"{_MARK}${name}"


def number_slot(name: str) -> str:
    """The placeholder of a number slot."""
    return f"{_MARK}%{name}"


def template_id(body: str) -> int:
    """The id of a template: the first 31 bits of the SHA-256 of its compact text (stable across
    processes and databases; a collision is refused when the template is stored)."""
    return int.from_bytes(hashlib.sha256(body.encode()).digest()[:4], "big") & 0x7FFF_FFFF


# (number?, derived slot's function or None, remainder index or -1, literal after)
_Piece = tuple[bool, Callable[[Columns], str] | None, int, str]


def _compile(text: str, rest: Sequence[str]) -> tuple[str, tuple[_Piece, ...]]:
    parts = _SLOT_RE.split(text)
    index = {name: i for i, name in enumerate(rest)}
    pieces: list[_Piece] = []
    for i in range(1, len(parts), 3):
        kind, name, literal = parts[i], parts[i + 1], parts[i + 2]
        if name in DERIVED:
            pieces.append((kind == "%", _DERIVE[name], -1, literal))
        else:
            pieces.append((kind == "%", None, index[name], literal))
    return parts[0], tuple(pieces)


class ObservationTemplate:
    """A compiled template (see the module docstring). Immutable; build with
    :meth:`from_skeleton` or :meth:`from_body`."""

    __slots__ = ("_compact", "_served", "body", "id", "number_slots", "rest")

    def __init__(self, body: str) -> None:
        self.body: str = body
        self.id: int = template_id(body)
        names: list[str] = []
        numbers: set[str] = set()
        for kind, name in _SLOT_RE.findall(body):
            if kind == "%":
                numbers.add(name)
            if name not in DERIVED and name not in names:
                names.append(name)
        self.rest: tuple[str, ...] = tuple(names)
        self.number_slots: frozenset[str] = frozenset(numbers)
        self._compact = _compile(body, self.rest)
        self._served = _compile(jsonb_text(loads(body)), self.rest)

    @classmethod
    def from_skeleton(cls, skeleton: Mapping[str, Any]) -> ObservationTemplate:
        return cls(dumps(canonical(dict(skeleton))))

    @classmethod
    def from_body(cls, body: str) -> ObservationTemplate:
        return cls(body)

    def remainder(self, slots: Mapping[str, str | Decimal]) -> str | None:
        """The remainder of one reading's slot values (None when the template needs none)."""
        if not self.rest:
            return None
        values = []
        for name in self.rest:
            value = slots[name]
            values.append(value if type(value) is str else decimal_text(value))  # type: ignore[arg-type]
        text = SEP.join(values)
        if text.count(SEP) != len(values) - 1:
            raise ValueError("a slot value contains the remainder separator")
        return text

    def _render(
        self, compiled: tuple[str, tuple[_Piece, ...]], c: Columns, remainder: str | None
    ) -> str:
        first, pieces = compiled
        values = remainder.split(SEP) if remainder is not None else []
        out = [first]
        append = out.append
        for number, derived, index, literal in pieces:
            value = values[index] if derived is None else derived(c)
            append(value if number else encode_basestring(value))
            append(literal)
        return "".join(out)

    def served(self, c: Columns, remainder: str | None) -> str:
        """The resource as the API serves it (PostgreSQL's jsonb text)."""
        return self._render(self._served, c, remainder)

    def compact(self, c: Columns, remainder: str | None) -> str:
        """The resource as canonical compact JSON (FHIR element order)."""
        return self._render(self._compact, c, remainder)


# --- the registry of compiled templates (per process; ids are global) ----------------------------

_BY_ID: dict[int, ObservationTemplate] = {}


def known(template_id_: int) -> ObservationTemplate | None:
    return _BY_ID.get(template_id_)


def remember(template: ObservationTemplate) -> ObservationTemplate:
    """Keep ``template`` by id (a different template under the same id is refused)."""
    have = _BY_ID.get(template.id)
    if have is None:
        _BY_ID[template.id] = template
        return template
    if have.body != template.body:
        raise ValueError(f"observation template id {template.id} collides")
    return have


def from_body(body: str) -> ObservationTemplate:
    """The compiled template of ``body`` (cached by id)."""
    found = _BY_ID.get(template_id(body))
    if found is not None and found.body == body:
        return found
    return remember(ObservationTemplate(body))


def render_served(template: ObservationTemplate | None, c: Columns, remainder: str | None) -> str:
    """What the API serves for a stored row: its template filled, or the whole stored text."""
    if template is None:
        if remainder is None:
            raise ValueError(f"Observation {c.id} has neither a template nor a stored resource")
        return remainder
    return template.served(c, remainder)


# --- finding the template of an existing resource ------------------------------------------------

#: Notes every mapped or hand-entered Observation may carry (constant text, part of a template).
#: Any other note is a person's own text: such a resource is stored whole.
_TOP: Final = frozenset(
    {
        "resourceType",
        "id",
        "meta",
        "extension",
        "identifier",
        "status",
        "category",
        "code",
        "subject",
        "effectiveDateTime",
        "issued",
        "performer",
        "valueQuantity",
        "valueCodeableConcept",
        "valueBoolean",
        "valueDateTime",
        "dataAbsentReason",
        "interpretation",
        "note",
        "device",
        "derivedFrom",
        "component",
    }
)


def templatize(
    resource: Mapping[str, Any],
    c: Columns,
    constant_notes: Iterable[str] = (),
    *,
    copy: bool = True,
) -> tuple[ObservationTemplate, str | None] | None:
    """The template and remainder that render ``resource`` for the row ``c``, or None when the
    resource is not of a shape a template describes (it is then stored whole).

    Slot values are taken from the places the mapping fills (ids, times, references, numbers);
    a value the columns give is a derived slot, any other goes to the remainder. The caller
    checks that the result renders back byte for byte before using it. ``copy=False`` lets it
    change ``resource`` in place (a value parsed for this call only).
    """
    if resource.get("resourceType") != "Observation" or not set(resource) <= _TOP:
        return None
    notes = resource.get("note")
    allowed = set(constant_notes)
    if notes is not None and not (
        isinstance(notes, list)
        and all(isinstance(n, dict) and set(n) == {"text"} and n["text"] in allowed for n in notes)
    ):
        return None
    # a deep copy (numbers as Decimal), unless the caller's value may be changed
    s: dict[str, Any] = loads(dumps(resource)) if copy else resource  # type: ignore[assignment]
    slots: dict[str, str | Decimal] = {}

    def place(name: str, value: Any, derived: str | None = None) -> str | None:
        """The placeholder for ``value`` in slot ``name``: the derived slot ``derived`` when the
        columns give the same text, else a remainder slot."""
        if isinstance(value, Decimal | int) and not isinstance(value, bool):
            slots[name] = Decimal(value) if isinstance(value, int) else value
            return number_slot(name)
        if not isinstance(value, str):
            return None
        if derived is not None:
            try:
                if derive(derived, c) == value:
                    return string_slot(derived)
            except ValueError:
                pass
        if name in DERIVED:
            name = "x_" + name
        slots[name] = value
        return string_slot(name)

    def ref(obj: Any, name: str, derived: str | None = None) -> bool:
        if not isinstance(obj, dict) or set(obj) != {"reference"}:
            return False
        placed = place(name, obj["reference"], derived)
        if placed is None:
            return False
        obj["reference"] = placed
        return True

    for key, name in (("id", "id"), ("status", "status"), ("effectiveDateTime", "effective")):
        if key in s:
            placed = place(name, s[key], name)
            if placed is None:
                return None
            s[key] = placed
    if "issued" in s:
        placed = place("issued", s["issued"], "issued")
        if placed is None:
            return None
        s["issued"] = placed
    meta = s.get("meta")
    if isinstance(meta, dict) and "lastUpdated" in meta:
        placed = place("updated", meta["lastUpdated"], "updated")
        if placed is None:
            return None
        meta["lastUpdated"] = placed
    identifiers = s.get("identifier")
    if not isinstance(identifiers, list) or not 1 <= len(identifiers) <= 2:
        return None
    first = identifiers[0]
    if not isinstance(first, dict) or first.get("value") != c.identifier:
        return None
    first["value"] = string_slot("identifier")
    if len(identifiers) == 2:
        second = identifiers[1]
        if not isinstance(second, dict) or second.get("system") != GLUCOSE_RECORD_SYSTEM:
            return None
        placed = place("identifier2", second.get("value"))
        if placed is None:
            return None
        second["value"] = placed
    for extension in s.get("extension") or []:
        if not isinstance(extension, dict):
            return None
        url = extension.get("url")
        if url == GATEWAY_EXTENSION:
            if not ref(extension.get("valueReference"), "gateway", "gateway"):
                return None
        elif url == COINCIDENT_EXTENSION:
            if not ref(extension.get("valueReference"), "coincident"):
                return None
        else:
            return None
    if "subject" in s and not ref(s["subject"], "subject", "subject"):
        return None
    performers = s.get("performer")
    if performers is not None:
        if not isinstance(performers, list) or len(performers) != 1:
            return None
        if not ref(performers[0], "performer", "subject"):
            return None
    device = s.get("device")
    if device is not None:
        reference = device.get("reference") if isinstance(device, dict) else None
        which = "gateway" if isinstance(reference, str) and "/phg-" in reference else "device"
        if not ref(device, which, which):
            return None
    for i, derived_from in enumerate(s.get("derivedFrom") or []):
        if not ref(derived_from, f"derived{i}"):
            return None
    quantity = s.get("valueQuantity")
    if isinstance(quantity, dict) and "value" in quantity:
        placed = place("value", quantity["value"])
        if placed is None:
            return None
        quantity["value"] = placed
    if isinstance(s.get("valueDateTime"), str):
        s["valueDateTime"] = place("value", s["valueDateTime"])
    for i, component in enumerate(s.get("component") or []):
        if not isinstance(component, dict):
            return None
        quantity = component.get("valueQuantity")
        if isinstance(quantity, dict) and "value" in quantity:
            placed = place(f"c{i}", quantity["value"])
            if placed is None:
                return None
            quantity["value"] = placed
    template = from_body(dumps(canonical(s)))  # compiled once per distinct template
    try:
        return template, template.remainder(slots)
    except (KeyError, ValueError):
        return None


def stored_form(
    resource_text: str,
    c: Columns,
    constant_notes: Iterable[str] = (),
    *,
    served: str | None = None,
) -> tuple[ObservationTemplate | None, str | None]:
    """How to store a resource given as JSON text (any key order): its template and remainder
    when they render it back exactly as served, else (None, the served text) to be stored
    whole. ``served`` is the text the API served for it (``resource::text`` of a row stored as
    jsonb: the migration); by default what PostgreSQL would print for it as jsonb."""
    value = loads(resource_text)
    if served is None:
        served = jsonb_text(value)
    found = templatize(value, c, constant_notes, copy=False)
    if found is not None:
        template, remainder = found
        if template.served(c, remainder) == served:
            return remember(template), remainder
    return None, served
