"""hil.capture."""
