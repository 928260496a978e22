"""hil.baim."""
