"""hil.cluster: the node runtime on a private Ray instance (one per module) against the in-process reference."""

from __future__ import annotations

import json
import os

import pytest
import torch

from hil.cluster.driver import BENCH, Cluster, resource_name
from hil.cluster.raylet import keep_loopback
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
    keep_loopback()
    ray.init(address="local", num_cpus=2, resources={resource_name(n): 1 for n, _ in BENCH}, include_dashboard=False,
             log_to_driver=False, _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
    yield
    ray.shutdown()


@pytest.mark.parametrize("transport", ["ideal", "loopback", "zmq"])
def test_local_and_none_give_bit_identical_weights(ray_local, tmp_path, transport):
    """zmq: each node opens its own half of the link on a channel server the run starts (same seed in both);
    the run folder gets its report (report.md lists the halves)."""
    cfg = small(transport)
    ref = run_split(cfg, tmp_path / "none", cluster="none", max_steps=3, write=False)
    got = run_split(cfg, tmp_path / "local", cluster="local", max_steps=3, write=transport == "zmq")
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
    if transport == "zmq":
        air = {n["name"]: n["air"] for n in got["nodes"]}
        assert air == {"edge": "tx", "server": "rx"}
        assert got["frames"] == 8 + 2 * 3 + 2  # calibration pilots, 3 steps forward and echo, 2 evaluations
        md = (tmp_path / "local" / "report.md").read_text()
        assert "tx half of edge->server" in md and "rx half of edge->server" in md


def test_nodes_that_run_on_their_own_equal_the_in_process_run(ray_local, tmp_path, monkeypatch):
    """Over a split zmq link in reciprocity training each node runs many steps per call (chunks of 3 steps
    here, so chunks end mid-epoch): 2 epochs of 200 samples (batches 64, 64, 64, 8), 2 micro-batches each
    (bursts of 32 and of 4 vectors: the receiver arms for each new size itself), an evaluation between the
    epochs. The weights, the losses and the bursts are those of the in-process run, bit for bit."""
    import hil.cluster.run as run

    monkeypatch.setattr(run, "CHUNK_STEPS", 3)
    cfg = small("zmq", epochs=2).replace(data={"limit_train": 200, "limit_test": 64})
    ref = run_split(cfg, tmp_path / "none", cluster="none", microbatches=2, write=False)
    calls: list[str] = []
    real = run.train_steps_on_their_own
    monkeypatch.setattr(run, "train_steps_on_their_own", lambda *a, **k: calls.append("chunk") or real(*a, **k))
    got = run_split(cfg, tmp_path / "local", cluster="local", microbatches=2, write=False)
    assert calls == ["chunk"] * 4  # 2 per epoch: 3 steps, then 1
    assert got["steps"] == ref["steps"] == 8 and got["frames"] == ref["frames"]
    assert [h["loss"] for h in got["history"]] == [h["loss"] for h in ref["history"]]
    assert [h["test_accuracy"] for h in got["history"]] == [h["test_accuracy"] for h in ref["history"]]
    for node, ws in ref["weights"].items():
        for k, v in ws.items():
            assert torch.equal(v, got["weights"][node][k]), f"{node}: {k} differs"
    assert got["step_seconds"]["n"] == 8 - 2  # intervals between the step ends within each epoch


def test_microbatched_pipeline_matches_in_process(ray_local, tmp_path):
    cfg = small("ideal")
    ref = run_split(cfg, tmp_path / "none", cluster="none", max_steps=2, microbatches=4, write=False)
    got = run_split(cfg, tmp_path / "local", cluster="local", max_steps=2, microbatches=4, write=False)
    assert got["microbatches"] == 4
    for node, ws in ref["weights"].items():
        for k, v in ws.items():
            assert torch.equal(v, got["weights"][node][k]), f"{node}: {k}"


def test_four_microbatches_give_the_update_of_one_batch(tmp_path):
    """GPipe gradient accumulation: 4 micro-batches give the same weights as 1 batch, within float tolerance.

    The model has no batch statistic ([model] normalize = false: a bias instead of batch normalisation
    after the cut; power = "sample": each vector's own transmit power), and the link is noise-free in
    practice (ideal transport, 200 dB SNR): with batch statistics or noise drawn per burst, a
    micro-batch is legitimately a different computation, not a rounding difference.
    """
    cfg = small("ideal").replace(model={"normalize": False, "power": "sample"}, ota={"transport": "ideal", "snr_db": 200.0})
    one = run_split(cfg, tmp_path / "1", cluster="none", max_steps=2, microbatches=1, write=False)
    four = run_split(cfg, tmp_path / "4", cluster="none", max_steps=2, microbatches=4, write=False)
    init = run_split(cfg, tmp_path / "0", cluster="none", max_steps=0, write=False)
    for node, ws in one["weights"].items():
        for k, v in ws.items():
            if k == "cut.running_power":  # an eval-time running average, updated once per forward, not a gradient step
                continue
            torch.testing.assert_close(four["weights"][node][k], v, rtol=1e-4, atol=1e-5, msg=f"{node}: {k}")
            # the update is not vacuous: 2 Adam steps at lr 0.01 move every parameter
            assert (v - init["weights"][node][k]).abs().max() > 1e-3, f"{node}: {k} did not move"
    # with batch statistics (the default model) the micro-batches are a different computation
    bn = small("ideal").replace(ota={"transport": "ideal", "snr_db": 200.0})
    a = run_split(bn, tmp_path / "b1", cluster="none", max_steps=2, microbatches=1, write=False)
    b = run_split(bn, tmp_path / "b4", cluster="none", max_steps=2, microbatches=4, write=False)
    assert any(not torch.allclose(a["weights"][n][k], b["weights"][n][k], rtol=1e-4, atol=1e-5)
               for n in a["weights"] for k in a["weights"][n])


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


def test_node_killed_mid_run_stops_it_in_one_line_and_the_run_resumes(ray_local, tmp_path):
    """The server actor is killed from another thread during epoch 2 of 3: the run stops with one line naming
    the node; the same call on the same folder resumes after epoch 1 and completes."""
    import threading
    import time

    cfg = small("ideal", epochs=3)  # 3 steps per epoch (192 samples, batch 64)
    killer: list[threading.Thread] = []

    def kill_after_4(step, cl):
        if step == 4 and not killer:
            target = cl.handles["server"].target
            killer.append(threading.Thread(target=ray.kill, args=(target,)))
            killer[0].start()
            killer[0].join()  # the kill is asked for before step 5 (the actor dies while the run goes on)

    t0 = time.perf_counter()
    with pytest.raises(NodeError) as e:
        run_split(cfg, tmp_path, cluster="local", on_step=kill_after_4)
    assert time.perf_counter() - t0 < 120
    msg = str(e.value)
    assert "\n" not in msg and "'server'" in msg and "died" in msg and "resume" in msg
    manifest = json.loads((tmp_path / "checkpoints" / "manifest.json").read_text())
    assert manifest["epoch"] == 1 and manifest["steps"] == 3
    said: list[str] = []
    done = run_split(cfg, tmp_path, cluster="local", progress=said.append)
    assert "resumed at epoch 1" in said
    assert done["epochs"] == 3 and done["steps"] == 9 and len(done["history"]) == 3
    assert json.loads((tmp_path / "report.json").read_text())["steps"] == 9


def test_node_killed_while_the_nodes_run_on_their_own_stops_the_run_in_seconds(ray_local, tmp_path, monkeypatch):
    """Split zmq link, chunks of 2 steps: the server actor is killed after step 4; the edge is then waiting for
    an echo that will not come, and the run still stops within seconds with one line naming the server, and
    resumes."""
    import threading
    import time

    import hil.cluster.run as run

    monkeypatch.setattr(run, "CHUNK_STEPS", 2)
    cfg = small("zmq", epochs=3)  # 3 steps per epoch
    killer: list[threading.Thread] = []
    t_kill: list[float] = []

    def kill_after_4(step, cl):
        if step == 4 and not killer:
            killer.append(threading.Thread(target=ray.kill, args=(cl.handles["server"].target,)))
            killer[0].start()
            killer[0].join()
            t_kill.append(time.perf_counter())

    with pytest.raises(NodeError) as e:
        run_split(cfg, tmp_path, cluster="local", on_step=kill_after_4)
    # the edge's wait for the echo (SPLIT_WAIT_S, 60 s) is not waited out: detection within POLL_S, then at
    # most CLOSE_WAIT_S (5 s) for the nodes to close; 30 s leaves room for a loaded machine
    assert time.perf_counter() - t_kill[0] < 30
    msg = str(e.value)
    assert "\n" not in msg and "'server'" in msg and "died" in msg, msg
    done = run_split(cfg, tmp_path, cluster="local")
    assert done["epochs"] == 3 and done["steps"] == 9


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

    rep = json.loads((tmp_path / "report.json").read_text())
    for key in ("cluster", "nodes", "plan", "accuracy", "latency", "steps", "microbatches", "seconds"):
        assert key in rep, key
    assert {"name", "host", "pid", "ray_node_id", "radios", "layers"} <= set(rep["nodes"][0])


def test_node_that_cannot_open_its_radio_fails_deployment(tmp_path):
    cfg = small("ideal").replace(ota={"transport": "pluto", "uri": ""})
    with pytest.raises(NodeError, match=r"node 'server'.*pluto.*uri"):
        run_split(cfg, tmp_path, cluster="none", write=False)


def test_seeds_fan_out_as_ray_tasks(ray_local, tmp_path):
    """run_seeds(cluster="local"): one Ray task per seed, each in a worker process, the same numbers as the
    seeds trained one after the other in this process (one torch thread in both)."""
    from hil.cluster.seeds import ray_runner
    from hil.train.seeds import run_seeds

    cfg = load_config("digits_mlp").replace(data={"limit_train": 128, "limit_test": 64},
                                            ota={"transport": "ideal", "channel_uses": 2}, train={"epochs": 1})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = run_seeds(cfg, tmp_path / "in_process", 2, workers=1)
    finally:
        torch.set_num_threads(threads)
    got = run_seeds(cfg, tmp_path / "ray", 2, runner=ray_runner("local"))
    assert got["seeds"] == [0, 1]
    assert got["accuracy"] == ref["accuracy"]
    assert all((tmp_path / "ray" / f"seed-{k}" / "report.json").is_file() for k in (0, 1))


def test_an_address_where_nothing_listens_fails_in_seconds(tmp_path):
    """Ray would retry a missing head for minutes; --cluster HOST:PORT with nothing there is one ConfigError."""
    import time

    from hil.cluster.raylet import free_port
    from hil.errors import ConfigError

    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"--cluster 127\.0\.0\.1:\d+: nothing answers there.*--cluster local"):
        run_split(small("ideal"), tmp_path, cluster=f"127.0.0.1:{free_port()}", write=False)
    assert time.perf_counter() - t0 < 10
    with pytest.raises(ConfigError, match="HOST:PORT"):
        run_split(small("ideal"), tmp_path, cluster="nonsense", write=False)
