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

[Note: one call over the air]
In reciprocity training over a split link, the transmitting stage needs nothing from the driver between
its forward and its backward of a micro-batch: the echo that carries its gradient comes over the air.
On Ray both are one call (:meth:`hil.cluster.node.NodeActor.train_over_air`): a call less per step to
submit, deserialize and wait on. In one process (``none``) the two stay separate calls, since each call
there runs as it is submitted and the forward's receiver must run in between; every node does the same
operations in the same order either way, so ``local`` still equals ``none`` bit for bit.

[Note: nodes that run on their own]
On the two-node bench whose link is split between the nodes in reciprocity training, nothing crosses
Ray within a step: the burst carries the activations, the echo the gradient. Then each node gets the
data of :data:`CHUNK_STEPS` steps in one call (the transmitting end the inputs, the receiving end the
labels; :meth:`hil.cluster.node.NodeActor.train_steps`) and the two run those steps by themselves,
kept in step by the air alone, as two radios would be: the driver is out of the loop (a Ray round trip
per chunk instead of per step; on a bench of several hosts that is one LAN round trip less per step).
The receiving end knows every burst's size from its labels, so it arms for the next size itself before
it sends the echo that lets the transmitter send that burst. Each node runs the same operations in the
same order as step by step, so the weights equal those of ``none`` bit for bit (tested).
``step_seconds`` are then the intervals between the step ends on the receiving node's clock (within an
epoch), and ``on_step`` is called after each chunk, once per step in it. A node that fails is
reported by the driver within :data:`hil.cluster.driver.POLL_S`; its peer, waiting for a burst that will
not come, is stopped with the run.

[Note: measured latency]
An inference request is one test batch: the driver submits every stage's call at once, each waiting
on the previous stage's output, and waits for the last (its wall clock is the request's latency).
Each stage records, per call, ``time.time()`` on entry and exit and the seconds its over-the-air hop
took (:meth:`hil.cluster.node.NodeActor.timings`). A stage's time is exit - entry - air; a link's time
is the next stage's entry - this stage's exit (Ray's hand-over of the activation), plus the air time
on the over-the-air link (on a split link the receiving stage's call starts before the transmitting
one ends and waits for the burst: that wait is in its air time, so the sum still runs from the
transmitter's exit to the decoded burst, plus the transmitter's framing). The link gap compares two
hosts' clocks: exact on one machine, off by the clock offset across hosts. These are set beside the
placement engine's prediction for the same plan (:func:`hil.cluster.placement.predicted`).

[Note: one step ahead]
The training loop submits step ``k + 1`` before it waits for step ``k``: the first stage's forward of
``k + 1`` is queued on its actor behind its backward of ``k`` and starts the moment that ends, instead
of after a round trip through the driver. The numbers do not change (Ray runs each actor's calls in
submission order, and each call still waits on its inputs, so ``local`` still equals ``none`` bit for
bit); what changes is that a failed node surfaces one step later, and that ``step_seconds`` is the time
between two steps' completions (a step's share of the throughput, the same quantity in ``none``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from hil._io import atomic_write_text, load_mapping
from hil.cluster.driver import Cluster, NodeHandle
from hil.cluster.node import CUT_RX, EDGE_UNITS
from hil.cluster.placement import place_on_bench, predicted, two_node
from hil.errors import ConfigError
from hil.train.config import RunConfig, to_toml

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
#: training steps per call when the nodes run on their own ([Note: nodes that run on their own])
CHUNK_STEPS = 32


def _batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """The same batches as :func:`hil.train.loop.train_model` (one permutation per epoch, no batch of 1)."""
    perm = torch.randperm(n, generator=gen)
    out = [perm[i:i + batch_size] for i in range(0, n, batch_size)]
    return [b for b in out if len(b) >= 2]


def air_pair(stages: list[NodeHandle]) -> tuple[NodeHandle, NodeHandle] | None:
    """The transmitting and the receiving node of a link split between two nodes (their ``info()["air"]``),
    or None when the link is opened by one node (see [Note: where the air is] in hil.cluster.node)."""
    ends = {h.info.get("air"): h for h in stages if h.info.get("air")}
    return (ends["tx"], ends["rx"]) if {"tx", "rx"} <= set(ends) else None


def arm_for(air: tuple[NodeHandle, NodeHandle] | None, tx: NodeHandle, step: int, n: int) -> tuple:
    """What ``tx``'s forward of an ``n``-vector micro-batch must wait for: on the transmitting end of a split
    link whose receiver is not armed for ``n`` vectors, the receiver's ``arm`` (submitted now); else nothing
    (the receiver re-armed itself after its last burst, see [Note: where the air is] in hil.cluster.node)."""
    if air is None or tx is not air[0] or air[1].armed == n:
        return ()
    air[1].armed = n
    return (air[1].call("arm", step, n),)


def echo_over_air(air: tuple[NodeHandle, NodeHandle] | None) -> bool:
    """Whether the gradient of a split link goes back over the air (reciprocity), not through Ray."""
    return air is not None and air[1].info["radios"][0]["gradient_mode"] == "reciprocity"


def aired(call, node: NodeHandle, checks: list) -> None:
    """What the next stage's call gets in place of ``call`` (a call on ``node``) whose value crosses a split link
    over the air: None (the burst carries everything, see [Note: where the air is] in hil.cluster.node), so
    the next call waits on nothing and is ready when the burst comes. ``call`` goes to ``checks``: the driver
    waits on it itself."""
    checks.append((node, call))


@dataclass
class SubmittedStep:
    """The calls of one training step, submitted and not yet waited for (:func:`submit_chain`)."""

    sizes: list[int]  # vectors per micro-batch
    firsts: list  # the first stage's last call per micro-batch (its backward)
    outs: list  # per micro-batch: the last stage's (loss, correct) calls
    checks: list  # (node, call): the calls whose values crossed a split link over the air


def _parts(n: int, microbatches: int) -> list[torch.Tensor]:
    """The micro-batches of a batch of ``n``: index ranges of ``tensor_split``, each of >= 2 samples."""
    parts = [p for p in torch.arange(n).tensor_split(microbatches) if len(p)]
    if any(len(p) < 2 for p in parts):
        raise ValueError(f"{microbatches} micro-batches of a batch of {n}: each needs >= 2 samples "
                         "(batch normalisation); use fewer micro-batches")
    return parts


def on_their_own(stages: list[NodeHandle], air: tuple[NodeHandle, NodeHandle] | None) -> bool:
    """Whether the nodes train many steps per call ([Note: nodes that run on their own]): two nodes on Ray
    whose only link is a split link in reciprocity training."""
    return len(stages) == 2 and air is not None and echo_over_air(air) and stages[0].remote


def train_steps_on_their_own(cluster: Cluster, air: tuple[NodeHandle, NodeHandle], x: torch.Tensor, y: torch.Tensor,
                             batches: list[torch.Tensor], step: int, microbatches: int = 1,
                             next_size: int | None = None) -> list[tuple[float, int, int, float]]:
    """Train ``batches`` (index tensors into ``x``, ``y``), steps ``step``, ``step + 1``, ..., with one call per
    node (see [Note: nodes that run on their own]); ``next_size``: the vectors of the burst after these (the
    receiver arms for it), None when the run goes on to something else. Returns per step ``(mean loss,
    correct, samples, its end on the receiving node's clock)``."""
    tx, rx = air
    tx_items, rx_items, sizes, per_step = [], [], [], []
    for i, idx in enumerate(batches):
        xb, yb = x[idx], y[idx]
        parts = _parts(len(xb), microbatches)
        per_step.append([len(p) for p in parts])
        for j, p in enumerate(parts):
            sid, last = (step + i) * 1000 + j, j == len(parts) - 1
            tx_items.append((sid, xb[p].numpy(), last))
            rx_items.append((sid, yb[p].numpy(), len(p) / len(xb), last))
            sizes.append(len(p))
    follow = sizes[1:] + [next_size]
    rx_items = [(*it, nxt if nxt not in (None, n) else None) for it, n, nxt in zip(rx_items, sizes, follow)]
    after = arm_for(air, tx, step * 1000, sizes[0])
    got = cluster.get_all([(tx, tx.call("train_steps", tx_items, *after)), (rx, rx.call("train_steps", rx_items))])[1]
    rx.armed = next_size or sizes[-1]  # what the receiver re-armed for after its last burst
    out, k = [], 0
    for ns in per_step:
        parts, k = got[k:k + len(ns)], k + len(ns)
        out.append((sum(lo * n for (lo, _, _), n in zip(parts, ns)) / sum(ns), sum(c for _, c, _ in parts), sum(ns),
                    parts[-1][2]))
    return out


def submit_chain(stages: list[NodeHandle], x: torch.Tensor, y: torch.Tensor, step: int,
                 microbatches: int = 1) -> SubmittedStep:
    """Submit one training step of a batch in ``microbatches`` pieces through the stages in chain order (see
    [Note: pipelined steps]); :func:`collect_step` waits for it."""
    parts = _parts(len(x), microbatches)
    ids = [step * 1000 + j for j in range(len(parts))]
    air = air_pair(stages)
    # a split link carries one burst at a time (arm, transmit, receive): its micro-batches go one after the other
    waves = [list(range(len(parts)))] if air is None else [[j] for j in range(len(parts))]
    last = len(parts) - 1  # each node's optimiser step rides on its last call of the step (fewer round trips)
    tail = stages[-1]
    tx = air[0] if air is not None else None  # its forward output crosses over the air
    echo = tx if echo_over_air(air) else None  # ... and so does the gradient it gets back
    fused = echo is not None and echo.remote  # [Note: one call over the air]
    outs, firsts, checks, through = {}, [], [], {}
    for wave in waves:
        acts = {j: x[parts[j]].numpy() for j in wave}  # numpy crosses Ray cheaper than a tensor
        for h in stages[:-1]:  # every stage's forward of every micro-batch (each waits for its input)
            for j in wave:
                after = arm_for(air, h, ids[j], len(parts[j]))
                if h is echo and fused:  # awaited as its gradient (the stage before's input, or in firsts)
                    through[j], acts[j] = h.call("train_over_air", ids[j], acts[j], j == last, *after), None
                    continue
                acts[j] = h.call("forward", ids[j], acts[j], True, *after)
                if h is tx:
                    acts[j] = aired(acts[j], h, checks)
        for j in wave:
            outs[j] = tail.call("forward_backward", ids[j], acts[j], y[parts[j]].numpy(), len(parts[j]) / len(x),
                                j == last, num_returns=3)
        grads, src = {j: outs[j][2] for j in wave}, tail
        for h in reversed(stages[:-1]):
            if h is echo:
                grads = {j: aired(g, src, checks) for j, g in grads.items()}
                if fused:
                    grads, src = {j: through[j] for j in grads}, h
                    continue
            grads, src = {j: h.call("backward", ids[j], g, j == last) for j, g in grads.items()}, h
        firsts += list(grads.values())
    return SubmittedStep([len(p) for p in parts], firsts, [outs[j][:2] for j in range(len(parts))], checks)


def collect_step(cluster: Cluster, stages: list[NodeHandle], sub: SubmittedStep) -> tuple[float, int]:
    """Wait for a :func:`submit_chain` step; returns ``(mean loss, correct)`` (a failed node: NodeError)."""
    tail = [(stages[-1], v) for o in sub.outs for v in o]
    got = cluster.get_all([(stages[0], r) for r in sub.firsts] + sub.checks + tail)[-len(tail):]
    loss = sum(got[2 * j] * n for j, n in enumerate(sub.sizes))
    correct = sum(got[2 * j + 1] for j in range(len(sub.sizes)))
    return loss / sum(sub.sizes), correct


def train_chain(cluster: Cluster, stages: list[NodeHandle], x: torch.Tensor, y: torch.Tensor, step: int,
                microbatches: int = 1) -> tuple[float, int]:
    """One training step of a batch in ``microbatches`` pieces through the stages in chain order (see
    [Note: pipelined steps]). Returns ``(mean loss, correct)``."""
    return collect_step(cluster, stages, submit_chain(stages, x, y, step, microbatches))


def train_step(cluster: Cluster, edge: NodeHandle, server: NodeHandle, x: torch.Tensor, y: torch.Tensor,
               step: int, microbatches: int = 1) -> tuple[float, int]:
    """:func:`train_chain` of the two-node bench (``edge``, ``server``)."""
    return train_chain(cluster, [edge, server], x, y, step, microbatches)


def infer_chain(cluster: Cluster, stages: list[NodeHandle], x: torch.Tensor, y: torch.Tensor,
                batch_size: int) -> tuple[float, list[float]]:
    """Test accuracy in percent through the deployed stages, and each request's (batch's) latency in s: one
    request at a time, each stage's call waiting on the previous stage's output (no driver round trip)."""
    correct, lat = 0, []
    air = air_pair(stages)
    for i in range(0, len(x), batch_size):
        t0 = time.perf_counter()
        a = x[i:i + batch_size].numpy()
        n, checks = len(a), []
        for h in stages[:-1]:
            a = h.call("forward", -1, a, False, *arm_for(air, h, -1, n))
            if air is not None and h is air[0]:
                a = aired(a, h, checks)
        pred = cluster.get_all(checks + [(stages[-1], stages[-1].call("predict", a))])[-1]
        lat.append(time.perf_counter() - t0)
        correct += int((pred == y[i:i + batch_size]).sum())
    return 100.0 * correct / max(len(x), 1), lat


def evaluate_deployed(cluster: Cluster, edge: NodeHandle, server: NodeHandle, x: torch.Tensor, y: torch.Tensor,
                      batch_size: int) -> tuple[float, list[float]]:
    """:func:`infer_chain` of the two-node bench."""
    return infer_chain(cluster, [edge, server], x, y, batch_size)


def calibrate_split(cluster: Cluster, tx: NodeHandle, rx: NodeHandle, n_bursts: int = 4) -> float:
    """The reciprocity calibration of a split link (:func:`hil.ota.link.calibrate_reciprocity` between two
    nodes): ``n_bursts`` pilot bursts each way, each armed by its receiver before its transmitter sends; the
    pilot estimates of both ends (the only values exchanged, once) give each end its weights. Returns the
    fit's residual."""
    fw, rv = [], []
    for _ in range(n_bursts):
        fw.append(rx.call("receive_pilot", tx.call("send_pilot", rx.call("arm_pilot"))))
        rv.append(tx.call("receive_pilot", rx.call("send_pilot", tx.call("arm_pilot"))))
    fw, rv = cluster.get(rx, fw), cluster.get(tx, rv)
    rx.armed = None  # the pilots used the forward receive half
    res = [rx.call("set_calibration", fw, rv), tx.call("set_calibration", fw, rv)]
    cluster.get(tx, res[1])
    return float(cluster.get(rx, res[0]))


def measured_latency(cluster: Cluster, stages: list[NodeHandle], lat: list[float], ota_rx: str | None) -> dict:
    """Median and p95 per request, per stage (its compute, without the air) and per link, from the stages'
    :meth:`~hil.cluster.node.NodeActor.timings` of the last :func:`infer_chain` (see [Note: measured latency])."""
    tr = {h.name: cluster.get(h, h.call("timings")) for h in stages}
    n = min(len(v) for v in tr.values()) if tr else 0
    per_stage = {h.name: [t["out"] - t["in"] - t["air_s"] for t in tr[h.name][-n:]] for h in stages}
    per_link: dict[str, list[float]] = {}
    for prev, h in zip(stages, stages[1:]):
        hop = [b["in"] - a["out"] for a, b in zip(tr[prev.name][-n:], tr[h.name][-n:])]
        if h.name == ota_rx:  # the air time of both ends (the transmitter's is 0 unless the link is split)
            hop = [d + t["air_s"] + u["air_s"] for d, t, u in zip(hop, tr[h.name][-n:], tr[prev.name][-n:])]
        per_link[f"{prev.name}->{h.name}"] = hop
    return {"request": _stats(lat), "stages": {k: _stats(v) for k, v in per_stage.items()},
            "links": {k: _stats(v) for k, v in per_link.items()}}


def run_split(cfg: RunConfig, out: str | Path, cluster: str = "local", microbatches: int = 1,
              max_steps: int | None = None, progress: Progress | None = None, digital: bool | None = None,
              write: bool = True, on_step: Callable[[int, Cluster], None] | None = None,
              bench: str | Path | None = None, infer: bool = False) -> dict:
    """Train the split model of ``cfg`` on the nodes of ``cluster``, evaluate it through them, write the report.

    Args:
        cluster: ``none``, ``local`` or a Ray address (see :mod:`hil.cluster.driver`).
        bench: a bench topology file: the placement engine places the model's units on its nodes
            (:func:`hil.cluster.placement.place_on_bench`); None: the two-node bench ``edge``/``server``.
        infer: no training: deploy (resuming the run folder's checkpoints if any), then the inference
            requests and their latency.
        microbatches: micro-batches per batch (GPipe-style, see [Note: pipelined steps]).
        max_steps: stop after this many steps in total (tests, benchmarks); None: ``[train] epochs``.
        digital: also train the digital baseline in this process (default ``[train] digital``).
        on_step: called with ``(steps done, cluster)`` after every training step (tests: faults; when the
            nodes run on their own, after each chunk of steps: [Note: nodes that run on their own]).

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
    dep = place_on_bench(cfg, bench, tuple(data.image_shape), int(data.classes)) if bench is not None else \
        two_node(cfg, tuple(data.image_shape), int(data.classes))
    if dep.plan is not None:
        say("plan: " + " -> ".join(f"{n} ({', '.join(u)})" for n, u in dep.stages)
            + f"; predicted {dep.plan.latency_s * 1e3:.3g} ms per request")
    ota_rx = next(n for n, u in dep.stages if CUT_RX in u)
    with contextlib.ExitStack() as stack:
        # the driver only hands out batches: with torch's default pool its idle threads spin after every small
        # op and take a core from the nodes (in ``none`` the in-process nodes set 1 thread the same way)
        stack.callback(torch.set_num_threads, torch.get_num_threads())
        torch.set_num_threads(1)
        node_cfg = _air_server(cfg, stack)
        cl = stack.enter_context(Cluster(cluster, dep.nodes, resources=dep.resources, hosts=dep.hosts))
        for name, units in dep.stages:
            role = "edge" if units == EDGE_UNITS else "server" if name == ota_rx and len(dep.stages) == 2 else "stage"
            cl.spawn(name, role, node_cfg.to_dict(), tuple(data.image_shape), int(data.classes), 1, list(units))
        t_deploy = time.perf_counter()
        nodes = cl.deploy()
        stages = [cl.handles[n] for n in dep.nodes]
        air = air_pair(stages)
        alone = on_their_own(stages, air)
        if air is not None and cfg.ota.gradient_mode == "reciprocity" and cfg.ota.calibrate:
            calibrate_split(cl, *air)
        deploy_s = time.perf_counter() - t_deploy
        say("nodes: " + ", ".join(f"{i['name']} (host {i['host']}, pid {i['pid']})" for i in nodes))
        if manifest is not None:
            for h in stages:
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
        for epoch in range(start_epoch, 0 if infer else cfg.train.epochs):
            if max_steps is not None and steps_done >= max_steps:
                break
            t0 = time.perf_counter()
            total, correct, seen = 0.0, 0, 0
            batches = _batches(len(data.x_train), cfg.train.batch_size, gen)
            if alone:
                if max_steps is not None:
                    batches = batches[:max_steps - steps_done]
                t_prev = None  # the receiving node's clock
                for c0 in range(0, len(batches), CHUNK_STEPS):
                    chunk, rest = batches[c0:c0 + CHUNK_STEPS], batches[c0 + CHUNK_STEPS:]
                    nxt = len(_parts(len(rest[0]), microbatches)[0]) if rest else None
                    for loss, c, n, t in train_steps_on_their_own(cl, air, data.x_train, data.y_train, chunk,
                                                                  steps_done, microbatches, nxt):
                        if t_prev is not None:
                            step_s.append(t - t_prev)
                        t_prev = t
                        total, correct, seen = total + loss * n, correct + c, seen + n
                        steps_done += 1
                        if on_step is not None:
                            on_step(steps_done, cl)
            else:
                # step k + 1 is submitted before the driver waits for step k ([Note: one step ahead])
                pending: SubmittedStep | None = None
                t_last = time.perf_counter()
                for idx in [*batches, None]:
                    if idx is not None and max_steps is not None and steps_done + (pending is not None) >= max_steps:
                        idx = None
                    sub = None if idx is None else submit_chain(stages, data.x_train[idx], data.y_train[idx],
                                                                steps_done + (pending is not None), microbatches)
                    if pending is not None:
                        loss, c = collect_step(cl, stages, pending)
                        t = time.perf_counter()
                        step_s.append(t - t_last)
                        t_last = t
                        n = sum(pending.sizes)
                        total, correct, seen = total + loss * n, correct + c, seen + n
                        steps_done += 1
                        if on_step is not None:
                            on_step(steps_done, cl)
                    if sub is None:
                        break
                    pending = sub
            for h in stages:
                cl.get(h, h.call("end_epoch"))
            acc, _ = infer_chain(cl, stages, data.x_test, data.y_test, cfg.train.batch_size)
            history.append({"epoch": epoch + 1, "loss": total / max(seen, 1), "train_accuracy": 100.0 * correct / max(seen, 1),
                            "test_accuracy": acc, "seconds": time.perf_counter() - t0})
            say(f"epoch {epoch + 1}: loss {history[-1]['loss']:.4f}, test accuracy {acc:.2f}%")
            if write:
                for h in stages:
                    cl.get(h, h.call("checkpoint", str(ck / f"{h.name}.pt")))
                from hil._io import atomic_write_json

                atomic_write_json(manifest_path, {"epoch": epoch + 1, "steps": steps_done, "history": history,
                                                  "generator": gen.get_state().tolist(),
                                                  "nodes": {i["name"]: {"host": i["host"], "role": i["role"],
                                                                        "layers": i["layers"]} for i in nodes},
                                                  "microbatches": microbatches})
        for h in stages:
            cl.get(h, h.call("timings"))  # drop the per-epoch evaluations' timings: measure the final requests
        acc, lat = infer_chain(cl, stages, data.x_test, data.y_test, cfg.train.batch_size)
        measured = measured_latency(cl, stages, lat, ota_rx)
        busy = {h.name: cl.get(h, h.call("busy")) for h in stages}
        weights = {h.name: cl.get(h, h.call("weights")) for h in stages}
        frames = sum(cl.get(h, h.call("frames")) for h in stages)  # each end counts the bursts it received
        address = cl.address
    dig = None
    if (cfg.train.digital if digital is None else digital) and not infer:
        from hil.train.run import train_digital

        dig = train_digital(cfg, data)["accuracy"]
    report = {
        "cluster": {"mode": "none" if cluster == "none" else ("local" if cluster == "local" else "address"),
                    "address": address},
        "nodes": nodes,
        "plan": {"assignment": dict(dep.plan.assignment) if dep.plan is not None else
                 {u: n for n, units in dep.stages for u in units},
                 "stages": {n: list(u) for n, u in dep.stages}, "cut": "ota", "bench": dep.bench,
                 "solver": dep.plan.solver if dep.plan is not None else None,
                 "transport": cfg.ota.transport, "gradient_mode": cfg.ota.gradient_mode,
                 "predicted_latency_s": dep.plan.latency_s if dep.plan is not None else None,
                 "transfers": [{"layer": t.layer, "src": t.src, "dst": t.dst, "nbytes": t.nbytes, "time_s": t.time_s,
                                "route": list(t.route)} for t in dep.plan.transfers] if dep.plan is not None else []},
        "accuracy": {"split": acc, "digital": dig},
        "latency": {"predicted_s": predicted(dep), "measured_s": measured, "busy_s": busy},
        "infer": bool(infer),
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
        write_cluster_report(out, report, dep)
    report["weights"] = weights
    return report


def _air_server(cfg: RunConfig, stack: contextlib.ExitStack) -> RunConfig:
    """The config the nodes get: for a link split between two nodes over a channel server that ``[ota]
    endpoint`` does not name, the server is started here (on the driver's host, stopped by ``stack``) and
    its control endpoint set, so that both ends open their halves on it (see [Note: where the air is] in
    hil.cluster.node)."""
    from hil.cluster.node import split_air

    if not split_air(cfg) or cfg.ota.endpoint:
        return cfg
    from hil.radio.launch import start_server
    from hil.train.links import radio_spec

    spec = radio_spec(cfg.ota, None, int(cfg.train.batch_size))
    srv = stack.enter_context(start_server(spec.server_config, log_level="WARNING"))
    return cfg.replace(ota={"endpoint": srv.info["control"]})


def _stats(xs: list[float]) -> dict:
    if not xs:
        return {"median": None, "p95": None, "n": 0}
    a = np.asarray(xs, float)
    return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95)), "n": int(a.size)}
