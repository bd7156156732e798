"""Our JSON encoding keeps the precision HL7 PHD FLOATS.md requires, and one canonical order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.fhir.encoding import Template, canonical, clean_text, dumps, is_canonical, loads


# HL7/phd input/pagecontent/FLOATS.md, "SFLOAT Encoding": the FHIR encoding column.
@pytest.mark.parametrize(
    ("mantissa", "exponent", "fhir"),
    [
        (2, 0, "2"),
        (20, -1, "2.0"),
        (200, -2, "2.00"),
        (2, 1, "20"),
        (2, 2, "200"),
        (200, 0, "200"),
        (1234, 0, "1234"),
        (-1234, 0, "-1234"),
    ],
)
def test_floats_md_vectors_keep_their_precision(mantissa: int, exponent: int, fhir: str) -> None:
    value = Decimal(mantissa).scaleb(exponent)
    assert dumps({"value": value}) == '{"value":' + fhir + "}"


def test_trailing_zero_survives_a_round_trip() -> None:
    # the fhir.resources 8.3 pitfall of fhir-mapping-and-anchors.md §2.1: 5.60 must not become 5.6
    text = '{"valueQuantity":{"value":5.60,"unit":"mmol/L"}}'
    assert dumps(loads(text)) == text


def test_small_numbers_are_not_written_in_scientific_notation() -> None:
    assert dumps([Decimal("105E-5"), Decimal("1E+3")]) == "[0.00105,1000]"


def test_infinite_decimals_are_refused() -> None:
    with pytest.raises(ValueError, match="not a JSON number"):
        dumps({"value": Decimal("Infinity")})


def test_korean_text_is_kept_readable() -> None:
    assert dumps({"text": "혈압"}) == '{"text":"혈압"}'


def test_control_characters_are_removed_from_external_text() -> None:
    assert clean_text("A&D\x00\x00 ") == "A&D"


def test_canonical_puts_resource_type_and_id_first_and_fhir_order_after() -> None:
    shuffled = {
        "status": "final",
        "code": {},
        "id": "x",
        "resourceType": "Observation",
        "subject": {"reference": "Patient/1"},
        "meta": {},
    }
    assert list(canonical(shuffled)) == ["resourceType", "id", "meta", "status", "code", "subject"]
    assert is_canonical(canonical(shuffled))
    assert not is_canonical(shuffled)


def test_a_jsonb_reordered_resource_renders_back_to_the_same_text() -> None:
    text = dumps(
        {
            "resourceType": "Observation",
            "id": "x",
            "status": "final",
            "valueQuantity": {"value": Decimal("36.50"), "unit": "Cel"},
        }
    )
    # PostgreSQL jsonb output: shorter keys first, a space after colons and commas
    jsonb = (
        '{"id": "x", "status": "final", "resourceType": "Observation", '
        '"valueQuantity": {"unit": "Cel", "value": 36.50}}'
    )
    assert dumps(canonical(loads(jsonb))) == text


decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: abs(d.adjusted()) < 20
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | decimals | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_loads_inverts_dumps(value: object) -> None:
    text = dumps(value)
    assert dumps(loads(text)) == text


@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c"]), st.text(max_size=10) | decimals, min_size=3, max_size=3
    )
)
def test_template_fill_equals_dumping_the_same_dict(values: dict[str, object]) -> None:
    def build(s: Any) -> object:
        get = s.__getitem__
        return {"x": get("a"), "nested": [{"y": get("b")}, {"z": get("c"), "k": "fixed"}]}

    template = Template(build)
    assert template.slot_names == {"a", "b", "c"}
    assert template.fill(values) == dumps(build(values))  # type: ignore[arg-type]
