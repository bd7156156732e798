"""Issue 17: an Observation stored as typed columns + template + remainder is served byte for
byte as when the whole resource was stored as jsonb (trailing zeros, time zones, identifiers,
extensions), for every kind the mappings produce (tests/ingest/corpus.py)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from devices.model import Kind
from ingest import store
from ingest.fhir.encoding import dumps, loads
from ingest.fhir.stored import (
    SEP,
    Columns,
    ObservationTemplate,
    jsonb_text,
    stored_form,
    templatize,
)
from ingest.store.observations import store_observations
from ingest.store.templates import CONSTANT_NOTES, served_observations
from tests.ingest import corpus


async def _jsonb_texts(url: str, texts: list[str]) -> list[str]:
    """What PostgreSQL serves for each text stored as jsonb (``resource::text``)."""
    async with store.connection(url) as conn:
        cur = await conn.execute(
            "SELECT t::jsonb::text FROM unnest(%s::text[]) WITH ORDINALITY AS k(t, n) ORDER BY n",
            (texts,),
        )
        return [str(r[0]) for r in await cur.fetchall()]


def test_the_corpus_covers_every_kind_and_shape_the_mappings_produce() -> None:
    rows = list(corpus.mapped())
    kinds = Counter(kind for _, _, kind in rows)
    assert set(kinds) == {
        Kind.BLOOD_PRESSURE,
        Kind.GLUCOSE,
        Kind.BODY_WEIGHT,
        Kind.BODY_COMPOSITION,
        Kind.BODY_TEMPERATURE,
    }
    texts = [text for _, text, _ in rows]
    for needle in (
        "PhdCoincidentTimeStampObservation",  # corrected clocks
        "PhdBitsEnumerationObservation",  # status bits
        "PhdCodedEnumerationObservation",  # meal context
        "dataAbsentReason",  # special values
        "questionable",
        "Practitioner/",  # manual entry
        "urn:daon:sid:glucose-record",  # second identifier
        "kPa",  # converted units, with the note
        "derivedFrom",
        "8310-5",  # body temperature
        "39156-5",  # BMI
    ):
        assert any(needle in t for t in texts), needle
    assert any(r.resident_id is None for r, _, _ in rows)  # device QC, coincident timestamps
    assert len({r.template.id for r, _, _ in rows if r.template is not None}) >= 40


async def test_every_kind_is_served_byte_for_byte_as_the_jsonb_it_replaces(db_url: str) -> None:
    by_id: dict[str, tuple[Any, str]] = {}
    for row, old_text, _ in corpus.mapped():
        assert row.template is not None  # every mapped reading is a template row
        assert row.resource == old_text  # the write path's compact text is what it was
        by_id.setdefault(row.id, (row, old_text))
    for row, old_text in corpus.hand_entered():
        by_id.setdefault(row.id, (row, old_text))
    unique: dict[str, Any] = {}
    for row, _ in by_id.values():
        unique.setdefault(row.identifier, row)
    rows = list(unique.values())
    expected = dict(
        zip(
            [r.id for r in rows],
            await _jsonb_texts(db_url, [by_id[r.id][1] for r in rows]),
            strict=True,
        )
    )
    async with store.connection(db_url) as conn, conn.transaction():
        done = await store_observations(conn, rows)
    assert len(done.new) == len(rows)
    async with store.connection(db_url) as conn:
        served = {r.id: text for r, text in await served_observations(conn)}
        forms = await (
            await conn.execute(
                "SELECT count(*) FILTER (WHERE template_id IS NOT NULL), "
                "count(*) FILTER (WHERE template_id IS NULL), "
                "avg(octet_length(coalesce(remainder, ''))) FILTER (WHERE template_id IS NOT NULL)"
                " FROM observation"
            )
        ).fetchone()
    assert served.keys() == expected.keys()
    different = [i for i in expected if served[i] != expected[i]]
    assert different == [], [(expected[i], served[i]) for i in different[:3]]
    assert forms is not None
    templated, whole, remainder = forms
    # only the client's create (its own identifier and coding) is stored whole
    assert whole == 1
    assert templated == len(rows) - 1
    assert remainder < 40  # bytes of remainder per templated row


def test_the_mappings_templates_are_what_templatize_finds_in_their_resources() -> None:
    """A stored resource of the previous schema gets the template new writes use (so the
    migration and ingest share templates)."""
    for row, old_text, _ in corpus.mapped():
        assert row.template is not None
        found = templatize(loads(old_text), row.columns(), CONSTANT_NOTES)
        assert found is not None
        template, remainder = found
        assert template.body == row.template.body
        assert remainder == row.remainder


def test_a_mismatching_column_keeps_the_resource_whole() -> None:
    row, old_text, _ = next(corpus.mapped())
    wrong = row.columns()._replace(effective_at=datetime(2020, 1, 1, tzinfo=corpus.RECEIVED.tzinfo))
    template, remainder = stored_form(old_text, wrong, CONSTANT_NOTES)
    # the time is kept in the remainder instead: still rendered exactly
    assert template is not None
    assert template.served(wrong, remainder) == jsonb_text(loads(old_text))


def test_free_text_is_never_part_of_a_template() -> None:
    text = dumps(
        {
            "resourceType": "Observation",
            "id": "x",
            "identifier": [{"value": "k"}],
            "status": "final",
            "note": [{"text": "어지러움 호소"}],
        }
    )
    c = Columns("x", "k", "final", corpus.RECEIVED, corpus.RECEIVED, "R1", None, None)
    assert templatize(loads(text), c, CONSTANT_NOTES) is None
    assert stored_form(text, c, CONSTANT_NOTES) == (None, jsonb_text(loads(text)))


@pytest.mark.parametrize(
    "value",
    [Decimal("120"), Decimal("120.0"), Decimal("5.60"), Decimal("0.001"), Decimal("1E+2"), 7],
)
async def test_jsonb_text_is_postgresqls_own(db_url: str, value: Any) -> None:
    doc = {
        "b": value,
        "aa": [True, None, 'x"y\\z\n\t\u0001한글'],
        "a": {},
        "ccc": [],
        "bb": {"z": 1, "yy": "2"},
    }
    [pg] = await _jsonb_texts(db_url, [dumps(doc)])
    assert jsonb_text(doc) == pg


def test_a_remainder_never_carries_the_separator() -> None:
    template = ObservationTemplate.from_skeleton(
        {"resourceType": "Observation", "derivedFrom": [{"reference": "\x01$derived0"}]}
    )
    with pytest.raises(ValueError, match="separator"):
        template.remainder({"derived0": f"a{SEP}b"})
