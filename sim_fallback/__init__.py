"""Processes that stand in for hardware: the ZMQ MIMO channel server and the virtual Pluto.

Never imported by the ``hil`` library: ``hil.radio.launch`` starts these as child processes.
"""
