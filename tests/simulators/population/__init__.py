"""Tests of the synthetic population (simulators/population*.py)."""
