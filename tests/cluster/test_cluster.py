"""hil.cluster: the node runtime on a private Ray instance (one per module) against the in-process reference."""

from __future__ import annotations

import os

import pytest
import torch

from hil.cluster.driver import BENCH, Cluster, resource_name
from hil.cluster.run import run_split, train_step
from hil.errors import NodeError
from hil.train.config import load_config

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.cluster


def small(transport: str, **train):
    return load_config("digits_mlp").replace(
        train={"epochs": 1, "digital": False, **train}, ota={"transport": transport},
        data={"limit_train": 192, "limit_test": 64})


@pytest.fixture(scope="module")
def ray_local():
    """One private Ray instance on 127.0.0.1 for the module, advertising every bench node; shut down after."""
    os.environ["RAY_DISABLE_USAGE_STATS"] = "1"
    ray.init(address="local", num_cpus=2, resources={resource_name(n): 1 for n, _ in BENCH}, include_dashboard=False,
             log_to_driver=False, _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
    yield
    ray.shutdown()


@pytest.mark.parametrize("transport", ["ideal", "loopback"])
def test_local_and_none_give_bit_identical_weights(ray_local, tmp_path, transport):
    cfg = small(transport)
    ref = run_split(cfg, tmp_path / "none", cluster="none", max_steps=3, write=False)
    got = run_split(cfg, tmp_path / "local", cluster="local", max_steps=3, write=False)
    assert got["steps"] == ref["steps"] == 3
    for node, ws in ref["weights"].items():
        assert ws, node
        for k, v in ws.items():
            assert torch.equal(v, got["weights"][node][k]), f"{node}: {k} differs between local and none"
    pids = {n["name"]: n["pid"] for n in got["nodes"]}
    assert set(pids) == {"edge", "server"}
    assert pids["edge"] != pids["server"] and os.getpid() not in pids.values()
    assert all(n["ray_node_id"] for n in got["nodes"])
    assert all(n["pid"] == os.getpid() for n in ref["nodes"])
    assert got["frames"] == ref["frames"] > 0  # the same bursts went over the air


def test_microbatched_pipeline_matches_in_process(ray_local, tmp_path):
    cfg = small("ideal")
    ref = run_split(cfg, tmp_path / "none", cluster="none", max_steps=2, microbatches=4, write=False)
    got = run_split(cfg, tmp_path / "local", cluster="local", max_steps=2, microbatches=4, write=False)
    assert got["microbatches"] == 4
    for node, ws in ref["weights"].items():
        for k, v in ws.items():
            assert torch.equal(v, got["weights"][node][k]), f"{node}: {k}"


def test_killed_node_gives_one_line_error_naming_it(ray_local):
    cfg = small("ideal")
    from hil.data import load_dataset

    data = load_dataset("digits", "", 0.2, 0, 64, 16)
    with Cluster("local") as cl:
        for name, role in BENCH:
            cl.spawn(name, role, cfg.to_dict(), tuple(data.image_shape), int(data.classes))
        cl.deploy()
        edge, server = cl.handles["edge"], cl.handles["server"]
        train_step(cl, edge, server, data.x_train[:32], data.y_train[:32], 0)
        ray.kill(server.target)
        with pytest.raises(NodeError) as e:
            train_step(cl, edge, server, data.x_train[:32], data.y_train[:32], 1)
    msg = str(e.value)
    assert "\n" not in msg and "'server'" in msg and server.info["host"] in msg and "died" in msg


def test_run_resumes_from_its_manifest(tmp_path):
    cfg = small("ideal", epochs=1)
    first = run_split(cfg, tmp_path, cluster="none", max_steps=None)
    assert (tmp_path / "checkpoints" / "manifest.json").is_file()
    assert (tmp_path / "checkpoints" / "edge.pt").is_file() and (tmp_path / "checkpoints" / "server.pt").is_file()
    # a longer run in the same folder continues after epoch 1 instead of starting over
    cfg2 = small("ideal", epochs=2)
    (tmp_path / "config.toml").unlink()  # the epochs changed on purpose
    second = run_split(cfg2, tmp_path, cluster="none")
    assert second["epochs"] == 2 and second["history"][0] == first["history"][0]
    assert second["steps"] == 2 * first["steps"]
    import json

    rep = json.loads((tmp_path / "report.json").read_text())
    for key in ("cluster", "nodes", "plan", "accuracy", "latency", "steps", "microbatches", "seconds"):
        assert key in rep, key
    assert {"name", "host", "pid", "ray_node_id", "radios", "layers"} <= set(rep["nodes"][0])


def test_node_that_cannot_open_its_radio_fails_deployment(tmp_path):
    cfg = small("ideal").replace(ota={"transport": "pluto", "uri": ""})
    with pytest.raises(NodeError, match=r"node 'server'.*pluto.*uri"):
        run_split(cfg, tmp_path, cluster="none", write=False)
