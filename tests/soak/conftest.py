"""The soak tier uses the virtual BlueZ fixtures of tests/fix_ble.py."""

from tests.fix_ble import ble_bus, bluez  # noqa: F401  (fixtures)
