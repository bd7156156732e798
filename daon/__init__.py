"""daon package."""
