"""Run a bench of virtual Plutos: one process, one iiod server per port, one shared air.

``python -m sim_fallback.pluto --port 0`` (or ``hil emu pluto``) prints one line per board,
``virtual Pluto <i> (<mode>) listening on ip:127.0.0.1:<port>``, then serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

from hil._io import from_section, load_mapping
from hil.errors import ConfigError
from sim_fallback.pluto.air import Air, AirConfig
from sim_fallback.pluto.iiod import IiodServer
from sim_fallback.pluto.model import BOARDS, MODES, PlutoModel

log = logging.getLogger(__name__)


def load_air_config(path: str | Path | None) -> AirConfig:
    """Read a ``--channel`` file (TOML or JSON): ``path_loss_db``, ``seed`` and a ``[channel]`` table."""
    if path is None:
        return AirConfig()
    p = Path(path)
    try:
        return from_section(AirConfig, load_mapping(p, "channel"), "air")
    except ConfigError as e:
        raise ConfigError(f"channel file {p}: {e}") from e


class VirtualBoards:
    """Virtual Plutos on ``ports`` (0: pick a free port) sharing one :class:`Air`.

    ``board`` (one of :data:`~sim_fallback.pluto.model.BOARDS`) overrides ``mode`` when given.
    """

    def __init__(self, ports: list[int], mode: str = "1r1t", config: AirConfig = AirConfig(),
                 host: str = "127.0.0.1", board: str | None = None):
        if mode not in MODES:
            raise ValueError(f"--mode must be one of {MODES}, got {mode!r}")
        if board is not None and board not in BOARDS:
            raise ValueError(f"--model must be one of {sorted(BOARDS)}, got {board!r}")
        models = [PlutoModel(mode, serial=f"vpluto{i}", board=board) for i in range(len(ports))]
        self.air = Air(models, config)
        self.servers = [IiodServer(node, host, port) for node, port in zip(self.air.nodes, ports)]

    @property
    def uris(self) -> list[str]:
        return [s.uri for s in self.servers]

    def start(self) -> "VirtualBoards":
        for s in self.servers:
            s.start()
        return self

    def shutdown(self) -> None:
        for s in self.servers:
            s.shutdown()


def run(ports: list[int], mode: str = "1r1t", channel_file: str | None = None, host: str = "127.0.0.1",
        board: str | None = None, snr_db: float | None = None, realtime: bool = False,
        clean: bool = False) -> None:
    """Serve until SIGINT/SIGTERM; prints the URI of each board (flushed) first.

    ``snr_db``, ``realtime`` and ``clean`` (no front-end noise, DC or LO leakage) set the
    :class:`AirConfig` fields of the same meaning on top of the channel file.
    """
    config = dataclasses.replace(load_air_config(channel_file), snr_db=snr_db, realtime=realtime,
                                 front_end=not clean)
    bench = VirtualBoards(ports, mode, config, host, board).start()
    label = board or mode
    for i, uri in enumerate(bench.uris):
        print(f"virtual Pluto {i} ({label}) listening on {uri}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(0.1):
        pass
    bench.shutdown()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim_fallback.pluto", description=__doc__)
    ap.add_argument("--port", type=int, action="append", default=None,
                    help="TCP port of a board (0: a free one); repeat for a two-node bench")
    ap.add_argument("--mode", choices=MODES, default="1r1t")
    ap.add_argument("--channel", default=None, help="TOML/JSON with path_loss_db, seed, [channel]")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--model", choices=sorted(BOARDS), default=None, help="board (overrides --mode)")
    ap.add_argument("--snr-db", type=float, default=None, help="SNR per RX antenna instead of the thermal floor")
    ap.add_argument("--realtime", action="store_true", help="RX accrues in wall time; a slow reader overflows")
    ap.add_argument("--clean", action="store_true", help="ideal receiver: no noise, DC offset or LO leakage")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    run(a.port or [30431], a.mode, a.channel, a.host, a.model, a.snr_db, a.realtime, a.clean)
    return 0


if __name__ == "__main__":
    sys.exit(main())


class VirtualPlutoProcess:
    """A bench of virtual Plutos running in a child process (see :func:`spawn`)."""

    def __init__(self, proc: "subprocess.Popen", uris: list[str], stderr=None):
        self.proc = proc
        self.uris = uris
        self.stderr = stderr  # the temp file the server's stderr goes to (see :func:`spawn`)

    def stderr_text(self, limit: int = 2000) -> str:
        """The last ``limit`` characters the server wrote to stderr (its logs and tracebacks)."""
        if self.stderr is None or self.stderr.closed:
            return ""
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace").strip()[-limit:]

    @property
    def uri(self) -> str:
        return self.uris[0]

    def kill(self) -> None:
        """SIGKILL the server (no clean shutdown: what a crash or a pulled cable looks like)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()


@contextlib.contextmanager
def spawn(mode: str = "1r1t", boards: int = 1, channel_file: str | None = None,
          timeout_s: float = 20.0, extra_args: tuple[str, ...] = ()) -> Iterator[VirtualPlutoProcess]:
    """Start ``hil emu pluto`` on free ports and yield it once every board listens.

    Reads the 'listening on URI' lines with a deadline (no sleeping); stops the process on exit.
    The server's stderr goes to a temporary file, not a pipe: nobody reads a pipe while the server
    runs, and a full pipe (64 KiB of logs) would block the server in its next write. The file is
    read when the server fails to start (and by :meth:`VirtualPlutoProcess.stderr_text`).
    """
    if boards not in (1, 2):
        raise ValueError(f"boards must be 1 or 2, got {boards}")
    # the user's command, `hil emu pluto`, so the tests exercise the CLI too
    cmd = [sys.executable, "-m", "hil.cli", "emu", "pluto", "--mode", mode, "--port", "0"]
    if boards == 2:
        cmd += ["--peer-port", "0"]
    if channel_file:
        cmd += ["--channel", str(channel_file)]
    cmd += list(extra_args)  # e.g. ("--realtime",), ("--model", "fmcomms2"), ("--clean",)
    with spawn_command(cmd, boards, timeout_s) as vp:
        yield vp


@contextlib.contextmanager
def spawn_command(cmd: list[str], boards: int = 1, timeout_s: float = 20.0) -> Iterator[VirtualPlutoProcess]:
    """Run ``cmd`` (a server printing one '... listening on URI' line per board) as :func:`spawn` does."""
    err_file = tempfile.TemporaryFile(mode="a+b", prefix="virtual-pluto-stderr-")  # O_APPEND: reads never clobber writes
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err_file)
    except BaseException:
        err_file.close()
        raise
    vp = VirtualPlutoProcess(proc, [], err_file)
    try:
        fd = proc.stdout.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        pending = b""
        while len(vp.uris) < boards:
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                state = f"exited with {proc.returncode}" if proc.poll() is not None else "still running"
                raise RuntimeError(f"virtual Pluto did not start within {timeout_s} s ({state}); its stderr: "
                                   f"{vp.stderr_text()}")
            if sel.select(min(left, 0.5)):
                pending += os.read(fd, 4096)
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    text = line.decode(errors="replace")
                    if "listening on " in text:
                        vp.uris.append(text.strip().rsplit(" ", 1)[-1])
        sel.close()
        yield vp
    finally:
        vp.stop()
        err_file.close()
