"""Solvers against brute force, infeasibility, pins, energy, baselines."""

import numpy as np
import pytest

from hil.errors import PlacementError, PlacementInfeasible
from hil.split.plan import Plan, Problem
from hil.split.profile import Layer, Profile, chain_profile
from hil.split.solvers import choose_solver, place, solve, solve_brute, solve_dp, solve_mincut, solve_milp
from hil.split.synthetic import random_problem
from hil.split.topology import Link, Node, Topology

# brute force over N**L assignments; sizes kept so that N**L <= 4**8 (tractable in numpy)
LMAX = {2: 12, 3: 9, 4: 8}


def _instances(seed: int, n: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        N = int(rng.integers(2, 5))
        L = int(rng.integers(2, LMAX[N] + 1))
        dag = bool(rng.random() < 0.6)
        mem = bool(rng.random() < 0.3)
        obj = "energy" if rng.random() < 0.2 else "latency"
        yield random_problem(rng, L, N, dag, memory=mem, objective=obj)


def test_200_random_instances_match_brute_force():
    """Seed 7: 200 chains and DAGs of 2..12 layers over 2..4 nodes (<= 9 layers on 3, <= 8 on 4), 30 % with memory limits, 20 % energy.

    Every applicable exact solver's objective (the MILP on every instance that dp/mincut cannot take
    and on every second other one, to keep the test near 10 s) equals brute force's to 1e-7 relative (the min-cut
    scales costs to int32, resolution ~1e-9 of the total); infeasible instances are infeasible for all.
    """
    checked = {"dp": 0, "mincut": 0, "milp": 0, "auto": 0, "infeasible": 0}
    for k, p in enumerate(_instances(7, 200)):
        try:
            ref = solve_brute(p)
        except PlacementInfeasible:
            checked["infeasible"] += 1
            with pytest.raises(PlacementInfeasible):
                solve(p, "milp")
            continue
        names = []
        if p.profile.is_chain() and not p.memory_binds:
            names.append("dp")
        if len(p.topology.nodes) == 2 and not p.memory_binds:
            names.append("mincut")
        if choose_solver(p) != "milp":
            names.append("auto")
        if not names or k % 2 == 0:  # the MILP on every instance no other exact solver covers, and half the rest
            names.append("milp")
        for s in names:
            got = solve(p, s)
            assert got.feasible
            assert got.objective_value == pytest.approx(ref.objective_value, rel=1e-7, abs=1e-12), (s, p.profile)
            # the reported cost is the cost of the reported assignment
            again = Plan.from_assignment(p, got.indices(p), "x", False)
            assert again.objective_value == pytest.approx(got.objective_value, rel=1e-12)
            checked[s] += 1
    assert checked["dp"] > 20 and checked["mincut"] > 20 and checked["milp"] > 100 and checked["auto"] > 40, checked


def _two_node(mem_mobile=float("inf"), mem_server=float("inf")):
    prof = chain_profile([1e9, 2e9, 4e9, 1e9], [4e6, 1e5, 1e6, 4e3], 6e5, params_bytes=[1e6, 2e6, 5e7, 1e7])
    topo = Topology((Node("mobile", 1e10, mem_bytes=mem_mobile, source=True), Node("server", 1e12, mem_bytes=mem_server)),
                    (Link("mobile", "server", bytes_per_s=1.25e6, latency_s=0.005),))
    return prof, topo


def test_chain_dp_finds_the_obvious_split():
    prof, topo = _two_node()
    plan = solve_dp(Problem(prof, topo))
    # input 600 kB would take 0.48 s; l1's 100 kB output takes 0.085 s: split after l1
    assert dict(plan.assignment) == {"l0": "mobile", "l1": "mobile", "l2": "server", "l3": "server"}
    assert plan.latency_s == pytest.approx(0.1 + 0.2 + 0.005 + 1e5 / 1.25e6 + 0.004 + 0.001)
    assert [(t.layer, t.src, t.dst) for t in plan.transfers] == [("l1", "mobile", "server")]
    assert plan.to_dict()["optimal"] is True and set(plan.to_dict()) >= {"assignment", "latency_s", "compute_s",
                                                                        "comm_s", "solver", "optimal"}


def test_infeasible_names_the_memory_constraint():
    prof, topo = _two_node(mem_mobile=1e7, mem_server=3e7)
    with pytest.raises(PlacementInfeasible, match="layer 'l2' needs .* more than any node"):
        solve(Problem(prof, topo))
    prof, topo = _two_node(mem_mobile=5.2e7, mem_server=1.2e7)
    with pytest.raises(PlacementInfeasible, match="memory: the model needs"):
        solve(Problem(prof, topo), "milp")


def test_memory_limit_moves_layers_and_auto_uses_milp():
    prof, topo = _two_node(mem_server=5.5e7)  # l2 (5e7 + 1e6) fits on the server only without l3
    plan = solve(Problem(prof, topo))
    assert plan.solver == "milp" and plan.feasible
    assert plan.memory_bytes["server"] <= 5.5e7
    assert plan.objective_value == pytest.approx(solve_brute(Problem(prof, topo)).objective_value)
    with pytest.raises(PlacementError, match="use milp"):
        solve_dp(Problem(prof, topo))


def test_pins_are_respected():
    prof, topo = _two_node()
    plan = solve(Problem(prof, topo, pins={"l3": "mobile"}))
    assert plan.assignment["l3"] == "mobile"
    assert plan.objective_value == pytest.approx(solve_brute(Problem(prof, topo, pins={"l3": "mobile"})).objective_value)


def test_dp_and_mincut_refuse_the_wrong_shape():
    prof = Profile((Layer("a", 1, 1), Layer("b", 1, 1, 0, ("a",)), Layer("c", 1, 1, 0, ("a", "b"))), 1.0)
    topo3 = Topology((Node("x", 1, source=True), Node("y", 2), Node("z", 3)),
                     (Link("x", "y", bytes_per_s=1), Link("y", "z", bytes_per_s=1)))
    with pytest.raises(PlacementError, match="needs a chain"):
        solve_dp(Problem(prof, topo3))
    with pytest.raises(PlacementError, match="two nodes"):
        solve_mincut(Problem(prof, topo3))
    with pytest.raises(ValueError, match="solver must be one of"):
        solve(Problem(prof, topo3), "greedy")


def test_energy_objective_prefers_low_power_node():
    prof, _ = _two_node()
    topo = Topology((Node("mobile", 1e10, source=True, compute_w=0.1), Node("server", 1e12, compute_w=1e4)),
                    (Link("mobile", "server", bytes_per_s=1.25e6, tx_w=0.5),))
    fast = solve(Problem(prof, topo, "latency"))
    green = solve(Problem(prof, topo, "energy"))
    assert green.energy_j <= fast.energy_j and green.latency_s >= fast.latency_s
    assert set(green.assignment.values()) == {"mobile"}  # 8e9 FLOP * 1e-11 s/FLOP * 0.1 W = 0.08 J


def test_baselines_are_never_better_than_the_optimum():
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = random_problem(rng, int(rng.integers(3, 9)), int(rng.integers(2, 4)), dag=bool(rng.random() < 0.5))
        rep = place(p)
        assert set(rep.baselines) == {"all_source", "all_fastest", "neurosurgeon", "dads"}
        for k, r in rep.ratios.items():
            assert r >= 1 - 1e-7, (k, r)
        # Neurosurgeon includes "no cut", so it is at least as good as all-on-source
        assert rep.baselines["neurosurgeon"].objective_value <= rep.baselines["all_source"].objective_value + 1e-12


def test_milp_handles_unreachable_pairs():
    prof = Profile((Layer("a", 1e9, 1e3), Layer("b", 1e9, 1e3, 0, ("a",)), Layer("c", 1e9, 1e3, 0, ("a", "b"))), 1e3)
    # y is reachable only from the source x; z only from y (x -> z routes through y)
    topo = Topology((Node("x", 1e9, source=True), Node("y", 1e10), Node("z", 1e12)),
                    (Link("x", "y", bytes_per_s=1e6), Link("y", "z", bytes_per_s=1e6)))
    assert solve_milp(Problem(prof, topo)).objective_value == pytest.approx(solve_brute(Problem(prof, topo)).objective_value)


def test_one_node_honours_the_requested_solver_and_its_options():
    prof = Profile((Layer("a", 1e9, 1e3, 0, ("input",)), Layer("b", 1e9, 1e3, 0, ("a", "input"))), 1e3)
    one = Topology((Node("solo", 1e9, source=True),))
    p = Problem(prof, one)
    assert choose_solver(p) == "brute" and solve(p).solver == "brute"
    assert solve(p, "milp", time_limit_s=5.0).solver == "milp"
    assert solve(p, "milp").objective_value == pytest.approx(2.0)
    with pytest.raises(PlacementError, match="two nodes; this topology has 1. Use brute or milp"):
        solve(p, "mincut")
    with pytest.raises(PlacementError, match="needs a chain"):
        solve(p, "dp")
    with pytest.raises(TypeError, match="'brute' does not take the options \\['time_limit_s'\\]"):
        solve(p, "brute", time_limit_s=1.0)


def test_mincut_claims_optimality_only_when_no_cost_was_rounded():
    """Integer costs scale exactly (power-of-two scale): optimal=True; a cost 1e-12 of the total rounds: False."""
    def problem(tiny):
        layers = (Layer("a", 3, 2, 0, ("input",)), Layer("b", 5, 1, 0, ("a",)), Layer("c", 7, 4, 0, ("a", "b", "input")))
        topo = Topology((Node("x", 1, source=True), Node("y", 2 if not tiny else 2 + 1e-12)),
                        (Link("x", "y", bytes_per_s=1.0),))
        return Problem(Profile(layers, 3.0), topo)

    exact = solve_mincut(problem(False))
    assert exact.optimal and exact.objective_value == solve_brute(problem(False)).objective_value
    rounded = solve_mincut(problem(True))
    assert not rounded.optimal
    assert rounded.objective_value == pytest.approx(solve_brute(problem(True)).objective_value, rel=1e-8)


def test_evaluate_and_evaluate_many_are_one_objective():
    """Seed 5: random assignments, some pinned away (inf cost) or over memory: same objective and feasibility."""
    rng = np.random.default_rng(5)
    for _ in range(30):
        p = random_problem(rng, int(rng.integers(2, 9)), int(rng.integers(2, 4)), dag=True, memory=True)
        p = Problem(p.profile, p.topology, p.objective, pins={p.profile.layers[-1].name: p.topology.names[-1]})
        cm = p.costs()
        A = rng.integers(0, cm.N, size=(16, cm.L))
        obj, ok = cm.evaluate_many(A)
        for k in range(len(A)):
            ev = cm.evaluate(A[k])
            assert ev["objective"] == obj[k] and ev["feasible"] == ok[k]
            assert ev["comm_s"] == pytest.approx(sum(t[3] for t in ev["transfers"]), rel=1e-12)
        assert not np.isfinite(obj[A[:, -1] != cm.N - 1]).any() and not ok[A[:, -1] != cm.N - 1].any()
