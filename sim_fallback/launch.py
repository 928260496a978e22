"""Start the channel server as a child process and read back its endpoints (tests, probe, benchmarks).

    with start_server({"nodes": [...], "links": [...]}) as srv:
        srv.control            # "tcp://127.0.0.1:41234"
        srv.nodes["edge"]["tx"]  # one endpoint per antenna
        srv.stop()             # SIGTERM, wait, return the exit code

The topology is written as JSON to a temporary file; every default endpoint is ephemeral, so two
servers never collide. Readiness is the JSON line the server prints when bound (no sleeping).
"""

from __future__ import annotations

import copy
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

from hil.errors import RadioError, RadioTimeout


class ServerProcess:
    """A running channel server process.

    Attributes:
        info: the server's ``info`` dict (endpoints, nodes, links, settings).
        control: the control endpoint (JSON REQ/REP).
        events: the event endpoint (JSON PUB).
        nodes: ``{name: {"antennas", "tx": [endpoints], "rx": [endpoints], ...}}``.
        proc: the ``subprocess.Popen``.
        log_path: the server's stderr (its log).
    """

    def __init__(self, config: dict, *, workdir: Path, python: str, startup_timeout_s: float,
                 log_level: str = "INFO", command: list[str] | None = None):
        self.config = config
        self.command = list(command) if command else [python, "-m", "sim_fallback"]
        self.workdir = workdir
        self.python = python
        self.log_level = log_level
        self.startup_timeout_s = startup_timeout_s
        self._n = getattr(self, "_n", 0) + 1
        cfg_path = workdir / f"topology-{self._n}.json"
        cfg_path.write_text(json.dumps(config))
        self.log_path = workdir / f"server-{self._n}.log"
        self._log = open(self.log_path, "wb")
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            self.command + ["--config", str(cfg_path), "--log-level", log_level],
            stdout=subprocess.PIPE, stderr=self._log, env=env,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
        try:
            self.info = self._read_ready(startup_timeout_s)
        except BaseException:
            self.kill()
            raise
        self.control = self.info["control"]
        self.events = self.info["events"]
        self.nodes = self.info["nodes"]

    def _read_ready(self, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        buf = b""
        try:
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RadioTimeout(f"channel server did not report ready within {timeout_s:.0f} s; "
                                       f"log: {self.log_path}\n{self.log_text()[-2000:]}")
                if not sel.select(min(left, 0.2)):
                    if self.proc.poll() is not None:
                        break
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
        finally:
            sel.close()
        if b"\n" not in buf:
            self.proc.wait(timeout=5)
            raise RadioError(f"channel server exited with code {self.proc.returncode} before it was ready:\n"
                             f"{self.log_text()[-3000:]}")
        info = json.loads(buf.split(b"\n", 1)[0])
        if not info.get("ready"):
            raise RadioError(f"unexpected first line from the channel server: {buf[:200]!r}")
        return info

    def log_text(self) -> str:
        """The server's log so far."""
        try:
            if not self._log.closed:
                self._log.flush()
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def send_signal(self, signum: int) -> None:
        if self.alive:
            self.proc.send_signal(signum)

    def stop(self, timeout_s: float = 5.0, signum: int = signal.SIGTERM) -> int:
        """Send ``signum``, wait up to ``timeout_s``, kill if still running. Returns the exit code."""
        if self.alive:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_files()
        return self.proc.returncode

    def kill(self) -> None:
        if self.alive:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._close_files()

    def _close_files(self) -> None:
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()
        if not self._log.closed:
            self._log.close()

    def pinned_config(self) -> dict:
        """The config with every bound endpoint fixed to what this server bound (for a restart)."""
        cfg = copy.deepcopy(self.config)
        srv = cfg.setdefault("server", {})
        srv["control"] = self.control
        srv["events"] = self.events
        for n in cfg["nodes"]:
            ep = self.nodes[n["name"]]
            if ep["tx_role"] == "bind":
                n["tx_bind"] = list(ep["tx"])
            if ep["rx_role"] == "bind":
                n["rx_bind"] = list(ep["rx"])
        return cfg

    def restart(self, startup_timeout_s: float | None = None) -> "ServerProcess":
        """Stop this server and start a new one on the same endpoints. Returns the new handle."""
        self.stop()
        nxt = ServerProcess.__new__(ServerProcess)
        nxt._n = self._n
        ServerProcess.__init__(nxt, self.pinned_config(), workdir=self.workdir, python=self.python,
                               startup_timeout_s=startup_timeout_s or self.startup_timeout_s,
                               log_level=self.log_level, command=self.command)
        return nxt

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(config: Mapping[str, Any] | str | Path, *, workdir: str | Path | None = None,
                 python: str | None = None, startup_timeout_s: float = 30.0,
                 log_level: str = "INFO", command: list[str] | None = None) -> ServerProcess:
    """Start ``python -m sim_fallback`` on ``config`` (dict, or a .toml/.json path) and wait until it is bound.

    ``command`` replaces ``[python, "-m", "sim_fallback"]`` (e.g. ``["hil", "sim", "serve"]``); it must
    accept ``--config FILE --log-level LEVEL`` and print the ready line.

    Raises:
        ConfigError: the config is invalid (checked here before starting the process).
        RadioError: the process exited before it was ready; RadioTimeout: it did not get ready in time.
    """
    from sim_fallback.topology import load_topology

    topo = load_topology(config)  # validate here: a clear error instead of a dead process
    cfg = topo.to_dict()
    wd = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="hil-chsrv-"))
    wd.mkdir(parents=True, exist_ok=True)
    return ServerProcess(cfg, workdir=wd, python=python or sys.executable,
                         startup_timeout_s=startup_timeout_s, log_level=log_level, command=command)
