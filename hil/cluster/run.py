"""``hil run``: the split model of a training config trained and evaluated on node processes.

Output folder: ``config.toml`` (resolved), ``checkpoints/<node>.pt`` (each node's own stages, written
by that node, atomically) and ``checkpoints/manifest.json`` (the run: epoch, history, the data order's
generator state, which nodes), ``report.json``, ``report.md``.

[Note: checkpoints of a cluster run]
After every epoch each node writes its own checkpoint (model share, optimiser, scheduler) with
:func:`hil.train.loop.atomic_save`; then the driver writes the manifest atomically. The manifest is
the commit point: a run resumes from the epoch the manifest names, and a node checkpoint newer than
the manifest (a crash between the two writes) is overwritten by the redone epoch. Node checkpoints
are paths on the node's host: to resume on other hosts, the run folder must be shared (or copied).
The in-process channel of ``ideal`` restarts from its seed on resume (like a radio channel), so a
resumed run is a valid continuation, not the uninterrupted run bit for bit.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from hil._io import atomic_write_text, load_mapping
from hil.cluster.driver import BENCH, Cluster, NodeHandle
from hil.errors import ConfigError
from hil.train.config import RunConfig, to_toml

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def _batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """The same batches as :func:`hil.train.loop.train_model` (one permutation per epoch, no batch of 1)."""
    perm = torch.randperm(n, generator=gen)
    out = [perm[i:i + batch_size] for i in range(0, n, batch_size)]
    return [b for b in out if len(b) >= 2]


def train_step(cluster: Cluster, edge: NodeHandle, server: NodeHandle, x: torch.Tensor, y: torch.Tensor,
               step: int, microbatches: int = 1) -> tuple[float, int]:
    """One training step of a batch in ``microbatches`` pieces (see [Note: pipelined steps]).
    Returns ``(mean loss, correct)``."""
    parts = [p for p in torch.arange(len(x)).tensor_split(microbatches) if len(p)]
    if any(len(p) < 2 for p in parts):
        raise ValueError(f"{microbatches} micro-batches of a batch of {len(x)}: each needs >= 2 samples "
                         "(batch normalisation); use fewer micro-batches")
    syms = [edge.call("forward", step * 1000 + j, x[p]) for j, p in enumerate(parts)]
    last = len(parts) - 1  # each node's optimiser step rides on its last call of the step (fewer round trips)
    outs = [server.call("forward_backward", step * 1000 + j, s, y[p], len(p) / len(x), j == last, num_returns=3)
            for j, (s, p) in enumerate(zip(syms, parts))]
    done = [edge.call("backward", step * 1000 + j, o[2], j == last) for j, o in enumerate(outs)]
    cluster.get(edge, done)  # one wait per node for everything of the step
    got = cluster.get(server, [v for o in outs for v in o[:2]])
    loss = sum(got[2 * j] * len(p) for j, p in enumerate(parts))
    correct = sum(got[2 * j + 1] for j in range(len(parts)))
    return loss / len(x), correct


def evaluate_deployed(cluster: Cluster, edge: NodeHandle, server: NodeHandle, x: torch.Tensor, y: torch.Tensor,
             batch_size: int) -> tuple[float, list[float]]:
    """Test accuracy in percent through the deployed nodes, and each request's (batch's) latency in s."""
    correct, lat = 0, []
    for i in range(0, len(x), batch_size):
        t0 = time.perf_counter()
        s = edge.call("forward", -1, x[i:i + batch_size], False)
        pred = cluster.get(server, server.call("predict", s))
        lat.append(time.perf_counter() - t0)
        correct += int((pred == y[i:i + batch_size]).sum())
    return 100.0 * correct / max(len(x), 1), lat


def run_split(cfg: RunConfig, out: str | Path, cluster: str = "local", microbatches: int = 1,
              max_steps: int | None = None, progress: Progress | None = None, digital: bool | None = None,
              write: bool = True, on_step: Callable[[int, Cluster], None] | None = None) -> dict:
    """Train the split model of ``cfg`` on the nodes of ``cluster``, evaluate_deployed, write the report.

    Args:
        cluster: ``none``, ``local`` or a Ray address (see :mod:`hil.cluster.driver`).
        microbatches: micro-batches per batch (GPipe-style, see [Note: pipelined steps]).
        max_steps: stop after this many steps in total (tests, benchmarks); None: ``[train] epochs``.
        digital: also train the digital baseline in this process (default ``[train] digital``).
        on_step: called with ``(steps done, cluster)`` after every training step (tests: faults).

    Returns the report dict (also ``out/report.json``), with ``weights``: each node's parameters
    (removed before writing).
    """
    from hil.cluster.report import write_cluster_report
    from hil.data import load_dataset
    from hil.train.loop import load_checkpoint

    if microbatches < 1:
        raise ValueError(f"microbatches must be >= 1, got {microbatches}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ck = out / "checkpoints"
    manifest_path = ck / "manifest.json"
    resolved = to_toml(cfg)
    old = out / "config.toml"
    if old.is_file() and old.read_text() != resolved and manifest_path.is_file():
        raise ConfigError(f"{out} holds a run with a different config ({old}); use another --out, or delete "
                          "that folder to start over")
    atomic_write_text(old, resolved)
    say = progress or (lambda msg: None)
    t_start = time.perf_counter()
    d = cfg.data
    data = load_dataset(d.name, d.path, d.test_fraction, cfg.train.seed, d.limit_train, d.limit_test)
    manifest = load_mapping(manifest_path, "run manifest") if manifest_path.is_file() else None
    gen = torch.Generator().manual_seed(cfg.train.seed)
    history: list[dict] = []
    start_epoch, steps_done = 0, 0
    with Cluster(cluster, tuple(n for n, _ in BENCH)) as cl:
        for name, role in BENCH:
            cl.spawn(name, role, cfg.to_dict(), tuple(data.image_shape), int(data.classes))
        t_deploy = time.perf_counter()
        nodes = cl.deploy()
        deploy_s = time.perf_counter() - t_deploy
        say("nodes: " + ", ".join(f"{i['name']} (host {i['host']}, pid {i['pid']})" for i in nodes))
        edge, server = cl.handles["edge"], cl.handles["server"]
        if manifest is not None:
            for h in (edge, server):
                state = load_checkpoint(ck / f"{h.name}.pt")
                if state is None:
                    raise ConfigError(f"{manifest_path} names node {h.name!r} but {ck / (h.name + '.pt')} is missing; "
                                      "copy the run folder from that node's host, or start over in a new --out")
                cl.get(h, h.call("load", state))
            start_epoch, steps_done = int(manifest["epoch"]), int(manifest["steps"])
            history = list(manifest["history"])
            gen.set_state(torch.tensor(manifest["generator"], dtype=torch.uint8))
            say(f"resumed at epoch {start_epoch}")
        step_s: list[float] = []
        for epoch in range(start_epoch, cfg.train.epochs):
            if max_steps is not None and steps_done >= max_steps:
                break
            t0 = time.perf_counter()
            total, correct, seen = 0.0, 0, 0
            for idx in _batches(len(data.x_train), cfg.train.batch_size, gen):
                if max_steps is not None and steps_done >= max_steps:
                    break
                ts = time.perf_counter()
                loss, c = train_step(cl, edge, server, data.x_train[idx], data.y_train[idx], steps_done, microbatches)
                step_s.append(time.perf_counter() - ts)
                total, correct, seen = total + loss * len(idx), correct + c, seen + len(idx)
                steps_done += 1
                if on_step is not None:
                    on_step(steps_done, cl)
            for h in (edge, server):
                cl.get(h, h.call("end_epoch"))
            acc, _ = evaluate_deployed(cl, edge, server, data.x_test, data.y_test, cfg.train.batch_size)
            history.append({"epoch": epoch + 1, "loss": total / max(seen, 1), "train_accuracy": 100.0 * correct / max(seen, 1),
                            "test_accuracy": acc, "seconds": time.perf_counter() - t0})
            say(f"epoch {epoch + 1}: loss {history[-1]['loss']:.4f}, test accuracy {acc:.2f}%")
            if write:
                for h in (edge, server):
                    cl.get(h, h.call("checkpoint", str(ck / f"{h.name}.pt")))
                from hil._io import atomic_write_json

                atomic_write_json(manifest_path, {"epoch": epoch + 1, "steps": steps_done, "history": history,
                                                  "generator": gen.get_state().tolist(),
                                                  "nodes": {i["name"]: {"host": i["host"], "role": i["role"]} for i in nodes},
                                                  "microbatches": microbatches})
        acc, lat = evaluate_deployed(cl, edge, server, data.x_test, data.y_test, cfg.train.batch_size)
        busy = {h.name: cl.get(h, h.call("busy")) for h in (edge, server)}
        weights = {h.name: cl.get(h, h.call("weights")) for h in (edge, server)}
        frames = cl.get(server, server.call("frames"))
        address = cl.address
    dig = None
    if cfg.train.digital if digital is None else digital:
        from hil.train.run import train_digital

        dig = train_digital(cfg, data)["accuracy"]
    report = {
        "cluster": {"mode": "none" if cluster == "none" else ("local" if cluster == "local" else "address"),
                    "address": address},
        "nodes": nodes,
        "plan": {"assignment": {i["name"]: i["layers"] for i in nodes}, "cut": "ota",
                 "transport": cfg.ota.transport, "gradient_mode": cfg.ota.gradient_mode, "predicted_latency_s": None},
        "accuracy": {"split": acc, "digital": dig},
        "latency": {"predicted_s": None, "measured_s": _stats(lat), "busy_s": busy},
        "step_seconds": _stats(step_s),
        "deploy_seconds": deploy_s,
        "steps": steps_done,
        "epochs": len(history),
        "microbatches": microbatches,
        "frames": frames,
        "history": history,
        "seconds": time.perf_counter() - t_start,
    }
    if write:
        write_cluster_report(out, report)
    report["weights"] = weights
    return report


def _stats(xs: list[float]) -> dict:
    if not xs:
        return {"median": None, "p95": None, "n": 0}
    a = np.asarray(xs, float)
    return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95)), "n": int(a.size)}
