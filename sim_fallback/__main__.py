"""``python -m sim_fallback --config FILE``: run the ZMQ MIMO channel server.

When every socket is bound, one JSON line goes to stdout (``{"ready": true, "control": ..., "nodes":
{...}}``, the same as the control command ``info``) and, with ``--endpoints-file``, the same JSON is
written to that file (atomically); a table of the endpoints (:func:`endpoint_table`) goes to stderr
(stdout stays one JSON line for tools). ``--port-base P`` puts every default endpoint at
``tcp://host:P+k`` in :func:`sim_fallback.topology.endpoint_slots` order. Logs go to stderr. SIGINT and SIGTERM stop the server cleanly
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

#: What the peer of each server socket uses: (server socket, role) -> the peer's socket / GNU Radio block.
_PEER = {
    ("PULL", "bind"): "PUSH connects (ZmqRadio)", ("PULL", "connect"): "PUSH binds (GNU Radio push_sink)",
    ("SUB", "bind"): "PUB connects", ("SUB", "connect"): "PUB binds (GNU Radio pub_sink)",
    ("PUSH", "bind"): "PULL connects (GNU Radio pull_source, ZmqRadio)", ("PUSH", "connect"): "PULL binds",
    ("PUB", "bind"): "SUB connects (GNU Radio sub_source)", ("PUB", "connect"): "SUB binds",
    ("REQ", "connect"): "REP binds (srsRAN tx_port)", ("REQ", "bind"): "REP connects",
    ("REP", "bind"): "REQ connects (srsRAN rx_port)", ("REP", "connect"): "REQ binds",
}


def endpoint_table(info: dict) -> str:
    """The server's endpoints as a plain-text table, in ``port_base`` slot order: port, endpoint, the
    server's socket and role, the stream, and what the peer uses."""
    rows = [("control", info["control"], "REP", "bind", "JSON requests (REQ connects)"),
            ("events", info["events"], "PUB", "bind", "JSON events (SUB connects)")]
    kinds = {"pushpull": ("PULL", "PUSH"), "pubsub": ("SUB", "PUB"), "reqrep": ("REQ", "REP")}
    for name, n in info["nodes"].items():
        k_in, k_out = kinds[n["pattern"]]
        for i in range(n["antennas"]):
            rows.append((f"{name} tx{i} ({n['mode']})", n["tx"][i], k_in, n["tx_role"],
                         _PEER[(k_in, n["tx_role"])]))
            rows.append((f"{name} rx{i} ({n['mode']})", n["rx"][i], k_out, n["rx_role"],
                         _PEER[(k_out, n["rx_role"])]))
    head = ("port", "stream", "endpoint", "server socket", "peer")
    table = [head] + [(ep.rsplit(":", 1)[-1] if ep.startswith("tcp://") else "-", what, ep, f"{k} {role}", peer)
                      for what, ep, k, role, peer in rows]
    widths = [max(len(r[c]) for r in table) for c in range(len(head))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in table)


def write_endpoints(path: str | Path, info: dict) -> None:
    """Write ``info`` as JSON to ``path`` atomically (readers never see half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, path)


def run(config: str | Path | dict, endpoints_file: str | Path | None = None, print_ready: bool = True,
        port_base: int | None = None) -> int:
    """Load the topology, bind, announce the endpoints, serve until SIGINT/SIGTERM. Returns an exit code.

    ``port_base`` overrides the file's ``[server] port_base`` (0: ephemeral ports).
    """
    from hil._io import load_mapping
    from sim_fallback.channel_server import ChannelServer
    from sim_fallback.topology import load_topology

    if port_base is not None:
        raw = dict(config) if isinstance(config, dict) else load_mapping(Path(config), "topology")
        raw["server"] = {**raw.get("server", {}), "port_base": port_base}
        try:
            topo = load_topology(raw)
        except ConfigError as e:
            raise ConfigError(f"{config if not isinstance(config, dict) else 'topology'}: {e}") from e
    else:
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
            sys.stderr.write(endpoint_table(info) + "\n")
            sys.stderr.flush()
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
    p.add_argument("--port-base", type=int, default=None, metavar="P",
                   help="every default endpoint at tcp://host:P, P+1, ...: control, events, then per node per "
                   "antenna tx and rx (overrides [server] port_base; docs/zmq.md)")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR (logs go to stderr)")
    a = p.parse_args(argv)
    logging.basicConfig(level=a.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        rc = run(a.config, a.endpoints_file, port_base=a.port_base)
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
