"""Random placement problems for tests and benchmarks (seeded by the Generator passed in)."""

from __future__ import annotations

import numpy as np

from hil.split.plan import Problem
from hil.split.profile import INPUT, Layer, Profile
from hil.split.topology import Link, Node, Topology


def random_profile(rng: np.random.Generator, n_layers: int, dag: bool) -> Profile:
    """A chain, or a DAG whose layers read 1-3 earlier layers (skip connections), with random costs.

    In a DAG about 5 % of the later layers read only the model input, 5 % read it besides their layers
    (a residual from the input) and 3 % read nothing (only constants).
    """
    layers = []
    for i in range(n_layers):
        if i == 0:
            deps: tuple[str, ...] = (INPUT,)
        elif not dag:
            deps = (f"l{i-1}",)
        else:
            k = int(rng.integers(1, min(3, i) + 1))
            picks = {i - 1} | set(rng.choice(i, size=k, replace=False).tolist())
            if rng.random() < 0.1:
                picks = set(rng.choice(i, size=k, replace=False).tolist())
            deps = tuple(f"l{j}" for j in sorted(picks))
        r = rng.random() if dag and i > 0 else 1.0
        if r < 0.05:
            deps = (INPUT,)  # a second reader of the model input
        elif r < 0.1:
            deps = deps + (INPUT,)  # a residual connection from the model input
        elif r < 0.13:
            deps = ()  # reads no layer and not the input (e.g. only constants)
        layers.append(Layer(f"l{i}", float(rng.uniform(0, 1e9)), float(rng.uniform(0, 1e6)),
                            float(rng.uniform(0, 1e6)), deps))
    return Profile(tuple(layers), float(rng.uniform(1e4, 2e6)), "random")


def random_topology(rng: np.random.Generator, n_nodes: int, full: bool = True, ota: bool = True) -> Topology:
    """Nodes of 1e9..1e12 FLOP/s (node 0 the source); links complete or a random tree plus extras."""
    nodes = tuple(
        Node(f"n{i}", float(10 ** rng.uniform(9, 12)), source=(i == 0), compute_w=float(rng.uniform(0.5, 20)))
        for i in range(n_nodes)
    )
    pairs = [(i, j) for i in range(n_nodes) for j in range(i + 1, n_nodes)]
    if not full:
        tree = [(int(rng.integers(0, j)), j) for j in range(1, n_nodes)]
        extra = [p for p in pairs if p not in tree and rng.random() < 0.3]
        pairs = tree + extra
    links = []
    for i, j in pairs:
        if ota and rng.random() < 0.3:
            links.append(Link(f"n{i}", f"n{j}", ota=True, n_tx=int(rng.integers(1, 5)),
                              sample_rate_hz=float(rng.uniform(1e5, 2e7)), overhead=float(rng.uniform(0, 0.5)),
                              latency_s=float(rng.uniform(0, 1e-3)), tx_w=float(rng.uniform(0.1, 2))))
        else:
            links.append(Link(f"n{i}", f"n{j}", bytes_per_s=float(10 ** rng.uniform(5, 8)),
                              latency_s=float(rng.uniform(0, 5e-3)), tx_w=float(rng.uniform(0.1, 2))))
    return Topology(nodes, tuple(links))


def random_problem(rng: np.random.Generator, n_layers: int, n_nodes: int, dag: bool,
                   memory: bool = False, objective: str = "latency") -> Problem:
    """A random problem; with ``memory`` each node gets 30-100 % of the model's total memory."""
    prof = random_profile(rng, n_layers, dag)
    topo = random_topology(rng, n_nodes, full=bool(rng.random() < 0.7))
    if memory:
        total = sum(l.mem_bytes for l in prof.layers)
        nodes = tuple(
            Node(n.name, n.flops_per_s, float(total * rng.uniform(0.3, 1.0)), n.source, n.compute_w)
            for n in topo.nodes
        )
        topo = Topology(nodes, topo.links)
    return Problem(prof, topo, objective)
