"""Shared, expensive-once populations for the population tests."""

from __future__ import annotations

import datetime as dt

import pytest

from simulators.population import Population, generate

END = dt.date(2026, 3, 31)


@pytest.fixture(scope="session")
def district() -> Population:
    """The whole district (60,149 residents) with a week of readings: for the marginals."""
    return generate(2014, days=7, end=END)


@pytest.fixture(scope="session")
def year() -> Population:
    """A 6,000-resident sample with a full year of readings: for the physiology checks."""
    return generate(7, n_residents=6000, days=365, end=END)
