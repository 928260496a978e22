"""hil.phy."""
