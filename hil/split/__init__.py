"""hil.split."""
