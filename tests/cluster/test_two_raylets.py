"""hil run on a real two-raylet Ray cluster on 127.0.0.1: the edge and the server node on different raylets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hil.cluster.raylet import Raylets

pytest.importorskip("ray")
pytestmark = pytest.mark.cluster


def test_hil_run_on_two_raylets_over_the_zmq_channel_server(tmp_path):
    """`hil run --cluster 127.0.0.1:P`: each node an actor on its own raylet that opens its own half of the cut
    on the ZMQ channel server (the edge transmits, the server receives; the echo the other way); the split model ends within 2 points of the digital baseline (both trained from seed 0, 12 epochs:
    the gap was 1.4 points in one process, digital 99.2 %)."""
    with Raylets() as raylets:
        address = raylets.head({"hil_node:edge": 1}, num_cpus=1)
        raylets.join({"hil_node:server": 1}, num_cpus=1)
        env = dict(os.environ, **raylets.env)
        p = subprocess.run([sys.executable, "-m", "hil.cli", "run", "--config", "digits_mlp", "--cluster", address,
                            "--transport", "zmq", "--epochs", "12", "--out", str(tmp_path)], env=env, capture_output=True, text=True,
                           timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["cluster"] == {"mode": "address", "address": address}
    nodes = {n["name"]: n for n in rep["nodes"]}
    assert set(nodes) == {"edge", "server"}
    assert nodes["edge"]["pid"] != nodes["server"]["pid"]
    assert nodes["edge"]["ray_node_id"] != nodes["server"]["ray_node_id"]  # two raylets
    assert all(n["ray_node_ip"] == "127.0.0.1" for n in nodes.values())
    # each node opened its own end of the link on the channel server: the edge the transmit half of edge->server
    # (and the receive half of the echo's server->edge), the server the other two, each on its own endpoints
    halves = {name: {(r["half"], r["wiring"]) for r in n["radios"]} for name, n in nodes.items()}
    assert halves == {"edge": {("tx", "edge->server"), ("rx", "server->edge")},
                      "server": {("rx", "edge->server"), ("tx", "server->edge")}}
    assert all(r["transport"] == "zmq" and r["endpoints"] for n in nodes.values() for r in n["radios"])
    eps = [ep for n in nodes.values() for r in n["radios"] for ep in r["endpoints"]]
    assert len(eps) == len(set(eps)) == 8  # 2 antennas x (tx, rx) x 2 nodes, none shared
    assert len({r["server"] for n in nodes.values() for r in n["radios"]}) == 1  # one channel server
    acc = rep["accuracy"]
    assert acc["digital"] - acc["split"] <= 2.0, acc
    assert rep["frames"] > 0 and rep["epochs"] == 12
