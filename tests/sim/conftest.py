"""Fixtures that start real channel-server processes on ephemeral ports and always stop them.

    def test_x(channel_server):
        srv = channel_server(two_node_config())      # hil.radio.launch.ServerProcess
        radio = ZmqRadio(srv.control, "edge", "server")
        ...
        srv = channel_server.restart(srv)            # same endpoints, new process

``channel_server(config)`` takes a topology dict (or a .toml/.json path), starts
``python -m sim_fallback`` on it, waits for its ready line (no sleeping) and returns the handle with
``control``, ``events``, ``nodes`` (endpoints per antenna) and ``info``. Every server started by the
fixture (also by ``restart``) is stopped at teardown. ``channel_server_module`` is the same, shared by
a test module.
"""

from __future__ import annotations

import pytest

from hil.radio.launch import ServerProcess, start_server


class ServerFactory:
    """Starts channel servers and remembers them for teardown."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory):
        self._tmp = tmp_path_factory
        self.started: list[ServerProcess] = []

    def __call__(self, config, **kw) -> ServerProcess:
        srv = start_server(config, workdir=self._tmp.mktemp("chsrv"), **kw)
        self.started.append(srv)
        return srv

    def restart(self, srv: ServerProcess, **kw) -> ServerProcess:
        """Stop ``srv`` and start a new server on the same endpoints."""
        new = srv.restart(**kw)
        self.started.append(new)
        return new

    def stop_all(self) -> None:
        for s in self.started:
            try:
                s.stop(timeout_s=3.0)
            except Exception:  # noqa: BLE001 - teardown must reach every server
                s.kill()


@pytest.fixture
def channel_server(tmp_path_factory):
    """Factory fixture: ``channel_server(config) -> ServerProcess``; stops every server it started."""
    f = ServerFactory(tmp_path_factory)
    yield f
    f.stop_all()


@pytest.fixture(scope="module")
def channel_server_module(tmp_path_factory):
    """Like ``channel_server`` but shared by all tests of a module (one teardown at the end)."""
    f = ServerFactory(tmp_path_factory)
    yield f
    f.stop_all()


def find_port_base(n: int, host: str = "127.0.0.1", tries: int = 50) -> int:
    """A port P such that P .. P+n-1 could all be bound on ``host`` just now (for ``--port-base P``)."""
    import random
    import socket

    rng = random.Random()
    for _ in range(tries):
        p = rng.randrange(20000, 60000 - n)
        socks = []
        try:
            for k in range(n):
                s = socket.socket()
                socks.append(s)
                s.bind((host, p + k))
            return p
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports found on {host} in {tries} tries")
