"""BLE tests use the fixture plugin tests/fix_ble.py (also registered in tests/conftest.py)."""

from tests.fix_ble import ble_bus, bluez  # noqa: F401  (fixtures)
