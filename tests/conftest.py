"""Test harness: fixture plugins in psycopg's style (tests/fix_*.py)."""

pytest_plugins = ("tests.fix_db", "tests.fix_mqtt")
