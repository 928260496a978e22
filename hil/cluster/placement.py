"""The deployment of ``hil run``: which node runs which stage of the split model.

Without a bench file the deployment is the two-node bench of a training config (``edge``: the input
layers and the precoder; ``server``: the over-the-air hop, the combiner and the output layers). With
``hil run --bench BENCH.toml`` (the bench topology: one file for the channel server, placement and the
cluster; the format of hil/split/examples/bench.toml) the placement engine decides.

[Note: placing the split model on a bench]
The units of the model ([Note: stage chain] in hil.cluster.node) become a chain profile: each unit's
FLOPs (:func:`hil.flops.count_flops`) and output bytes for one inference request of ``[train]
batch_size`` samples. The over-the-air cut is where the config puts it, on the bench's over-the-air
link from the source node (the node with ``source = true``, which holds the input): ``edge`` and
``cut.precoder`` are pinned to that link's transmitter, ``cut.combiner`` to its receiver. The
remaining layers are placed by :func:`hil.split.solvers.solve` on the bench's nodes and links with
the cost model of hil.split.plan (the OTA link's cost from its channel uses, digital links' from
their rates), so a slow receiver sends the output layers on to a faster node when the digital hop
costs less than the compute it saves. Consecutive units on one node make that node's stage; a plan
that comes back to a node it left is refused (each node runs one stage). A node's actor is pinned
by the bench node's ``resource`` (default ``hil_node:<name>``) and, on a joined cluster, by its
``host`` (Ray's ``node:<ip>`` resource).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hil.cluster.driver import resource_name
from hil.cluster.node import CUT_RX, EDGE_UNITS, unit_names
from hil.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deployment:
    """The stages in chain order (``(node, units)``), each node's Ray resources, and the plan behind it.

    ``problem`` and ``plan`` are None for the two-node bench of a training config (nothing was placed).
    """

    stages: tuple[tuple[str, tuple[str, ...]], ...]
    resources: dict[str, dict[str, float]] = field(default_factory=dict)
    hosts: dict[str, str] = field(default_factory=dict)
    problem: Any = None
    plan: Any = None
    bench: str | None = None

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.stages)


def two_node(cfg, image_shape: tuple[int, int, int], classes: int) -> Deployment:
    """The two-node bench of a training config: ``edge`` and ``server``."""
    units = unit_names(cfg, image_shape, classes)
    stages = (("edge", EDGE_UNITS), ("server", units[len(EDGE_UNITS):]))
    return Deployment(stages, {n: {resource_name(n): 1.0} for n, _ in stages})


def chain_profile(cfg, image_shape: tuple[int, int, int], classes: int):
    """The units of ``cfg``'s split model as a :class:`hil.split.profile.Profile` (see [Note: placing the split
    model on a bench]): FLOPs, output and parameter bytes for one request of ``[train] batch_size`` samples."""
    from hil.flops import count_flops
    from hil.split.profile import INPUT, Layer, Profile
    from hil.train.models import build_model

    m = cfg.model
    torch.manual_seed(0)
    model = build_model(m.kind, tuple(image_shape), int(classes), hidden=m.hidden, cut_out=m.cut_out,
                        kernel_size=m.kernel_size, ota=True, link=None, n_tx=cfg.ota.n_tx, n_rx=cfg.ota.n_rx,
                        channel_uses=cfg.ota.channel_uses, normalize=m.normalize, power=m.power).eval()
    ota = model.cut
    fns = {"edge": (model.edge, list(model.edge.parameters())), "cut.precoder": (ota.precode, [ota.precoder]),
           CUT_RX: (lambda s: ota.combine(torch.einsum("rt,btk->brk", ota.twin_channel, s)),
                    [ota.combiner] + list(ota.norm.parameters() if ota.norm is not None else [])
                    + ([ota.bias] if ota.bias is not None else []))}
    for i, layer in enumerate(model.server):
        fns[f"server.{i}"] = (layer, list(layer.parameters()))
    x = torch.zeros((int(cfg.train.batch_size), *image_shape))
    layers, prev = [], INPUT
    with torch.no_grad():
        for u in unit_names(cfg, image_shape, classes):
            f, params = fns[u]
            with count_flops() as c:
                y = f(x)
            nbytes = float(y.numel() * y.element_size())
            layers.append(Layer(u, float(c.total), nbytes, float(sum(p.numel() * p.element_size() for p in params)),
                                (prev,)))
            x, prev = y, u
    return Profile(tuple(layers), float(cfg.train.batch_size * torch.Size(image_shape).numel() * 4),
                   f"{m.kind} split")


def place_on_bench(cfg, bench: str | Path, image_shape: tuple[int, int, int], classes: int,
                   solver: str = "auto") -> Deployment:
    """Place the units of ``cfg``'s split model on the nodes of the bench file ``bench`` (see [Note: placing
    the split model on a bench]). Raises ConfigError naming the file for a bench the model cannot use."""
    from hil.split.plan import Problem
    from hil.split.solvers import solve
    from hil.split.topology import Topology, node_tables

    try:
        topo = Topology.load(bench)
        raw = node_tables(bench)
    except ConfigError as e:
        raise ConfigError(f"--bench {bench}: {e}") from e
    src = topo.nodes[topo.source_index].name
    ota = [ln for ln in topo.links if ln.ota and src in (ln.a, ln.b)]
    if not ota:
        raise ConfigError(f"--bench {bench}: no over-the-air link from the source node {src!r}; the model's cut is "
                          "over the air: give a [[links]] entry with a channel table (or ota = true) from it")
    link = ota[0]
    rx = link.b if link.a == src else link.a
    if link.n_tx != cfg.ota.n_tx:
        raise ConfigError(f"--bench {bench}: the over-the-air link {src}->{rx} has {link.n_tx} transmit antennas "
                          f"but the config's [ota] n_tx = {cfg.ota.n_tx}; make them equal")
    profile = chain_profile(cfg, image_shape, classes)
    pins = {"edge": src, "cut.precoder": src, CUT_RX: rx}
    problem = Problem(profile, topo, "latency", pins)
    plan = solve(problem, solver)
    stages: list[tuple[str, list[str]]] = []
    for u in (layer.name for layer in profile.layers):
        node = plan.assignment[u]
        if stages and stages[-1][0] == node:
            stages[-1][1].append(u)
        elif any(n == node for n, _ in stages):
            raise ConfigError(f"--bench {bench}: the plan {dict(plan.assignment)} comes back to node {node!r}; "
                              "each node runs one stage: pin the layers (or change the nodes' speeds)")
        else:
            stages.append((node, [u]))
    resources, hosts = {}, {}
    for node, _ in stages:
        t = raw.get(node, {})
        resources[node] = {str(t.get("resource") or resource_name(node)): 1.0}
        if t.get("host"):
            hosts[node] = str(t["host"])
    return Deployment(tuple((n, tuple(u)) for n, u in stages), resources, hosts, problem, plan, str(bench))


def predicted(dep: Deployment) -> dict | None:
    """The placement engine's latency of one request, per stage (compute) and per link (transfers), in s."""
    if dep.plan is None:
        return None
    import numpy as np

    cm = dep.problem.costs()
    a = dep.plan.indices(dep.problem)
    t = cm.comp_time[np.arange(cm.L), a]
    names = [layer.name for layer in dep.problem.profile.layers]
    stages = {n: float(sum(t[names.index(u)] for u in units)) for n, units in dep.stages}
    links = {f"{tr.src}->{tr.dst}": tr.time_s for tr in dep.plan.transfers if tr.layer != "input"}
    return {"request": float(dep.plan.latency_s), "compute": float(dep.plan.compute_s),
            "comm": float(dep.plan.comm_s), "stages": stages, "links": links}
