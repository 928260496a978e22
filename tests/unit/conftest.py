"""Fixtures shared by the unit tests of several parts."""

from __future__ import annotations

import threading

import pytest


@pytest.fixture
def channel_server():
    """Start a ZMQ channel server on a topology (a dict) in a thread of this process: ``channel_server(config)``
    returns the server's ``info``. Every server started is stopped after the test."""
    from sim_fallback.channel_server import ChannelServer
    from sim_fallback.topology import load_topology

    started = []

    def start(config: dict) -> dict:
        srv = ChannelServer(load_topology(config))
        info = srv.bind()
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        started.append((srv, th))
        return info

    yield start
    for srv, th in started:
        srv.stop()
        th.join(timeout=2)
