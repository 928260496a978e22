"""Deploy a JMSNAS front point on the node runtime: ``hil run --from-nas DIR --point K``.

A front point of ``hil nas --bench`` (:mod:`hil.split.nasbench`) is an architecture of
:class:`hil.split.zoo.DigitsCNN` and a layer -> node assignment with any number of splits. The node
actor of ``hil run`` (:class:`hil.cluster.node.NodeActor`) runs the training config's edge/server
pair with one cut, so this module brings its own small actor, :class:`StageActor`, deployed with the
same :class:`hil.cluster.driver.Cluster` (``none``, ``local`` or a Ray address; one actor per bench
node, pinned by ``hil_node:<name>``): every split of the point is deployed, none is merged.

[Note: stage actors]
Every node builds the whole model from the same seed and keeps the stages the plan gives it
(:func:`hil.split.execute.build_stages`: maximal runs of layers on one node). An activation that
crosses to another node goes hop by hop along the plan's route (``Transfer.route``), each hop a call
on the receiving node: a digital hop hands the tensor over through Ray unchanged; an over-the-air hop
is opened by its receiving node (as in hil.cluster.node [Note: where the air is]) and carries the
activation as analog symbols (:class:`hil.split.execute.OTAActivationLink` over an
:class:`hil.ota.OTALink` with the ``ideal`` transport on the link's channel spec from the bench,
``estimated`` gradients, zero forcing; ``n_rx = n_tx`` antennas). Backward runs the same calls in
reverse: each stage back-propagates the gradients of its outputs (summed over consumers) to its
inputs, each OTA hop through its link's gradient mode, each digital hop as the identity. Then every
node steps its own Adam on its own parameters. The driver only passes object references.

Training uses the search's data and settings (:class:`hil.split.nas.NasTraining`: the same digits
split, batch size, learning rate), epoch after epoch until the validation accuracy reaches the
requirement (``[nas] accuracy``) or ``deploy_epochs`` pass. Then, measured: validation and test
accuracy through the deployed nodes, and the latency of one-image requests (the cost model's unit:
one inference at a time, batch 1) end to end, with each node's busy time in its stages and hops.
Not checkpointed: a deployment of these models takes seconds to minutes; rerun it to redo it.

[Note: predicted on this host]
The front's prediction uses the bench's node speeds and link rates, which this host does not have (no
radio, no 2 MFLOP/s device), so it cannot be checked here. Before timing the requests the deployment
therefore measures this host's costs and re-evaluates the point's plan with the cost model itself
(:meth:`hil.split.plan.Plan.from_assignment`):

- compute: every layer timed on this host (as ``profile_model(measure=True)`` does), nodes ``use_measured``;
- hops: each hop of each transfer timed as a call on its receiving node carrying the real activation
  (Ray's transfer, and for an OTA hop the simulation of the air); the link's ``latency_s`` becomes that
  time (with two sizes or more on one link: fixed cost + size / rate, least squares);
- calls: the cost model has no per-call term, but every stage is one call on its node carrying the
  stage's inputs: a no-op call on that node with those tensors is timed for each stage and added.

The prediction is compute + hops + calls (the cost model is sequential). Every layer (in the driver),
hop and stage call is timed once after each request (its own call, not part of the request), so costs
and requests span the same stretch of time and a burst of load on the shared machine hits both. Each
round of samples gives one re-evaluated latency; the prediction is their median, set against the
requests' median (a sum of medians would not compare: a delay that hits one of several parts makes the
median of a sum exceed the sum of medians). Its error, measured / predicted median latency, was measured
over several front points and runs per runtime (benchmarks/nas_deploy_error.py, docs/placement.md) and is
stated in :data:`HOST_MODEL_ERROR`; the report says whether a deployment falls inside it.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from hil.cluster.driver import Cluster, NodeHandle
from hil.cluster.run import _stats

log = logging.getLogger(__name__)

REPORT_VERSION = 1


def _model_and_graph(spec: dict, measure: bool = False):
    """``(profile, graph module)`` of the point's architecture, built from ``spec["seed"]`` (same init everywhere)."""
    from hil.split.trace import profile_model
    from hil.split.zoo import DigitsCNN

    torch.manual_seed(int(spec["seed"]))
    a = spec["arch"]
    model = DigitsCNN(a["widths"], a["depths"], a["kernels"], spec["pool_after"]).eval()
    return profile_model(model, (1, 1, 8, 8), measure=measure, name=spec.get("key", ""))


def _stages(spec: dict, gm):
    from hil.split.execute import build_stages
    from hil.split.plan import Plan

    return build_stages(gm, Plan.from_dict({"assignment": spec["assignment"]}))


class StageActor:
    """One bench node's stages of a front point (see [Note: stage actors]).

    Args:
        name: the node's name in the topology.
        role: ``"stages"`` (kept for :meth:`hil.cluster.driver.Cluster.spawn`).
        spec: ``{arch, pool_after, assignment, seed, lr, ota_hops: [{a, b, n_tx, channel, seed}]}``.
        threads: torch threads (1: see hil.cluster.node [Note: one thread per node]).
    """

    def __init__(self, name: str, role: str, spec: dict, threads: int = 1) -> None:
        torch.set_num_threads(int(threads))
        self.name, self.role = name, role
        _, gm = _model_and_graph(spec)
        self.input_name = next(n.name for n in gm.graph.nodes if n.op == "placeholder")
        self.stages = {s.index: s for s in _stages(spec, gm) if s.node == name}
        params: dict[int, torch.nn.Parameter] = {}
        for s in self.stages.values():
            params.update({id(p): p for p in s.module.parameters()})
        self.params = list(params.values())
        self.opt = torch.optim.Adam(self.params, lr=float(spec["lr"])) if self.params else None
        self.links: dict[tuple[str, str], Any] = {}
        self._closers: list[Any] = []
        for hop in spec.get("ota_hops", ()):
            if hop["b"] == name:
                self.links[(hop["a"], hop["b"])] = self._open_hop(hop)
        self._saved: dict[Any, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        self.busy_s: dict[str, float] = {}

    @staticmethod
    def _open_hop(hop: dict):
        from hil.channel import link_generator
        from hil.ota.link import OTALink
        from hil.ota.transport import IdealTransport
        from hil.split.execute import OTAActivationLink

        n = int(hop["n_tx"])
        spec = {"n_tx": n, "n_rx": n, **dict(hop.get("channel") or {})}
        spec.pop("cfo_hz", None)  # a CFO is the PHY's to correct; the ideal transport has none
        transport = IdealTransport.from_spec(spec, link_generator(int(hop["seed"])))
        return OTAActivationLink(OTALink(transport, "estimated"))

    def _timed(self, key: str, t0: float) -> None:
        self.busy_s[key] = self.busy_s.get(key, 0.0) + time.perf_counter() - t0

    def info(self) -> dict:
        node_id = None
        try:
            import ray

            if ray.is_initialized():
                node_id = ray.get_runtime_context().get_node_id()
        except ImportError:
            pass
        layers = [l for k in sorted(self.stages) for l in self.stages[k].layers]
        return {"name": self.name, "role": self.role, "host": socket.gethostname(), "pid": os.getpid(),
                "ray_node_id": node_id, "stages": sorted(self.stages), "layers": layers,
                "ota_hops_in": [f"{a}->{b}" for a, b in self.links]}

    # -- hops ------------------------------------------------------------------------------
    def hop(self, key: Any, src: str, train: bool, x: torch.Tensor) -> torch.Tensor:
        """Receive ``x`` from neighbour ``src``: over the air when that link is OTA, as is when digital."""
        link = self.links.get((src, self.name))
        if link is None:
            return x
        t0 = time.perf_counter()
        leaf = torch.as_tensor(x).detach().requires_grad_(train)
        with torch.set_grad_enabled(train):
            y = link(leaf, src, self.name)
        if train:
            self._saved[key] = ([leaf], [y])
        if key is not None:  # None: a probe of the host prediction (HostCosts), not part of a request
            self._timed("ota_hop", t0)
        return y.detach()

    def hop_backward(self, key: Any, *grads: torch.Tensor) -> torch.Tensor:
        """Gradient of an OTA hop's input from the (summed) gradients of its output."""
        t0 = time.perf_counter()
        (leaf,), (y,) = self._saved.pop(key)
        y.backward(sum(torch.as_tensor(g) for g in grads))
        self._timed("ota_hop_backward", t0)
        return leaf.grad

    # -- stages ----------------------------------------------------------------------------
    def _run(self, key: Any, k: int, train: bool, names: tuple[str, ...], xs: tuple) -> list[torch.Tensor]:
        st = self.stages[k]
        st.module.train(train)
        leaves = [torch.as_tensor(x).detach().requires_grad_(train and n != self.input_name)
                  for n, x in zip(names, xs)]
        with torch.set_grad_enabled(train):
            outs = list(st.module(*leaves))
        if train:
            self._saved[key] = (leaves, outs)
        return outs

    def forward(self, key: Any, k: int, train: bool, *xs: torch.Tensor) -> Any:
        """Stage ``k`` on its inputs; its outputs (one tensor, or a tuple when it has several)."""
        t0 = time.perf_counter()
        outs = [o.detach() for o in self._run(key, k, train, self.stages[k].inputs, xs)]
        self._timed("forward", t0)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def forward_loss(self, key: Any, k: int, out_index: int, y: torch.Tensor, *xs: torch.Tensor) -> tuple:
        """The stage with the model output: forward, cross-entropy against ``y``, backward.
        Returns ``(loss, correct, *gradients of its inputs)``."""
        t0 = time.perf_counter()
        outs = self._run(key, k, True, self.stages[k].inputs, xs)
        logits = outs[out_index]
        loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(y))
        loss.backward()
        leaves, _ = self._saved.pop(key)
        correct = int((logits.argmax(1) == torch.as_tensor(y)).sum())
        self._timed("forward", t0)
        return (float(loss.detach()), correct, *[l.grad for l in leaves])

    def backward(self, key: Any, k: int, counts: tuple[int, ...], *grads: torch.Tensor) -> Any:
        """Back-propagate stage ``k``: ``counts[i]`` gradients (one per consumer) of output ``i``, in order;
        returns the gradients of its inputs (one, or a tuple)."""
        t0 = time.perf_counter()
        leaves, outs = self._saved.pop(key)
        it = iter(grads)
        pairs = [(o, sum(torch.as_tensor(next(it)) for _ in range(c))) for o, c in zip(outs, counts) if c]
        torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
        self._timed("backward", t0)
        gs = [l.grad for l in leaves]
        return gs[0] if len(gs) == 1 else tuple(gs)

    @torch.no_grad()
    def predict(self, k: int, out_index: int, *xs: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        out = self._run(None, k, False, self.stages[k].inputs, xs)[out_index].argmax(1)
        self._timed("forward", t0)
        return out

    def update(self) -> None:
        if self.opt is not None:
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)

    def busy(self) -> dict[str, float]:
        return dict(self.busy_s)

    def ping(self, *xs: torch.Tensor) -> None:
        """Nothing: the driver times it, with a stage's inputs, for the cost of one call on this node."""

    def close(self) -> None:
        self._saved.clear()


class Deployment:
    """The driver side of a deployed front point: the calls of one step or one request (see [Note: stage actors])."""

    def __init__(self, cluster: Cluster, spec: dict, source: str, routes: dict, ota: set) -> None:
        _, gm = _model_and_graph(spec)
        self.cl = cluster
        self.stages = _stages(spec, gm)
        self.input_name = next(n.name for n in gm.graph.nodes if n.op == "placeholder")
        out = next(n for n in gm.graph.nodes if n.op == "output")
        out_name = out.args[0].name if hasattr(out.args[0], "name") else None
        last = self.stages[-1]
        if out_name not in last.outputs:
            raise ValueError("the model output is not produced by the last stage; deploy supports models whose "
                             "output layer comes last in the traced order")
        self.out_index = last.outputs.index(out_name)
        self.source, self.routes, self.ota = source, routes, ota

    def _h(self, node: str) -> NodeHandle:
        return self.cl.handles[node]

    def _move(self, key, name: str, copies: dict, dst: str, train: bool, tape: list) -> Any:
        if dst in copies:
            return copies[dst]
        src, ref = next(iter(copies.items()))
        label = "input" if name == self.input_name else name
        route = self.routes.get((label, src, dst), (src, dst))
        for a, b in zip(route[:-1], route[1:]):
            if b not in copies:
                ref = self._h(b).call("hop", (key, name, a, b), a, train, ref)
                copies[b] = ref
                tape.append(("hop", name, a, b))
            ref = copies[b]
        return copies[dst]

    def step(self, key: int, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        """One training step on a batch: forward and loss, backward, every node's update. ``(loss, correct)``."""
        held: dict[str, dict[str, Any]] = {self.input_name: {self.source: x}}
        tape: list[tuple] = []
        loss_ref = None
        for st in self.stages:
            args = [self._move(key, n, held[n], st.node, True, tape) for n in st.inputs]
            h = self._h(st.node)
            if st is self.stages[-1]:
                res = h.call("forward_loss", (key, st.index), st.index, self.out_index, y, *args,
                             num_returns=2 + len(st.inputs))
                loss_ref, grads_in = res[:2], res[2:]
            else:
                res = h.call("forward", (key, st.index), st.index, True, *args, num_returns=len(st.outputs))
                res = res if len(st.outputs) > 1 else [res]
                for n, r in zip(st.outputs, res):
                    held[n] = {st.node: r}
            tape.append(("stage", st.index))
        grads: dict[tuple[str, str], list] = {}
        for op in reversed(tape):
            if op[0] == "stage":
                st = self.stages[op[1]]
                if st is self.stages[-1]:
                    gin = grads_in
                else:
                    lists = [grads.pop((n, st.node), []) for n in st.outputs]
                    gin = self._h(st.node).call("backward", (key, st.index), st.index, tuple(len(g) for g in lists),
                                                *[g for gl in lists for g in gl], num_returns=len(st.inputs))
                    gin = gin if len(st.inputs) > 1 else [gin]
                for n, g in zip(st.inputs, gin):
                    if n != self.input_name:
                        grads.setdefault((n, st.node), []).append(g)
            else:
                _, name, a, b = op
                got = grads.pop((name, b), [])
                if not got:
                    continue
                if (a, b) in self.ota:
                    got = [self._h(b).call("hop_backward", (key, name, a, b), *got)]
                grads.setdefault((name, a), []).extend(got)
        done = [(h, h.call("update")) for h in self.cl.handles.values()]
        for h, r in done:
            self.cl.get(h, r)
        last = self._h(self.stages[-1].node)
        loss, correct = self.cl.get(last, loss_ref)
        return float(loss), int(correct)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Classes of ``x`` through the deployed nodes (eval mode)."""
        held: dict[str, dict[str, Any]] = {self.input_name: {self.source: x}}
        tape: list[tuple] = []
        for st in self.stages:
            args = [self._move(None, n, held[n], st.node, False, tape) for n in st.inputs]
            h = self._h(st.node)
            if st is self.stages[-1]:
                return self.cl.get(h, h.call("predict", st.index, self.out_index, *args))
            res = h.call("forward", None, st.index, False, *args, num_returns=len(st.outputs))
            res = res if len(st.outputs) > 1 else [res]
            for n, r in zip(st.outputs, res):
                held[n] = {st.node: r}
        raise RuntimeError("a plan without stages")

    def accuracy(self, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
        correct = sum(int((self.predict(x[i:i + batch_size]) == y[i:i + batch_size]).sum())
                      for i in range(0, len(x), batch_size))
        return correct / max(len(x), 1)


def point_spec(fp) -> tuple[dict, dict, set]:
    """What the actors and the driver need from a front point (:class:`hil.split.nasbench.FrontPoint`):
    ``(spec, routes {(label, src, dst): route}, OTA hops {(a, b)})``."""
    p = fp.point
    routes = {(t["layer"], t["src"], t["dst"]): tuple(t["route"]) for t in p["transfers"]}
    ota, hops = set(), []
    for t in p["transfers"]:
        for h in t["hops"]:
            if h["ota"] and (h["a"], h["b"]) not in ota:
                ota.add((h["a"], h["b"]))
                link = fp.topology.best_link(h["a"], h["b"], float(t["bytes"]))
                hops.append({"a": h["a"], "b": h["b"], "n_tx": link.n_tx, "channel": fp.channel(h["a"], h["b"]),
                             "seed": fp.train.seed + len(hops)})
    spec = {"arch": fp.arch.to_dict(), "key": fp.arch.key(), "pool_after": list(fp.space.pool_after),
            "assignment": dict(p["assignment"]), "seed": fp.train.seed, "lr": fp.train.lr, "ota_hops": hops}
    return spec, routes, ota


#: The stated error of the host-calibrated prediction (see [Note: predicted on this host]): the ratio
#: measured / predicted median latency of one-image requests, per runtime. Measured with
#: benchmarks/nas_deploy_error.py over 4 front points x 3 runs each on the shared 2-core machine under load
#: average 7-21 (benchmarks/results/nas_deploy_error.json, docs/placement.md): none median 1.07, range
#: [0.73, 1.93]; local median 0.89, range [0.47, 1.50]. Each band is that range widened by a factor 4/3 on
#: both sides (lower end * 3/4, upper end * 4/3) for the machine's load, which moves single runs that much.
#: On the same machine when quiet (load 0.3-2.4, benchmarks/results/nas_deploy_error_quiet.json) the ratio
#: was within 10 %: none [0.98, 1.10], local [0.92, 1.03]; the bands are the loaded ones because the
#: tests run on the shared machine.
HOST_MODEL_ERROR = {"none": (0.55, 2.58), "local": (0.36, 2.0)}


def _activations(gm, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every graph node's output on ``x`` (the placeholder's is ``x``): the tensors the plan's hops carry."""
    import torch.fx as fx

    out: dict[str, torch.Tensor] = {}

    class Keep(fx.Interpreter):
        def run_node(self, n):
            out[n.name] = v = super().run_node(n)
            return v

    with torch.no_grad():
        Keep(gm).run(x)
    return out


class HostCosts:
    """This host's costs of a deployed point, and the point's latency predicted from them (see [Note:
    predicted on this host]). ``sample()`` times every layer (here), hop and stage call once; call it between
    the timed requests, so that costs and requests are measured over the same stretch of time."""

    def __init__(self, cl: Cluster, fp, spec: dict, x: torch.Tensor):
        from hil.split.profile import INPUT

        self.cl, self.fp, self.spec = cl, fp, spec
        self.prof, self.gm = _model_and_graph(spec)
        gm = self.gm
        self.x = torch.zeros_like(x)  # profile_model times the layers on a zero input of the input's shape
        input_name = next(n.name for n in gm.graph.nodes if n.op == "placeholder")
        acts = _activations(gm, x)
        self.layer_times: list[dict[str, float]] = []
        self.stages = _stages(spec, gm)
        # (what, handle, method, args); hop probes carry key None: not counted in the node's busy time
        self.probes: list[tuple[tuple, NodeHandle, str, tuple]] = []
        for t in fp.point["transfers"]:
            act = acts[input_name if t["layer"] == INPUT else t["layer"]]
            for a, b in zip(t["route"][:-1], t["route"][1:]):
                self.probes.append((("hop", a, b, float(t["bytes"])), cl.handles[b], "hop", (None, a, False, act)))
        for st in self.stages:
            self.probes.append((("call", st.index, st.node), cl.handles[st.node], "ping",
                                tuple(acts[n] for n in st.inputs)))
        self.times: list[list[float]] = [[] for _ in self.probes]

    def sample(self) -> None:
        from hil.split.trace import _measure

        self.layer_times.append(_measure(self.gm, self.x, 1))
        for ts, (_, h, method, args) in zip(self.times, self.probes):
            t0 = time.perf_counter()
            self.cl.get(h, h.call(method, *args))
            ts.append(time.perf_counter() - t0)

    def _plan(self, layer_s: dict[str, float], secs: list[float]):
        """The plan re-evaluated with one set of layer times and probe times ``secs`` (in probe order):
        ``(plan, calls_s, hops)``."""
        from dataclasses import replace

        from hil.split.plan import Plan, Problem
        from hil.split.profile import Profile
        from hil.split.topology import Link, Topology

        hops: dict[tuple[str, str], list[tuple[float, float]]] = {}
        calls_s = 0.0
        for (what, *_), sec in zip(self.probes, secs):
            if what[0] == "hop":
                hops.setdefault((what[1], what[2]), []).append((what[3], sec))
            else:
                calls_s += sec
        links = []
        for (a, b), pts in hops.items():
            sizes, ts = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
            rate, lat = math.inf, float(np.mean(ts))
            if len(set(sizes)) > 1:  # two sizes or more on one link: fixed cost + size / rate, least squares
                slope, icpt = np.polyfit(sizes, ts, 1)
                if slope > 0 and icpt >= 0:
                    rate, lat = 1.0 / slope, float(icpt)
            links.append(Link(a, b, bytes_per_s=rate, latency_s=lat))
        topo = Topology(tuple(replace(n, use_measured=True) for n in self.fp.topology.nodes), tuple(links))
        prof = Profile(tuple(replace(l, latency_s=layer_s[l.name]) for l in self.prof.layers), self.prof.input_bytes,
                       self.prof.name)
        problem = Problem(prof, topo, "latency", {}, respect_memory=False)
        plan = Plan.from_assignment(problem, Plan.from_dict({"assignment": self.spec["assignment"]}).indices(problem),
                                    "host", False)
        return plan, calls_s, hops

    def prediction(self) -> dict:
        """The plan re-evaluated with the measured costs of each sampling round (after each request):
        ``predicted_s`` is the median over rounds of compute (this host's layer times) + hops + stage calls
        of that round, comparable with the median of the requests (a sum of medians would not be: a delay
        that hits one part in several makes the median of a sum exceed the sum of the medians). Also each
        term's median and the median of each probe."""
        rounds = [self._plan(self.layer_times[r], [ts[r] for ts in self.times]) for r in range(len(self.layer_times))]
        med = [float(np.median(ts)) for ts in self.times]
        med_layers = {k: float(np.median([lt[k] for lt in self.layer_times])) for k in self.layer_times[0]}
        plan, _, hops = self._plan(med_layers, med)
        totals = [p.compute_s + p.comm_s + c for p, c, _ in rounds]
        same_routes = sorted((t.layer, t.src, t.dst, list(t.route)) for t in plan.transfers) == sorted(
            (t["layer"], t["src"], t["dst"], list(t["route"])) for t in self.fp.point["transfers"])
        return {"predicted_s": float(np.median(totals)), "compute_s": float(np.median([p.compute_s for p, _, _ in rounds])),
                "comm_s": float(np.median([p.comm_s for p, _, _ in rounds])),
                "calls_s": float(np.median([c for _, c, _ in rounds])), "stages": len(self.stages),
                "call_s": [{"stage": w[1], "node": w[2], "seconds": m} for (w, *_), m in zip(self.probes, med)
                           if w[0] == "call"],
                "hop_s": [{"a": a, "b": b, "bytes": p[0], "seconds": p[1]} for (a, b), pts in hops.items() for p in pts],
                "same_routes": same_routes, "samples": len(totals)}


def deploy_point(fp, out: str | Path, cluster: str = "none", accuracy: float | None = None,
                 max_epochs: int | None = None, max_steps: int | None = None, requests: int = 50,
                 progress: Callable[[str], None] | None = None) -> dict:
    """Deploy front point ``fp`` on ``cluster``, train it to the accuracy requirement, measure, write the report.

    Args:
        fp: a :class:`hil.split.nasbench.FrontPoint` (:func:`hil.split.nasbench.load_front_point`).
        accuracy: the validation accuracy to reach (fraction); default the front's ``[nas] accuracy``.
        max_epochs: default the front's ``[nas] deploy_epochs``.
        max_steps: stop after this many steps in total (tests).
        requests: one-image requests timed for the latency (after each, every cost of the host prediction
            is timed once).

    Returns the report (also ``out/report.json`` and ``out/report.md``).
    """
    from hil._io import atomic_write_json, atomic_write_text
    from hil.split.nas import _digits

    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda m: None)
    need = fp.accuracy if accuracy is None else float(accuracy)
    epochs = fp.deploy_epochs if max_epochs is None else int(max_epochs)
    spec, routes, ota = point_spec(fp)
    atomic_write_json(out / "point.json", {"folder": fp.folder, "point": fp.index, "spec": spec,
                                           "accuracy_requirement": need, "max_epochs": epochs})
    xtr, ytr, xva, yva = (torch.from_numpy(np.ascontiguousarray(a)) for a in _digits(fp.train, "val"))
    xte, yte = (torch.from_numpy(np.ascontiguousarray(a)) for a in _digits(fp.train, "test")[2:])
    gen = torch.Generator().manual_seed(fp.train.seed)
    source = fp.topology.names[fp.topology.source_index]
    history: list[dict] = []
    steps = 0
    step_s: list[float] = []
    with Cluster(cluster, fp.topology.names) as cl:
        for name in fp.topology.names:
            cl.spawn(name, "stages", spec, actor=StageActor)
        t0 = time.perf_counter()
        nodes = cl.deploy()
        deploy_s = time.perf_counter() - t0
        say("nodes: " + ", ".join(f"{i['name']} (pid {i['pid']}, layers {len(i['layers'])})" for i in nodes))
        dep = Deployment(cl, spec, source, routes, ota)
        val_acc = dep.accuracy(xva, yva, fp.train.batch_size)
        for epoch in range(epochs):
            if val_acc >= need or (max_steps is not None and steps >= max_steps):
                break
            t_ep = time.perf_counter()
            total, correct, seen = 0.0, 0, 0
            for idx in torch.randperm(len(ytr), generator=gen).split(fp.train.batch_size):
                if len(idx) < 2 or (max_steps is not None and steps >= max_steps):
                    continue
                ts = time.perf_counter()
                loss, c = dep.step(steps, xtr[idx], ytr[idx])
                step_s.append(time.perf_counter() - ts)
                total, correct, seen, steps = total + loss * len(idx), correct + c, seen + len(idx), steps + 1
            val_acc = dep.accuracy(xva, yva, fp.train.batch_size)
            history.append({"epoch": epoch + 1, "loss": total / max(seen, 1), "train_accuracy": correct / max(seen, 1),
                            "val_accuracy": val_acc, "seconds": time.perf_counter() - t_ep})
            say(f"epoch {epoch + 1}: loss {history[-1]['loss']:.4f}, validation accuracy {val_acc * 100:.2f} % "
                f"(requirement {need * 100:.1f} %)")
        test_acc = dep.accuracy(xte, yte, fp.train.batch_size)
        costs = HostCosts(cl, fp, spec, xte[0][None])
        busy0 = {h.name: cl.get(h, h.call("busy")) for h in cl.handles.values()}
        lat = []
        for i in range(requests):
            ts = time.perf_counter()
            dep.predict(xte[i % len(xte)][None])
            lat.append(time.perf_counter() - ts)
            costs.sample()
        host = costs.prediction()
        busy1 = {h.name: cl.get(h, h.call("busy")) for h in cl.handles.values()}
        mode = "none" if cluster == "none" else ("local" if cluster == "local" else "address")
        address = cl.address
    per_req = {n: {k: (v - busy0[n].get(k, 0.0)) / requests for k, v in busy1[n].items()
                   if v - busy0[n].get(k, 0.0) > 0} for n in busy1}
    compute = sum(v.get("forward", 0.0) for v in per_req.values())
    ota_s = sum(v.get("ota_hop", 0.0) for v in per_req.values())
    pred = dict(fp.point["predicted"])
    med = _stats(lat)["median"]
    band = HOST_MODEL_ERROR.get(mode)
    report = {
        "version": REPORT_VERSION,
        "front": fp.folder, "point": fp.index, "arch": fp.point["arch"], "key": fp.point["key"],
        "cluster": {"mode": mode, "address": address},
        "nodes": nodes,
        "runtime": "stage actors (hil.cluster.nas): every split of the point deployed, one actor per node",
        "splits": {"assignment": spec["assignment"], "cuts": fp.point["cuts"],
                   "ota_hops": [f"{a}->{b}" for a, b in sorted(ota)],
                   "transfers": [{k: t[k] for k in ("layer", "src", "dst", "route")} for t in fp.point["transfers"]]},
        "accuracy": {"requirement": need, "reached": val_acc >= need, "predicted": pred["accuracy"],
                     "validation": val_acc, "test": test_acc,
                     "predicted_split": "validation (after the search's short training, digital links)"},
        "latency": {
            "predicted_s": pred["latency_s"], "predicted_compute_s": pred["compute_s"],
            "predicted_comm_s": pred["comm_s"],
            "host_predicted_compute_s": host["compute_s"],
            "host_predicted_s": host["predicted_s"], "host": host,
            "measured_over_host_predicted": med / host["predicted_s"],
            "host_model_error": None if band is None else list(band), "within_host_model_error": None if band is None else
            band[0] <= med / host["predicted_s"] <= band[1],
            "measured_s": _stats(lat), "measured_compute_s": compute, "measured_ota_hop_s": ota_s,
            "measured_transfer_s": med - compute - ota_s,
            "measured_over_predicted": med / pred["latency_s"] if pred["latency_s"] > 0 else math.nan,
            "busy_per_request_s": per_req,
        },
        "training": {"epochs": len(history), "steps": steps, "step_seconds": _stats(step_s) if step_s else None,
                     "history": history, "batch_size": fp.train.batch_size, "lr": fp.train.lr},
        "deploy_seconds": deploy_s,
        "seconds": time.perf_counter() - t_start,
    }
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", markdown(report))
    return report


def markdown(r: dict) -> str:
    """report.md of a deployed front point: predicted against measured."""
    a, lat = r["accuracy"], r["latency"]
    ms = lambda v: "-" if v is None or not math.isfinite(v) else f"{v * 1e3:.3f} ms"  # noqa: E731
    lines = [
        f"# Front point {r['point']} deployed ({r['key']})",
        "",
        f"cluster: {r['cluster']['mode']} ({r['cluster']['address'] or 'in process'}); {r['runtime']}; "
        f"{r['training']['steps']} steps in {r['training']['epochs']} epochs; {r['seconds']:.1f} s",
        "",
        "| node | host | pid | stages | layers | OTA hops received |",
        "|---|---|---|---|---|---|",
    ]
    for n in r["nodes"]:
        lines.append(f"| {n['name']} | {n['host']} | {n['pid']} | {n['stages']} | {len(n['layers'])} | "
                     f"{', '.join(n['ota_hops_in']) or '-'} |")
    lines += [
        "",
        "| | predicted (front) | measured (deployed) |",
        "|---|---|---|",
        f"| accuracy | {a['predicted'] * 100:.2f} % (validation) | {a['validation'] * 100:.2f} % validation, "
        f"{a['test'] * 100:.2f} % test |",
        f"| latency, one image | {ms(lat['predicted_s'])} | median {ms(lat['measured_s']['median'])}, "
        f"p95 {ms(lat['measured_s']['p95'])} ({lat['measured_s']['n']} requests) |",
        f"| compute | {ms(lat['predicted_compute_s'])} (bench node speeds); {ms(lat['host_predicted_compute_s'])} "
        f"(this host's layer times) | {ms(lat['measured_compute_s'])} (sum of the stages' busy time) |",
        f"| transfers | {ms(lat['predicted_comm_s'])} (bench links) | {ms(lat['measured_ota_hop_s'])} OTA hop "
        f"processing + {ms(lat['measured_transfer_s'])} node-to-node calls |",
        f"| latency predicted with this host's costs | {ms(lat['host_predicted_s'])} = compute "
        f"{ms(lat['host']['compute_s'])} + hops {ms(lat['host']['comm_s'])} + {lat['host']['stages']} stage calls "
        f"{ms(lat['host']['calls_s'])} | median {ms(lat['measured_s']['median'])}: measured / predicted "
        f"{lat['measured_over_host_predicted']:.3g} |",
        "",
        ("the host prediction's stated error (measured / predicted in "
         f"[{lat['host_model_error'][0]:g}, {lat['host_model_error'][1]:g}]): "
         f"{'within' if lat['within_host_model_error'] else 'OUTSIDE'}") if lat["host_model_error"] else
        "the host prediction states no error for this runtime (measured for none and local only)",
        "",
        f"accuracy requirement {a['requirement'] * 100:.1f} % (validation): "
        f"{'reached' if a['reached'] else 'NOT reached'}; measured / predicted latency "
        f"{lat['measured_over_predicted']:.3g}",
        "",
        "The front's predicted latency uses the bench's configured node speeds and link rates; the measured one is "
        "this deployment's (node processes on this host, OTA hops simulated in the receiving node, no air time). "
        "The host prediction re-evaluates the plan with this host's measured layer, hop and call costs "
        "(hil/cluster/nas.py [Note: predicted on this host]).",
        "",
    ]
    return "\n".join(lines)
