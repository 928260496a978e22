"""Processes that stand in for hardware: the ZMQ MIMO channel server and the virtual Pluto.

Never imported by ``hil`` at module import time: ``hil`` starts these as processes.
"""
