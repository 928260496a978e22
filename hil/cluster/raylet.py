"""Ray on the loopback address: keep 127.0.0.1 as asked, and raylets this process starts and stops.

[Note: Ray and 127.0.0.1]
Ray replaces a loopback address it is given (``ray.init(_node_ip_address="127.0.0.1")``,
``ray start --node-ip-address 127.0.0.1``, ``--address 127.0.0.1:P``) by the host's outward IP
(``ray._private.services.resolve_ip_for_localhost``), so that other hosts could reach the node. A
bench on one machine must stay on 127.0.0.1 (a test machine, a laptop on a network that must not see
the cluster), so when the address asked for *is* 127.0.0.1, :func:`keep_loopback` keeps it; every
other address goes through Ray unchanged. The only other switch Ray has
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) also forbids a second raylet joining, which a two-raylet
bench on one machine needs. The patch is applied in the driver (:class:`hil.cluster.driver.Cluster`)
and in the ``ray start`` processes :class:`Raylets` launches (``python -m hil.cluster.raylet start ...``).

:class:`Raylets` starts ``ray start --head`` and ``ray start --address`` processes in their own
process groups and stops them by those groups (never ``ray stop``, which would stop every Ray
instance of the machine's user).

[Note: raylet tokens]
Ray 2.x clusters started with ``ray start --head`` authenticate every connection with a token. The
raylets of one :class:`Raylets` share a fresh random token (``RAY_AUTH_MODE=token``,
``RAY_AUTH_TOKEN``) passed in their environment; a driver joins with the same two variables
(:attr:`Raylets.env`) and nothing is written to ``~/.ray``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time

from hil.errors import ConfigError

LOOPBACK = "127.0.0.1"


def keep_loopback() -> None:
    """Make Ray keep the address 127.0.0.1 in this process (see [Note: Ray and 127.0.0.1]); idempotent."""
    from ray._private import services

    if getattr(services.resolve_ip_for_localhost, "_hil_keeps_loopback", False):
        return
    original = services.resolve_ip_for_localhost

    def resolve(host: str) -> str:
        return host if host == LOOPBACK else original(host)

    resolve._hil_keeps_loopback = True  # type: ignore[attr-defined]
    services.resolve_ip_for_localhost = resolve


def free_port() -> int:
    """An ephemeral TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class Raylets:
    """Raylets on 127.0.0.1 started by this process: a head and any number of joined nodes.

    Each ``ray start`` runs in its own session (process group); :meth:`stop` signals exactly those
    groups. Use as a context manager.

    Args:
        timeout_s: how long one ``ray start`` may take.
    """

    def __init__(self, timeout_s: float = 120.0):
        self.timeout_s = float(timeout_s)
        self.address: str | None = None
        self.groups: list[int] = []
        #: what a process needs in its environment to join these raylets (see [Note: raylet tokens])
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}

    def _start(self, args: list[str]) -> None:
        env = dict(os.environ, RAY_DISABLE_USAGE_STATS="1", **self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))), os.environ.get("PYTHONPATH", "")] if p)
        cmd = [sys.executable, "-m", "hil.cluster.raylet", "start", "--node-ip-address", LOOPBACK,
               "--disable-usage-stats", "--dashboard-agent-listen-port", str(free_port()), *args]
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.groups.append(p.pid)
        try:
            out, _ = p.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired as e:
            self.stop()
            raise ConfigError(f"`ray start {' '.join(args)}` did not finish within {self.timeout_s:.0f} s") from e
        if p.returncode != 0:
            self.stop()
            tail = out.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise ConfigError(f"`ray start {' '.join(args)}` failed (exit {p.returncode}): {tail[0]}")

    def head(self, resources: dict[str, float], num_cpus: int = 1) -> str:
        """Start the head raylet advertising ``resources``; returns its address ``127.0.0.1:P``."""
        port = free_port()
        self._start(["--head", "--port", str(port), "--num-cpus", str(int(num_cpus)), "--include-dashboard",
                     "false", "--dashboard-port", str(free_port()), "--resources", json.dumps(resources)])
        self.address = f"{LOOPBACK}:{port}"
        return self.address

    def join(self, resources: dict[str, float], num_cpus: int = 1) -> None:
        """Start one more raylet that joins the head and advertises ``resources``."""
        if self.address is None:
            raise ValueError("start the head first (Raylets.head)")
        self._start(["--address", self.address, "--num-cpus", str(int(num_cpus)), "--resources",
                     json.dumps(resources)])

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop every process group this object started (SIGTERM, then SIGKILL after ``grace_s``)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = []
            for g in self.groups:
                try:
                    os.killpg(g, sig)
                    alive.append(g)
                except ProcessLookupError:
                    pass
            if not alive:
                break
            end = time.monotonic() + grace_s
            while alive and time.monotonic() < end:
                time.sleep(0.1)
                alive = [g for g in alive if _group_alive(g)]
            self.groups = alive
        self.groups = []

    def __enter__(self) -> "Raylets":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def main(argv: list[str]) -> None:
    """``python -m hil.cluster.raylet start ...``: Ray's own CLI with 127.0.0.1 kept."""
    keep_loopback()
    from ray.scripts.scripts import main as ray_main

    sys.argv = ["ray", *argv]
    ray_main()


if __name__ == "__main__":
    main(sys.argv[1:])
