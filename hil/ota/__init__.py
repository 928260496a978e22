"""hil.ota."""
