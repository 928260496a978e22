"""Bench nodes as processes: the node runtime (Ray actors or in-process objects) and ``hil run``."""
