"""The model input as a dependency (residuals from the input, constant-only layers) and multi-hop routes."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from hil.errors import LinkError, PlacementError
from hil.split.execute import split_model, topology_links
from hil.split.plan import Plan, Problem
from hil.split.profile import INPUT, Layer, Profile
from hil.split.solvers import solve, solve_brute
from hil.split.topology import Link, Node, Topology
from hil.split.trace import profile_model


class InputResidual(nn.Module):
    """``relu(conv(x)) + x + 2 c``: the input is read by conv and by the first add; ``mul`` reads only c."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.c = nn.Parameter(torch.ones(1, 2, 1, 1))

    def forward(self, x):
        k = self.c * 2.0
        return torch.relu(self.conv(x)) + x + k


TWO = Topology((Node("a", 1e9, source=True), Node("b", 1e11)), (Link("a", "b", bytes_per_s=1e5, latency_s=1e-3),))


@pytest.fixture(scope="module")
def traced():
    torch.manual_seed(0)
    model = InputResidual().eval()
    prof, gm = profile_model(model, (1, 2, 4, 4))
    return model, prof, gm


def test_trace_records_input_reads_and_not_constant_reads(traced):
    _, prof, _ = traced
    deps = {l.name: l.deps for l in prof.layers}
    assert deps == {"mul": (), "conv": (INPUT,), "relu": ("conv",), "add": ("relu", INPUT), "add_1": ("add", "mul")}
    assert [prof.layers[j].name for j in prof.input_consumers()] == ["conv", "add"]
    assert not prof.is_chain()
    # the JSON round trip keeps the explicit input
    again = Profile.from_dict(prof.to_dict())
    assert again.input_consumers() == prof.input_consumers() and again.explicit_input


def test_old_profiles_without_input_keep_the_empty_deps_rule():
    old = Profile.from_dict({"input_bytes": 10, "layers": [
        {"name": "a", "flops": 1, "out_bytes": 1, "deps": []},
        {"name": "b", "flops": 1, "out_bytes": 1, "deps": ["a"]},
        {"name": "c", "flops": 1, "out_bytes": 1, "deps": []},
    ]})
    assert not old.explicit_input and old.input_consumers() == [0, 2]
    new = Profile((Layer("a", 1, 1, 0, (INPUT,)), Layer("b", 1, 1, 0, ("a",)), Layer("c", 1, 1, 0, ())), 10)
    assert new.explicit_input and new.input_consumers() == [0]


def test_every_assignment_costs_exactly_the_transfers_execution_makes(traced):
    """All 2**5 assignments over two nodes: plan.transfers == what SplitModel sends (value, src, dst, bytes)."""
    model, prof, gm = traced
    problem = Problem(prof, TWO)
    x = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(x)
    names = [l.name for l in prof.layers]
    for combo in itertools.product((0, 1), repeat=len(names)):
        plan = Plan.from_assignment(problem, np.array(combo), "fixed", False)
        sm = split_model(gm, plan, TWO)
        with torch.no_grad():
            out = sm(x)
        assert torch.equal(out, ref)
        made = sorted((v, s, d, float(nb)) for v, s, d, nb in sm.transfers)
        charged = sorted((t.layer, t.src, t.dst, t.nbytes) for t in plan.transfers)
        assert made == charged, dict(zip(names, combo))
    # the case of the review: conv, relu on a; add on b -> the input crosses as well as relu's output
    a = {"mul": 1, "conv": 0, "relu": 0, "add": 1, "add_1": 1}
    plan = Plan.from_assignment(problem, np.array([a[n] for n in names]), "fixed", False)
    assert sorted(t.layer for t in plan.transfers) == ["input", "relu"]
    assert plan.comm_s == pytest.approx(2 * (1e-3 + 128 / 1e5))


def test_all_solvers_agree_on_an_input_residual(traced):
    _, prof, _ = traced
    ref = solve_brute(Problem(prof, TWO))
    for s in ("auto", "mincut", "milp"):
        assert solve(Problem(prof, TWO), s).objective_value == pytest.approx(ref.objective_value, rel=1e-9)
    three = Topology(TWO.nodes + (Node("c", 1e12),), TWO.links + (Link("b", "c", bytes_per_s=1e6),))
    ref3 = solve_brute(Problem(prof, three))
    assert solve(Problem(prof, three), "milp").objective_value == pytest.approx(ref3.objective_value, rel=1e-9)


# ------------------------------------------------------------------------------------- routes
ROUTED = Topology(
    (Node("mobile", 1e9, source=True), Node("edge", 1e10), Node("cloud", 1e12)),
    (Link("mobile", "edge", ota=True, n_tx=2, sample_rate_hz=1e6), Link("edge", "cloud", bytes_per_s=1e7)),
)


def test_multi_hop_transfer_goes_hop_by_hop_through_the_ota_hop(traced):
    """mobile -> cloud has no direct link: the plan charges mobile-edge (OTA) + edge-cloud, execution sends both hops."""
    model, prof, gm = traced
    problem = Problem(prof, ROUTED)
    a = np.array([2 if l.name != "conv" else 0 for l in prof.layers])  # conv on mobile, the rest on cloud
    plan = Plan.from_assignment(problem, a, "fixed", False)
    routes = {(t.layer, t.src, t.dst): t.route for t in plan.transfers}
    assert routes == {("input", "mobile", "cloud"): ("mobile", "edge", "cloud"),
                      ("conv", "mobile", "cloud"): ("mobile", "edge", "cloud")}
    conv_bytes = prof.layers[prof.index("conv")].out_bytes
    want = ROUTED.links[0].transfer_s(conv_bytes) + ROUTED.links[1].transfer_s(conv_bytes)
    assert next(t.time_s for t in plan.transfers if t.layer == "conv") == pytest.approx(want)
    ota_calls, noisy = [], lambda t, s, d: ota_calls.append((s, d)) or t + 1.0  # visible change per OTA hop
    sm = split_model(gm, plan, ROUTED, topology_links(ROUTED, noisy))
    x = torch.randn(1, 2, 4, 4)
    with torch.no_grad():
        out, ref = sm(x), model(x)
    assert sorted(sm.hops) == sorted([("input", "mobile", "edge"), ("input", "edge", "cloud"),
                                      ("conv", "mobile", "edge"), ("conv", "edge", "cloud")])
    assert ota_calls == [("mobile", "edge")] * 2
    assert not torch.equal(out, ref)  # the OTA hop was applied, not skipped
    with pytest.raises(LinkError, match="over the air but no ota_link"):
        split_model(gm, plan, ROUTED, topology_links(ROUTED))(x)
    # a plan without routes (older JSON) cannot cross a non-adjacent pair silently
    d = plan.to_dict()
    for t in d["transfers"]:
        del t["route"]
    with pytest.raises(LinkError, match="no direct link mobile-cloud"):
        split_model(gm, Plan.from_dict(d), ROUTED, topology_links(ROUTED, noisy))(x)


def test_unknown_names_raise_placement_error_listing_the_valid_ones(traced):
    _, prof, _ = traced
    with pytest.raises(PlacementError, match=r"no layer named 'nope'.*'conv'"):
        Problem(prof, TWO, pins={"nope": "a"})
    with pytest.raises(PlacementError, match=r"no node named 'mars'.*\['a', 'b'\]"):
        Problem(prof, TWO, pins={"conv": "mars"})
