"""``python -m sim_fallback --config FILE``: run the ZMQ MIMO channel server.

When every socket is bound, one JSON line goes to stdout (``{"ready": true, "control": ..., "nodes":
{...}}``, the same as the control command ``info``) and, with ``--endpoints-file``, the same JSON is
written to that file (atomically). Logs go to stderr. SIGINT and SIGTERM stop the server cleanly
within a second (exit code 0).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from hil.errors import ConfigError


def write_endpoints(path: str | Path, info: dict) -> None:
    """Write ``info`` as JSON to ``path`` atomically (readers never see half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, path)


def run(config: str | Path | dict, endpoints_file: str | Path | None = None, print_ready: bool = True) -> int:
    """Load the topology, bind, announce the endpoints, serve until SIGINT/SIGTERM. Returns an exit code."""
    from sim_fallback.channel_server import ChannelServer
    from sim_fallback.topology import load_topology

    topo = load_topology(config)
    server = ChannelServer(topo)

    def _on_signal(signum, frame):  # noqa: ARG001
        logging.getLogger("sim_fallback").info("signal %d: stopping", signum)
        server.stop()

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        info = server.bind()
        if endpoints_file:
            write_endpoints(endpoints_file, info)
        if print_ready:
            sys.stdout.write(json.dumps({"ready": True, **info}) + "\n")
            sys.stdout.flush()
        server.serve_forever()
    finally:
        server.close()
        for s, h in old.items():
            signal.signal(s, h)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sim_fallback",
        description="The ZMQ MIMO channel server: serves a topology (TOML/JSON) of nodes and links; "
        "one cf32 ZMQ stream per antenna, JSON metadata on a control socket. See docs/zmq.md.",
    )
    p.add_argument("--config", required=True, help="topology file (.toml or .json), e.g. "
                   "sim_fallback/configs/edge_server.toml")
    p.add_argument("--endpoints-file", default=None, help="also write the bound endpoints (JSON) to this file")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR (logs go to stderr)")
    a = p.parse_args(argv)
    logging.basicConfig(level=a.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        rc = run(a.config, a.endpoints_file)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        rc = 2
    fast_exit(rc)
    return rc  # not reached


def fast_exit(rc: int) -> None:
    """Exit now, after the sockets are closed and the logs flushed: skipping the interpreter's teardown of
    numpy/scipy keeps a stop on a busy machine well inside the promised second."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    sys.exit(main())
