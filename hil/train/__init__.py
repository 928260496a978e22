"""hil.train."""
