"""Tests of the MQTT station simulator (simulators/stations.py)."""
