"""Synthetic contact details: cannot reach anyone, right 동, plausible shares."""

from __future__ import annotations

import re

import numpy as np

from ingest.store.registry import RELATIONSHIPS
from simulators.population import NEIGHBOURHOODS, Population, generate

# The numbering plan of the brief: synthetic numbers must not reach anyone.
MOBILE = re.compile(r"^010-0000-\d{4}$")
LANDLINE = re.compile(r"^02-0000-\d{4}$")


def test_every_number_is_in_the_unassigned_ranges(district: Population) -> None:
    c = district.contacts
    assert len(c) == len(district.residents)
    assert all(MOBILE.match(p) for p in c.mobile_phone.tolist())
    assert all(LANDLINE.match(p) for p in c.home_phone.tolist() if p)
    assert all(MOBILE.match(p) for p in c.contact_phone.tolist() if p)


def test_addresses_are_in_the_residents_own_neighbourhood(district: Population) -> None:
    c, r = district.contacts, district.residents
    for road, nb in zip(c.address_road.tolist(), r.neighbourhood.tolist(), strict=True):
        # an invented road named after the 동: '약수다온3길' for 약수동
        assert re.fullmatch(re.escape(nb.removesuffix("동")) + r"다온[1-9]길", road), (road, nb)
    assert set(r.neighbourhood.tolist()) == {nb.name for nb in NEIGHBOURHOODS}


def test_shares_follow_the_stated_assumptions(district: Population) -> None:
    c, r = district.contacts, district.residents
    older = r.age >= 65
    general = r.benefit == "general"
    # 22 % of older and 12 % of younger general residents live alone (±1.5 points)
    assert abs(c.lives_alone[older & general].mean() - 0.22) < 0.015
    assert abs(c.lives_alone[~older & general].mean() - 0.12) < 0.015
    assert abs((c.contact_name != "")[~c.lives_alone].mean() - 0.90) < 0.015
    assert abs((c.home_phone != "")[older].mean() - 0.55) < 0.015


def test_contacts_are_consistent(district: Population) -> None:
    c, r = district.contacts, district.residents
    has = c.contact_name != ""
    assert set(c.contact_relationship[has].tolist()) <= set(RELATIONSHIPS)
    assert (c.contact_phone[has] != "").all()
    assert (c.contact_relationship[~has] == "").all()
    # nobody who lives alone names a spouse as the contact at home
    assert not (c.lives_alone & (c.contact_relationship == "spouse")).any()
    # guardians: the first contact of residents aged 75+ or living alone
    assert (c.contact_guardian == (has & ((r.age >= 75) | c.lives_alone))).all()


def test_contacts_are_deterministic_for_a_seed() -> None:
    a = generate(3, n_residents=500, days=1)
    b = generate(3, n_residents=500, days=1)
    assert np.array_equal(a.contacts.mobile_phone, b.contacts.mobile_phone)
    assert np.array_equal(a.contacts.address_detail, b.contacts.address_detail)
