"""The placement problem, its cost model, and the plan a solver returns.

[Note: placement cost model]
Layers run one after another (no pipelining, one inference at a time), as in Neurosurgeon and
DADS's light-load case, so the end-to-end latency of an assignment ``a: layer -> node`` is::

    latency = sum_l compute(l, a(l))                                     (compute_s)
            + sum_u sum_{n in D(u), n != a(u)} route(out_bytes(u), a(u) -> n)   (comm_s)
            + sum_{n in D(input), n != source} route(input_bytes, source -> n)

where ``D(u)`` is the set of nodes running a consumer of ``u`` (``D(input)``: of the layers that read
the model input, hil.split.profile [Note: the model input in deps]): an activation is sent once to each
node that needs it, however many layers there read it. ``compute(l, n) = flops(l) / flops_per_s(n)``
(or the measured latency on a ``use_measured`` node) and ``route`` is the least-cost route's time
(see hil.split.topology [Note: link cost model]). The energy objective replaces each term by its
energy: ``compute_w(n) * compute time`` and ``tx_w(link) * transfer time`` summed along the route.
Memory: a node's layers need ``sum params_bytes + out_bytes <= mem_bytes``. Every solver optimises
exactly this function, so their results can be compared with brute force to the last bit; one
implementation (``CostModel._total``) computes it for every solver and for the reported plan.
A plan records each transfer's route, and hil.split.execute sends it hop by hop along that route.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from hil.errors import PlacementError
from hil.split.profile import INPUT, Profile
from hil.split.topology import Topology

OBJECTIVES = ("latency", "energy")


@dataclass(frozen=True)
class Problem:
    """A placement problem.

    Attributes:
        profile: the model's layer graph.
        topology: the nodes and links.
        objective: "latency" (seconds) or "energy" (joules).
        pins: layer name -> node name, layers that must run on a given node (e.g. privacy).
        respect_memory: enforce the nodes' ``mem_bytes``.
    """

    profile: Profile
    topology: Topology
    objective: str = "latency"
    pins: Mapping[str, str] = field(default_factory=dict)
    respect_memory: bool = True

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        for layer, node in self.pins.items():
            self.profile.index(layer)
            self.topology.index(node)
        object.__setattr__(self, "pins", MappingProxyType(dict(self.pins)))

    def costs(self) -> "CostModel":
        cm = self.__dict__.get("_costs")
        if cm is None:
            cm = CostModel(self)
            object.__setattr__(self, "_costs", cm)
        return cm

    @property
    def memory_binds(self) -> bool:
        """True when the memory limits could restrict some assignment."""
        if not self.respect_memory:
            return False
        total = sum(l.mem_bytes for l in self.profile.layers)
        return any(n.mem_bytes < total for n in self.topology.nodes)


class CostModel:
    """The arrays of [Note: placement cost model] for one problem.

    Attributes (L layers, N nodes; ``cost`` is in the objective's unit, ``inf`` = not allowed):
        comp_cost, comp_time, comp_energy: (L, N).
        xfer_cost, xfer_time, xfer_energy: (L, N, N), moving layer u's output from m to n.
        xfer_next: (L, N, N) int64, next hops of those routes (see Topology.routes).
        in_cost, in_time, in_energy: (N,), moving the model input from the source to n.
        in_next: (N, N) int64, next hops of the routes for the input's size.
        mem: (L,) bytes; cap: (N,) bytes (inf when memory is not enforced).
        consumers: per layer, indices of the layers reading it; in_consumers: readers of the input.
    """

    def __init__(self, problem: Problem) -> None:
        prof, topo = problem.profile, problem.topology
        L, N = len(prof), len(topo.nodes)
        self.L, self.N, self.src = L, N, topo.source_index
        energy = problem.objective == "energy"
        flops = np.array([l.flops for l in prof.layers])
        speed = np.array([n.flops_per_s for n in topo.nodes])
        self.comp_time = flops[:, None] / speed[None, :]
        for j, node in enumerate(topo.nodes):
            if node.use_measured:
                for i, l in enumerate(prof.layers):
                    if l.latency_s is not None:
                        self.comp_time[i, j] = l.latency_s
        self.comp_energy = self.comp_time * np.array([n.compute_w for n in topo.nodes])[None, :]
        self.comp_cost = (self.comp_energy if energy else self.comp_time).copy()
        for layer, node in problem.pins.items():
            i, j = prof.index(layer), topo.index(node)
            keep = self.comp_cost[i, j]
            self.comp_cost[i, :] = np.inf
            self.comp_cost[i, j] = keep
        cache: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

        def route(nbytes: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            if nbytes not in cache:
                cache[nbytes] = topo.routes(nbytes, energy)
            return cache[nbytes]

        self.xfer_cost = np.zeros((L, N, N))
        self.xfer_time = np.zeros((L, N, N))
        self.xfer_energy = np.zeros((L, N, N))
        self.xfer_next = np.zeros((L, N, N), dtype=np.int64)
        for i, l in enumerate(prof.layers):
            self.xfer_cost[i], self.xfer_time[i], self.xfer_energy[i], self.xfer_next[i] = route(float(l.out_bytes))
        c, t, e, nx = route(float(prof.input_bytes))
        self.in_cost, self.in_time, self.in_energy = c[self.src].copy(), t[self.src].copy(), e[self.src].copy()
        self.in_next = nx  # (N, N) next hops for the input's size; the input leaves from the source
        self.mem = np.array([l.mem_bytes for l in prof.layers])
        self.cap = np.array([n.mem_bytes if problem.respect_memory else math.inf for n in topo.nodes])
        self.consumers = prof.consumers()
        self.in_consumers = prof.input_consumers()

    def _total(self, A: np.ndarray, comp: np.ndarray | None, xfer: np.ndarray, inp: np.ndarray) -> np.ndarray:
        """The one implementation of the cost sum: (K,) totals of K assignments ``A`` (K, L).

        ``comp`` (L, N) per layer and node (None = 0), ``xfer`` (L, N, N) per layer output and
        ``inp`` (N,) for the input, each value paid once per other node that runs one of its readers.
        """
        K = A.shape[0]
        kk = np.arange(K)
        tot = comp[np.arange(self.L)[None, :], A].sum(axis=1) if comp is not None else np.zeros(K)
        if self.in_consumers:
            hit = np.zeros((K, self.N), dtype=bool)
            hit[kk[:, None], A[:, self.in_consumers]] = True
            hit[:, self.src] = False
            tot = tot + np.where(hit, inp[None, :], 0.0).sum(axis=1)
        for u, cons in enumerate(self.consumers):
            if not cons:
                continue
            au = A[:, u]
            hit = np.zeros((K, self.N), dtype=bool)
            hit[kk[:, None], A[:, cons]] = True
            hit[kk, au] = False
            tot = tot + np.where(hit, xfer[u][au, :], 0.0).sum(axis=1)
        return tot

    def evaluate_many(self, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Objective (K,) and feasibility (K,) of K assignments ``A`` (K, L) at once.

        Feasible = every memory limit holds and the objective is finite (as :meth:`evaluate`).
        """
        A = np.asarray(A, dtype=np.int64)
        obj = self._total(A, self.comp_cost, self.xfer_cost, self.in_cost)
        ok = np.isfinite(obj)
        for n in range(self.N):
            if math.isfinite(self.cap[n]):
                ok &= ((A == n) * self.mem[None, :]).sum(axis=1) <= self.cap[n]
        return obj, ok

    def evaluate(self, a: np.ndarray) -> dict[str, Any]:
        """Cost of one assignment ``a`` (L,) of node indices: objective, latency, energy, transfers.

        The objective and feasibility are :meth:`evaluate_many`'s; ``transfers`` lists
        ``(u, src, dst, time_s, route)`` (``u = -1`` for the model input, ``route`` the node indices
        from ``src`` to ``dst`` along the least-cost route the cost is charged for).
        """
        a = np.asarray(a, dtype=np.int64)
        A = a[None, :]
        obj, ok = self.evaluate_many(A)
        out: dict[str, Any] = {
            "objective": float(obj[0]),
            "compute_s": float(self.comp_time[np.arange(self.L), a].sum()),
            "comm_s": float(self._total(A, None, self.xfer_time, self.in_time)[0]),
            "energy_j": float(self._total(A, self.comp_energy, self.xfer_energy, self.in_energy)[0]),
            "feasible": bool(ok[0]),
        }
        transfers = []
        for n in sorted({int(a[v]) for v in self.in_consumers} - {self.src}):
            route = Topology.path(self.in_next, self.src, n) if self.in_next[self.src, n] >= 0 else ()
            transfers.append((-1, self.src, n, float(self.in_time[n]), route))
        for u, cons in enumerate(self.consumers):
            m = int(a[u])
            for n in sorted({int(a[v]) for v in cons} - {m}):
                route = Topology.path(self.xfer_next[u], m, n) if self.xfer_next[u, m, n] >= 0 else ()
                transfers.append((u, m, n, float(self.xfer_time[u, m, n]), route))
        out["transfers"] = transfers
        out["latency_s"] = out["compute_s"] + out["comm_s"]
        out["memory_bytes"] = np.bincount(a, weights=self.mem, minlength=self.N)
        return out


@dataclass(frozen=True)
class Transfer:
    """One activation crossing links: ``layer``'s output (or the model input) from ``src`` to ``dst``.

    ``route`` lists the node names from ``src`` to ``dst`` (both included) along which the cost model
    charged the transfer and along which execution sends it hop by hop; () in plans written before
    routes were recorded (execution then needs a direct link).
    """

    layer: str
    src: str
    dst: str
    nbytes: float
    time_s: float
    route: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "route", tuple(self.route))


_TRANSFER_KEYS = ("layer", "src", "dst", "nbytes", "time_s", "route")


@dataclass(frozen=True)
class Plan:
    """An assignment of layers to nodes with its cost (JSON: the "plan" format of docs/architecture.md).

    Attributes:
        assignment: layer name -> node name, in the profile's order.
        latency_s, compute_s, comm_s: end-to-end latency and its two parts (s).
        energy_j: energy of the plan (J).
        objective: the objective optimised; objective_value in its unit.
        solver: "dp", "mincut", "milp", "brute" or a baseline's name.
        optimal: True when the solver proved optimality for the problem it was given.
        transfers: the activations that cross links.
        memory_bytes: node name -> bytes used.
        feasible: all memory limits hold.
        solve_time_s: wall time of the solver.
    """

    assignment: Mapping[str, str]
    latency_s: float
    compute_s: float
    comm_s: float
    energy_j: float
    objective: str
    objective_value: float
    solver: str
    optimal: bool
    transfers: tuple[Transfer, ...] = ()
    memory_bytes: Mapping[str, float] = field(default_factory=dict)
    feasible: bool = True
    solve_time_s: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "assignment", MappingProxyType(dict(self.assignment)))
        object.__setattr__(self, "memory_bytes", MappingProxyType(dict(self.memory_bytes)))
        object.__setattr__(self, "transfers", tuple(self.transfers))

    @classmethod
    def from_assignment(cls, problem: Problem, a: np.ndarray, solver: str, optimal: bool,
                        solve_time_s: float = 0.0) -> "Plan":
        cm = problem.costs()
        ev = cm.evaluate(a)
        prof, topo = problem.profile, problem.topology
        names = topo.names
        transfers = tuple(
            Transfer(
                INPUT if u < 0 else prof.layers[u].name,
                names[s], names[d],
                float(prof.input_bytes if u < 0 else prof.layers[u].out_bytes),
                t,
                tuple(names[k] for k in route),
            )
            for u, s, d, t, route in ev["transfers"]
        )
        return cls(
            assignment={l.name: names[int(n)] for l, n in zip(prof.layers, a)},
            latency_s=ev["latency_s"], compute_s=ev["compute_s"], comm_s=ev["comm_s"], energy_j=ev["energy_j"],
            objective=problem.objective, objective_value=ev["objective"], solver=solver, optimal=optimal,
            transfers=transfers, memory_bytes={names[n]: float(b) for n, b in enumerate(ev["memory_bytes"])},
            feasible=ev["feasible"], solve_time_s=solve_time_s,
        )

    def indices(self, problem: Problem) -> np.ndarray:
        """The assignment as node indices (L,) int64 in the profile's order."""
        return np.array([problem.topology.index(self.assignment[l.name]) for l in problem.profile.layers])

    @property
    def cuts(self) -> int:
        """Number of activations (including the input) that cross a link."""
        return len(self.transfers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "assignment": dict(self.assignment),
            "latency_s": self.latency_s,
            "compute_s": self.compute_s,
            "comm_s": self.comm_s,
            "energy_j": self.energy_j,
            "objective": self.objective,
            "objective_value": self.objective_value,
            "solver": self.solver,
            "optimal": self.optimal,
            "feasible": self.feasible,
            "solve_time_s": self.solve_time_s,
            "memory_bytes": dict(self.memory_bytes),
            "transfers": [{**t.__dict__, "route": list(t.route)} for t in self.transfers],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Plan":
        if "assignment" not in d:
            raise PlacementError("a plan needs an 'assignment' (layer -> node)")
        return cls(
            assignment=d["assignment"], latency_s=float(d.get("latency_s", math.nan)),
            compute_s=float(d.get("compute_s", math.nan)), comm_s=float(d.get("comm_s", math.nan)),
            energy_j=float(d.get("energy_j", math.nan)), objective=d.get("objective", "latency"),
            objective_value=float(d.get("objective_value", d.get("latency_s", math.nan))),
            solver=d.get("solver", ""), optimal=bool(d.get("optimal", False)),
            transfers=tuple(Transfer(**{k: v for k, v in t.items() if k in _TRANSFER_KEYS})
                            for t in d.get("transfers", ())),
            memory_bytes=d.get("memory_bytes", {}), feasible=bool(d.get("feasible", True)),
            solve_time_s=float(d.get("solve_time_s", 0.0)),
        )
