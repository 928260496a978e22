"""Start the processes that stand in for hardware and wait until they are ready.

    with start_server({"nodes": [...], "links": [...]}) as srv:   # the ZMQ channel server
        srv.control              # "tcp://127.0.0.1:41234"
        srv.nodes["edge"]["tx"]  # one endpoint per antenna
    with start_virtual_pluto("1r1t") as vp:                    # `hil emu pluto` on a free port
        vp.uri                   # "ip:127.0.0.1:41235"

Both are child processes started by command line (``python -m sim_fallback``, ``python -m hil.cli emu
pluto``); the library never imports ``sim_fallback``. Readiness is what the child prints when bound
(no sleeping); every port is ephemeral unless fixed in the config, so two servers never collide.
:class:`ChildProcess` is the one place that starts such a process, reads its ready lines with a
deadline and stops it.

[Note: the child runs this tree]
The child's ``PYTHONPATH`` starts with the folder that holds the ``hil`` package this module was
imported from, so ``python -m sim_fallback`` and ``python -m hil.cli`` run the same source tree as
the parent (an editable install of another checkout would otherwise win), and the child inherits the
caller's working directory, so relative paths in a config mean what they mean to the caller.
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
from typing import Any, Callable, Mapping

from hil._io import load_mapping
from hil.errors import ConfigError, RadioError, RadioTimeout

#: the folder holding the ``hil`` package (see [Note: the child runs this tree])
_TREE = Path(__file__).resolve().parents[2]
#: exit code of ``python -m sim_fallback`` for an invalid topology
_CONFIG_EXIT_CODE = 2


def child_env() -> dict:
    """The environment of a child process (see [Note: the child runs this tree])."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(_TREE)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


class ChildProcess:
    """A child process that prints ready lines on stdout; its stderr goes to ``log_path``.

    Args:
        command: the command line.
        ready: called with each stdout line (str, without the newline) until it returns True.
        what: what the process is, for error messages ("channel server").
        log_path: where the child's stderr goes (its log).
        timeout_s: how long to wait for readiness.

    Raises:
        RadioError: the process exited before it was ready (``returncode`` and the log say why);
            RadioTimeout: it did not get ready in time. The process is stopped in both cases.
    """

    def __init__(self, command: list[str], ready: Callable[[str], bool], *, what: str, log_path: Path,
                 timeout_s: float):
        self.command = list(command)
        self.what = what
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=self._log, env=child_env())
        except BaseException:
            self._log.close()
            raise
        try:
            self._wait_ready(ready, timeout_s)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, ready: Callable[[str], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if ready(line.decode(errors="replace")):
                        return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RadioTimeout(f"{self.what} did not report ready within {timeout_s:.0f} s; "
                                       f"log: {self.log_path}\n{self.log_text()[-2000:]}")
                if not sel.select(min(left, 0.2)):
                    if self.proc.poll() is not None:
                        break
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                buf += chunk
        self.proc.wait(timeout=5)
        raise RadioError(f"{self.what} exited with code {self.proc.returncode} before it was ready "
                         f"({' '.join(self.command)}):\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        """The child's log (stderr) so far."""
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
        """Send ``signum``, wait up to ``timeout_s``, kill if still running. Returns the exit code. Idempotent."""
        if self.alive:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_files()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL (no clean shutdown: what a crash or a pulled cable looks like)."""
        if self.alive:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._close_files()

    def _close_files(self) -> None:
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()
        if not self._log.closed:
            self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class ServerProcess(ChildProcess):
    """A running channel server (``python -m sim_fallback --config FILE``).

    Attributes:
        config: the topology dict it was started with.
        info: the server's ``info`` dict (endpoints, nodes, links, settings), its ready line.
        control: the control endpoint (JSON REQ/REP).
        events: the event endpoint (JSON PUB).
        nodes: ``{name: {"antennas", "tx": [endpoints], "rx": [endpoints], ...}}``.
    """

    def __init__(self, config: dict, *, workdir: Path, python: str, startup_timeout_s: float,
                 log_level: str = "INFO", command: list[str] | None = None, n: int = 1):
        self.config = config
        self.workdir = Path(workdir)
        self.python = python
        self.log_level = log_level
        self.startup_timeout_s = startup_timeout_s
        self.base_command = list(command) if command else [python, "-m", "sim_fallback"]
        self._n = n
        cfg_path = self.workdir / f"topology-{n}.json"
        cfg_path.write_text(json.dumps(config))
        self.info: dict = {}

        def ready(line: str) -> bool:
            info = json.loads(line) if line.startswith("{") else {}
            if not info.get("ready"):
                raise RadioError(f"unexpected first line from the channel server: {line[:200]!r}")
            self.info = info
            return True

        try:
            super().__init__(self.base_command + ["--config", str(cfg_path), "--log-level", log_level], ready,
                             what="channel server", log_path=self.workdir / f"server-{n}.log",
                             timeout_s=startup_timeout_s)
        except RadioError as e:
            if getattr(self, "proc", None) is not None and self.proc.returncode == _CONFIG_EXIT_CODE:
                errors = [ln[len("error: "):] for ln in self.log_text().splitlines() if ln.startswith("error: ")]
                raise ConfigError(f"channel server topology: {errors[-1] if errors else self.log_text()[-500:]}") from e
            raise
        self.control = self.info["control"]
        self.events = self.info["events"]
        self.nodes = self.info["nodes"]

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
        return ServerProcess(self.pinned_config(), workdir=self.workdir, python=self.python,
                             startup_timeout_s=startup_timeout_s or self.startup_timeout_s,
                             log_level=self.log_level, command=self.base_command, n=self._n + 1)


def start_server(config: Mapping[str, Any] | str | Path, *, workdir: str | Path | None = None,
                 python: str | None = None, startup_timeout_s: float = 30.0,
                 log_level: str = "INFO", command: list[str] | None = None) -> ServerProcess:
    """Start the channel server on ``config`` (a topology dict, or a .toml/.json path) and wait until it is bound.

    ``command`` replaces ``[python, "-m", "sim_fallback"]`` (e.g. ``["hil", "sim", "serve"]``); it must
    accept ``--config FILE --log-level LEVEL``, print the ready line, and exit with code 2 and an
    ``error: ...`` line on stderr for an invalid topology.

    Raises:
        ConfigError: the file cannot be read, or the server refused the topology (its message).
        RadioError: the process exited before it was ready; RadioTimeout: it did not get ready in time.
    """
    cfg = dict(config) if isinstance(config, Mapping) else load_mapping(config, "topology")
    wd = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="hil-chsrv-"))
    wd.mkdir(parents=True, exist_ok=True)
    return ServerProcess(cfg, workdir=wd, python=python or sys.executable,
                         startup_timeout_s=startup_timeout_s, log_level=log_level, command=command)


class VirtualPluto(ChildProcess):
    """A bench of virtual Plutos (``hil emu pluto``) in a child process; :attr:`uris` one per board."""

    def __init__(self, mode: str = "1r1t", boards: int = 1, channel_file: str | Path | None = None, *,
                 timeout_s: float = 20.0, workdir: str | Path | None = None):
        if boards not in (1, 2):
            raise ValueError(f"boards must be 1 or 2 (a two-node bench), got {boards}")
        self.uris: list[str] = []
        cmd = [sys.executable, "-m", "hil.cli", "emu", "pluto", "--mode", str(mode), "--port", "0"]
        if boards == 2:
            cmd += ["--peer-port", "0"]
        if channel_file:
            cmd += ["--channel", str(channel_file)]

        def ready(line: str) -> bool:
            if "listening on " in line:
                self.uris.append(line.strip().rsplit(" ", 1)[-1])
            return len(self.uris) == boards

        wd = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="hil-vpluto-"))
        super().__init__(cmd, ready, what="virtual Pluto", log_path=wd / "virtual-pluto.log", timeout_s=timeout_s)

    @property
    def uri(self) -> str:
        """The URI of the first board."""
        return self.uris[0]


def start_virtual_pluto(mode: str = "1r1t", boards: int = 1, channel_file: str | Path | None = None,
                        timeout_s: float = 20.0) -> VirtualPluto:
    """Start ``hil emu pluto`` on free ports and return it once every board listens (stop it when done)."""
    return VirtualPluto(mode, boards, channel_file, timeout_s=timeout_s)


def default_topology_path(name: str = "edge_server") -> Path:
    """Path of a topology shipped with the channel server (``sim_fallback/configs/NAME.toml``).

    [Note: finding the server's files without importing it]
    ``importlib.util.find_spec`` of a top-level package locates it without running it, so the
    library reads the server's shipped configs and never imports ``sim_fallback``.
    """
    import importlib.util

    spec = importlib.util.find_spec("sim_fallback")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the channel server (package sim_fallback) is not installed; reinstall hil-ota")
    folder = Path(list(spec.submodule_search_locations)[0]) / "configs"
    p = folder / f"{name}.toml"
    if not p.is_file():
        raise ConfigError(f"no shipped topology {name!r}; available: {sorted(q.stem for q in folder.glob('*.toml'))}")
    return p
