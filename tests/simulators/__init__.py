"""Tests of simulators/."""
