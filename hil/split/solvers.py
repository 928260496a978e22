"""Placement solvers: chain DP, DAG min-cut (two nodes), MILP (N nodes, memory), brute force.

Each solver minimises the cost of hil.split.plan [Note: placement cost model] and returns a Plan.
``solve(problem, "auto")`` picks: MILP when memory limits could bind; the DP for a chain; the
min-cut for a DAG over two nodes; the MILP otherwise. ``baselines`` gives the plans of the usual
comparisons: all on the source, all on the fastest node, Neurosurgeon's best single cut, DADS's min cut.

No torch here: this module works from the JSON profile alone.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp

from hil.errors import PlacementError, PlacementInfeasible
from hil.split.plan import Plan, Problem

log = logging.getLogger(__name__)

SOLVERS = ("auto", "dp", "mincut", "milp", "brute")
BRUTE_MAX = 2_000_000


# ---------------------------------------------------------------------- diagnosis
def diagnose(problem: Problem) -> str:
    """A sentence naming the constraint that makes ``problem`` infeasible (best effort)."""
    cm = problem.costs()
    prof, topo = problem.profile, problem.topology
    names = topo.names
    reach = np.isfinite(cm.in_cost)
    for i, layer in enumerate(prof.layers):
        ok = np.isfinite(cm.comp_cost[i]) & (cm.mem[i] <= cm.cap)
        if not ok.any():
            pin = problem.pins.get(layer.name)
            if pin is not None and cm.mem[i] > cm.cap[topo.index(pin)]:
                return (f"memory of node {pin!r}: layer {layer.name!r} is pinned there but needs "
                        f"{cm.mem[i]:.4g} B > mem_bytes {cm.cap[topo.index(pin)]:.4g} B; raise the limit or unpin it")
            return (f"memory: layer {layer.name!r} needs {cm.mem[i]:.4g} B, more than any node offers "
                    f"(largest mem_bytes {cm.cap.max():.4g} B); add memory or a larger node")
    total, cap = float(cm.mem.sum()), float(cm.cap.sum())
    if total > cap:
        return (f"memory: the model needs {total:.4g} B in total but the nodes offer {cap:.4g} B; "
                "add memory or a node")
    if not reach.all():
        lost = [names[n] for n in range(cm.N) if not reach[n]]
        firsts = prof.input_consumers()
        if firsts and not any(reach[n] and np.isfinite(cm.comp_cost[firsts[0], n]) for n in range(cm.N)):
            return f"links: the input layers cannot run on any node the source reaches (unreachable: {lost})"
    if problem.pins:
        return (f"pins {dict(problem.pins)} together with the memory limits "
                f"{ {names[n]: float(cm.cap[n]) for n in range(cm.N)} }; relax a pin or a limit")
    return (f"memory limits { {names[n]: float(cm.cap[n]) for n in range(cm.N)} } and the links' reach "
            "admit no assignment; raise a memory limit or add a link")


def _finish(problem: Problem, a: np.ndarray, solver: str, t0: float, optimal: bool = True) -> Plan:
    plan = Plan.from_assignment(problem, a, solver, optimal, time.perf_counter() - t0)
    if not math.isfinite(plan.objective_value) or not plan.feasible:
        raise PlacementInfeasible(f"{solver}: no feasible placement; binding constraint: {diagnose(problem)}")
    return plan


# ---------------------------------------------------------------------- brute force
def solve_brute(problem: Problem, max_assignments: int = BRUTE_MAX, chunk: int = 1 << 16) -> Plan:
    """Exhaustive search over all N**L assignments (the test oracle). Raises PlacementError if too many."""
    t0 = time.perf_counter()
    cm = problem.costs()
    L, N = cm.L, cm.N
    total = N**L
    if total > max_assignments:
        raise PlacementError(
            f"brute force would try {N}**{L} = {total} assignments (> {max_assignments}); use dp, mincut or milp"
        )
    powers = N ** np.arange(L, dtype=np.int64)
    best, best_a = math.inf, None
    for k in range(0, total, chunk):
        idx = np.arange(k, min(k + chunk, total), dtype=np.int64)
        A = (idx[:, None] // powers[None, :]) % N
        obj, ok = cm.evaluate_many(A)
        obj = np.where(ok, obj, np.inf)
        j = int(np.argmin(obj))
        if obj[j] < best:
            best, best_a = float(obj[j]), A[j].copy()
    if best_a is None:
        raise PlacementInfeasible(f"brute: no feasible placement; binding constraint: {diagnose(problem)}")
    return _finish(problem, best_a, "brute", t0)


# ---------------------------------------------------------------------- chain DP
def solve_dp(problem: Problem) -> Plan:
    """Exact DP for a chain over N nodes (any number of splits), O(L N^2).

    ``best[i, n]`` = least cost of layers 0..i with layer i on node n::

        best[0, n] = in_cost[n] + comp[0, n]
        best[i, n] = min_m best[i-1, m] + xfer[i-1, m, n] + comp[i, n]
    """
    t0 = time.perf_counter()
    if not problem.profile.is_chain():
        raise PlacementError("dp needs a chain (each layer reads only the previous one); use mincut or milp for a DAG")
    if problem.memory_binds:
        raise PlacementError("dp does not enforce memory limits that could bind; use milp (or --solver auto)")
    cm = problem.costs()
    L = cm.L
    best = cm.in_cost + cm.comp_cost[0]
    back = np.zeros((L, cm.N), dtype=np.int64)
    for i in range(1, L):
        tot = best[:, None] + cm.xfer_cost[i - 1]  # [m, n]
        back[i] = np.argmin(tot, axis=0)
        best = tot[back[i], np.arange(cm.N)] + cm.comp_cost[i]
    a = np.zeros(L, dtype=np.int64)
    a[-1] = int(np.argmin(best))
    if not math.isfinite(best[a[-1]]):
        raise PlacementInfeasible(f"dp: no feasible placement; binding constraint: {diagnose(problem)}")
    for i in range(L - 1, 0, -1):
        a[i - 1] = back[i, a[i]]
    return _finish(problem, a, "dp", t0)


# ---------------------------------------------------------------------- min cut (DADS)
def solve_mincut(problem: Problem, pair: tuple[int, int] | None = None) -> Plan:
    """Min s-t cut over two nodes (DADS construction), exact up to integer scaling of capacities.

    ``pair`` = (source node index, other node index); default: the two nodes of a 2-node topology.
    Layers go to one of the two nodes; the source must be one of them. Graph: s->v carries v's cost
    on the t-node, v->t its cost on the s-node; an activation u gets two auxiliary vertices so that
    it is paid once per direction however many consumers sit across the cut (u->f cap xfer(s->t),
    f->v inf; v->g inf, g->u cap xfer(t->s)). scipy's maximum_flow works in int32, so costs are
    scaled to integers by a power of two (resolution ~2e-9 of the total); the plan reports the exact
    float cost, and ``optimal`` is True only when no cost was rounded (else the plan is within
    ``n_edges * 4 * total / 2**30`` of the optimum; [Note: min-cut optimality]).
    """
    from scipy.sparse.csgraph import breadth_first_order, maximum_flow

    t0 = time.perf_counter()
    cm = problem.costs()
    if pair is None:
        if cm.N != 2:
            raise PlacementError(f"mincut places over two nodes; this topology has {cm.N}. "
                                 f"Use {'brute or milp' if cm.N == 1 else 'milp (or pass pair)'}")
        pair = (cm.src, 1 - cm.src)
    ns, nt = pair
    if cm.src not in pair:
        raise PlacementError("mincut needs the source node to be one of the pair")
    if problem.memory_binds:
        raise PlacementError("mincut does not enforce memory limits that could bind; use milp (or --solver auto)")
    L = cm.L
    S, T = 0, 1
    rows: list[int] = []
    cols: list[int] = []
    caps: list[float] = []
    INF = -1.0  # placeholder, replaced after scaling

    def edge(u: int, v: int, c: float) -> None:
        rows.append(u)
        cols.append(v)
        caps.append(c)

    nxt = 2 + L
    for i in range(L):
        edge(S, 2 + i, cm.comp_cost[i, nt])  # cut when i is on the t side
        edge(2 + i, T, cm.comp_cost[i, ns])  # cut when i is on the s side
    sides = [(u, cm.consumers[u], cm.xfer_cost[u, ns, nt], cm.xfer_cost[u, nt, ns]) for u in range(L)]
    for u, cons, c_st, c_ts in sides:
        if not cons:
            continue
        f, g = nxt, nxt + 1
        nxt += 2
        edge(2 + u, f, c_st)
        edge(g, 2 + u, c_ts)
        for v in cons:
            edge(f, 2 + v, INF)
            edge(2 + v, g, INF)
    if cm.in_consumers:
        other = nt if cm.src == ns else ns
        c_in = cm.in_cost[other]
        h = nxt
        nxt += 1
        if cm.src == ns:
            edge(S, h, c_in)
            for v in cm.in_consumers:
                edge(h, 2 + v, INF)
        else:
            edge(h, T, c_in)
            for v in cm.in_consumers:
                edge(2 + v, h, INF)
    c = np.array(caps)
    inf_mask = (c == INF) | ~np.isfinite(c)
    finite = c[~inf_mask]
    total = float(finite.sum()) if finite.size else 0.0
    big = 2**30
    # a power of two, so that scaling itself is exact (integer costs stay integers)
    scale = 2.0 ** math.floor(math.log2(big / (2.0 * total))) if total > 0 else 1.0
    scaled = np.where(inf_mask, 0.0, c) * scale
    ci = np.where(inf_mask, big, np.rint(scaled)).astype(np.int32)
    # [Note: min-cut optimality] The cut is optimal for the rounded capacities. Each finite capacity
    # is off by at most 0.5 / scale, so the plan is within n_finite / scale of the optimum; it is
    # proven optimal only when no capacity was rounded (all scaled costs are integers).
    exact = bool(np.all(np.rint(scaled) == scaled))
    gap_bound = float(finite.size / scale) if not exact else 0.0
    graph = sp.csr_matrix((ci, (np.array(rows), np.array(cols))), shape=(nxt, nxt), dtype=np.int32)
    graph.sum_duplicates()
    res = maximum_flow(graph, S, T)
    if res.flow_value >= big:
        raise PlacementInfeasible(f"mincut: no feasible placement; binding constraint: {diagnose(problem)}")
    flow = res.flow if hasattr(res, "flow") else res.residual
    resid = (graph.astype(np.int64) - flow.astype(np.int64)).tocsr()
    resid.data[resid.data < 0] = 0
    resid.eliminate_zeros()
    reach = breadth_first_order(resid, S, directed=True, return_predecessors=False)
    on_s = np.zeros(nxt, dtype=bool)
    on_s[reach] = True
    a = np.where(on_s[2 : 2 + L], ns, nt).astype(np.int64)
    if not exact:
        log.debug("mincut: capacities rounded to int32; plan within %.3g of the optimum, optimal=False", gap_bound)
    return _finish(problem, a, "mincut", t0, optimal=exact)


# ---------------------------------------------------------------------- MILP
def solve_milp(problem: Problem, time_limit_s: float | None = 60.0) -> Plan:
    """MILP over N nodes with memory limits (scipy.optimize.milp, HiGHS).

    Variables: x[l, n] in {0, 1} (layer l on node n); z[u, m, n] in [0, 1] for m != n, the transfer
    of u's output from m to n, with z >= x[u, m] + x[v, n] - 1 for each consumer v (and z_in[n] >=
    x[v, n] for the readers of the input); at the optimum z is 1 exactly when the transfer happens.
    Minimise sum comp * x + sum xfer * z subject to sum_n x[l, n] = 1 and sum_l mem_l x[l, n] <= cap_n.
    Pairs with no route (inf transfer) get x[u, m] + x[v, n] <= 1 instead of a z.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp

    t0 = time.perf_counter()
    cm = problem.costs()
    L, N = cm.L, cm.N
    nx = L * N

    def X(l: int, n: int) -> int:
        return l * N + n

    cost = list(np.where(np.isfinite(cm.comp_cost), cm.comp_cost, 0.0).ravel())
    ub = list(np.isfinite(cm.comp_cost).astype(float).ravel())
    A_rows: list[int] = []
    A_cols: list[int] = []
    A_vals: list[float] = []
    lo: list[float] = []
    hi: list[float] = []
    r = 0

    def row(entries: list[tuple[int, float]], lb: float, ubv: float) -> None:
        nonlocal r
        for col, val in entries:
            A_rows.append(r)
            A_cols.append(col)
            A_vals.append(val)
        lo.append(lb)
        hi.append(ubv)
        r += 1

    for l in range(L):
        row([(X(l, n), 1.0) for n in range(N)], 1.0, 1.0)
    for n in range(N):
        if math.isfinite(cm.cap[n]):
            row([(X(l, n), float(cm.mem[l])) for l in range(L)], -np.inf, float(cm.cap[n]))
    nz = 0

    def transfer(c: float, pairs: list[tuple[int | None, int]]) -> None:
        """A transfer of cost ``c`` that happens when, for some (x_src, x_dst) in ``pairs``, both are 1
        (``x_src`` None: the input, always on the source): z >= x_src + x_dst - 1, or x_src + x_dst <= 1
        when the transfer is impossible (inf cost)."""
        nonlocal nz
        if not math.isfinite(c):
            for xs, xd in pairs:
                if xs is None:
                    ub[xd] = 0.0
                else:
                    row([(xs, 1.0), (xd, 1.0)], -np.inf, 1.0)
            return
        if c == 0:
            return
        z = nx + nz
        nz += 1
        cost.append(float(c))
        ub.append(1.0)
        for xs, xd in pairs:
            if xs is None:  # x_dst - z <= 0
                row([(xd, 1.0), (z, -1.0)], -np.inf, 0.0)
            else:  # x_src + x_dst - z <= 1
                row([(xs, 1.0), (xd, 1.0), (z, -1.0)], -np.inf, 1.0)

    for u, cons in enumerate(cm.consumers):
        for m in range(N):
            for n in range(N):
                if cons and m != n:
                    transfer(cm.xfer_cost[u, m, n], [(X(u, m), X(v, n)) for v in cons])
    for n in range(N):
        if n != cm.src and cm.in_consumers:
            transfer(cm.in_cost[n], [(None, X(v, n)) for v in cm.in_consumers])
    nvar = nx + nz
    A = sp.csr_matrix((A_vals, (A_rows, A_cols)), shape=(r, nvar))
    integrality = np.concatenate([np.ones(nx), np.zeros(nz)])
    options: dict[str, Any] = {"disp": False}
    if time_limit_s is not None:
        options["time_limit"] = float(time_limit_s)
    res = milp(np.array(cost), constraints=LinearConstraint(A, lo, hi), integrality=integrality,
               bounds=Bounds(np.zeros(nvar), np.array(ub)), options=options)
    if res.status == 2 or res.x is None:
        if res.status == 2:
            raise PlacementInfeasible(f"milp: infeasible; binding constraint: {diagnose(problem)}")
        raise PlacementError(f"milp: HiGHS stopped without a solution ({res.message}); raise time_limit_s")
    xs = res.x[:nx].reshape(L, N)
    a = np.argmax(xs, axis=1).astype(np.int64)
    optimal = res.status == 0
    if not optimal:
        log.info("milp: %s; returning the best plan found (the plan says: not proven optimal)", res.message)
    return _finish(problem, a, "milp", t0, optimal)


# ---------------------------------------------------------------------- dispatch
def choose_solver(problem: Problem) -> str:
    """The solver ``auto`` uses for ``problem`` (see the module docstring).

    One node: brute force (one assignment to check, memory included).
    """
    if len(problem.topology.nodes) == 1:
        return "brute"
    if problem.memory_binds:
        return "milp"
    if problem.profile.is_chain():
        return "dp"
    if len(problem.topology.nodes) == 2:
        return "mincut"
    return "milp"


def solve(problem: Problem, solver: str = "auto", **kwargs: Any) -> Plan:
    """Place ``problem`` with ``solver`` in {auto, dp, mincut, milp, brute}; returns the optimal Plan.

    ``kwargs`` go to the chosen solver (e.g. ``time_limit_s`` for milp). A solver that cannot take the
    problem raises PlacementError saying which one can (e.g. mincut on one node).
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if solver == "auto":
        solver = choose_solver(problem)
    fn = {"dp": solve_dp, "mincut": solve_mincut, "milp": solve_milp, "brute": solve_brute}[solver]
    try:
        inspect.signature(fn).bind(problem, **kwargs)
    except TypeError as e:
        raise TypeError(f"solver {solver!r} does not take the options {sorted(kwargs)} ({e}); "
                        f"its signature is {fn.__name__}{inspect.signature(fn)}") from e
    return fn(problem, **kwargs)


# ---------------------------------------------------------------------- baselines
def _all_on(problem: Problem, n: int, name: str) -> Plan:
    return Plan.from_assignment(problem, np.full(len(problem.profile), n, dtype=np.int64), name, False)


def neurosurgeon(problem: Problem) -> Plan:
    """Best single cut: layers before the cut (topological order) on the source, the rest on one other node."""
    cm = problem.costs()
    L = cm.L
    cands = [np.full(L, cm.src, dtype=np.int64)]  # no cut first, so it wins ties
    for n in range(cm.N):
        if n == cm.src:
            continue
        for k in range(L + 1):
            a = np.full(L, cm.src, dtype=np.int64)
            a[k:] = n
            cands.append(a)
    obj, ok = cm.evaluate_many(np.stack(cands))
    obj = np.where(ok, obj, np.inf)
    j = int(np.argmin(obj))
    best_a = cands[j] if math.isfinite(obj[j]) else cands[0]
    return Plan.from_assignment(problem, best_a, "neurosurgeon", False)


def dads(problem: Problem) -> Plan:
    """DADS: min s-t cut between the source and each other node (memory ignored); the best of them."""
    cm = problem.costs()
    relaxed = Problem(problem.profile, problem.topology, problem.objective, problem.pins, respect_memory=False)
    best: Plan | None = None
    for n in range(cm.N):
        if n == cm.src:
            continue
        try:
            p = solve_mincut(relaxed, pair=(cm.src, n))
        except PlacementInfeasible:
            continue
        p = Plan.from_assignment(problem, p.indices(problem), "dads", False)
        if best is None or p.objective_value < best.objective_value:
            best = p
    return best if best is not None else _all_on(problem, cm.src, "dads")


def baselines(problem: Problem) -> dict[str, Plan]:
    """The comparison plans: all_source, all_fastest, neurosurgeon, dads (memory flagged, not enforced)."""
    cm = problem.costs()
    out = {
        "all_source": _all_on(problem, cm.src, "all_source"),
        "all_fastest": _all_on(problem, problem.topology.fastest_index, "all_fastest"),
        "neurosurgeon": neurosurgeon(problem),
    }
    if cm.N >= 2:
        out["dads"] = dads(problem)
    return out


@dataclass(frozen=True)
class PlacementReport:
    """A plan with its baselines; ``ratios[name]`` = baseline objective / plan objective (speed-up)."""

    plan: Plan
    baselines: Mapping[str, Plan]
    ratios: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict(),
            "baselines": {k: v.to_dict() for k, v in self.baselines.items()},
            "ratios": dict(self.ratios),
        }


def place(problem: Problem, solver: str = "auto", **kwargs: Any) -> PlacementReport:
    """Solve ``problem`` and compare with the baselines."""
    plan = solve(problem, solver, **kwargs)
    base = baselines(problem)
    ratios = {
        k: (v.objective_value / plan.objective_value if plan.objective_value > 0 else math.nan)
        for k, v in base.items()
    }
    return PlacementReport(plan, base, ratios)
