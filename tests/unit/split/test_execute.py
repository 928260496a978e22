"""Executing a plan: the split model equals the unsplit one over ideal links; OTA links carry K channel uses."""

import numpy as np
import pytest
import torch

from hil.errors import LinkError
from hil.split.execute import OTAActivationLink, build_stages, split_model, topology_links
from hil.split.plan import Plan, Problem
from hil.split.solvers import solve
from hil.split.topology import Link, Node, Topology
from hil.split.trace import profile_model
from hil.split.zoo import DigitsCNN, ResNet18

TOPO3 = Topology(
    (Node("mobile", 1e10, source=True), Node("edge", 2e11), Node("cloud", 1e12)),
    (Link("mobile", "edge", ota=True, n_tx=2, sample_rate_hz=1e6), Link("edge", "cloud", bytes_per_s=1e6, latency_s=0.01)),
)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    model = ResNet18(num_classes=10).eval()
    prof, gm = profile_model(model, (1, 3, 32, 32), name="resnet18")
    return model, prof, gm


@pytest.fixture(scope="module")
def resnet_plan(resnet):
    return solve(Problem(resnet[1], TOPO3))


def _sorted(transfers):
    return sorted(transfers)


def test_split_equals_unsplit_on_random_multi_split_plans(resnet):
    """Seeds 0..2: random assignments over 3 nodes give dozens of stages; outputs are bit-identical."""
    model, prof, gm = resnet
    problem = Problem(prof, TOPO3)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x)
    for seed in range(3):
        a = np.random.default_rng(seed).integers(0, 3, len(prof))
        plan = Plan.from_assignment(problem, a, "random", False)
        sm = split_model(gm, plan, TOPO3)
        assert len(sm.stages) > 10
        with torch.no_grad():
            out = sm(x)
        assert torch.equal(out, ref)
        # what crossed = what the plan charged for (value, from, to), bytes of a batch of 2
        assert _sorted((v, s, d) for v, s, d, _ in sm.transfers) == _sorted((t.layer, t.src, t.dst) for t in plan.transfers)
        for (v, s, d, nb) in sm.transfers:
            want = prof.input_bytes if v == "input" else prof.layers[prof.index(v)].out_bytes
            assert nb == 2 * want


def test_optimal_plan_stages_and_gradients_flow(resnet, resnet_plan):
    model, prof, gm = resnet
    plan = resnet_plan
    stages = build_stages(gm, plan)
    assert [s.node for s in stages] == [plan.assignment[s.layers[0]] for s in stages]
    assert sum(len(s.layers) for s in stages) == len(prof)
    sm = split_model(gm, plan, TOPO3)
    x = torch.randn(2, 3, 32, 32)
    sm(x).sum().backward()
    assert model.fc.weight.grad is not None and torch.isfinite(model.fc.weight.grad).all()


def test_ota_link_through_hil_ota_counts_channel_uses_and_adds_noise():
    """Seed 0: identity channel without noise recovers the activations (atol 1e-5); at 5 dB SNR it does not."""
    from hil.ota import IdealTransport, OTALink

    torch.manual_seed(0)
    model = DigitsCNN((8, 16, 16), (1, 1, 1), (3, 3, 3)).eval()
    prof, gm = profile_model(model, (1, 1, 8, 8))
    topo = Topology((Node("device", 1e7, source=True), Node("edge", 1e10)),
                    (Link("device", "edge", ota=True, n_tx=2, sample_rate_hz=1e5),))
    plan = solve(Problem(prof, topo, pins={prof.layers[0].name: "device"}))
    assert plan.transfers and plan.transfers[0].src == "device"
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(x)
    rng = np.random.default_rng(0)
    clean = OTAActivationLink(OTALink(IdealTransport(2, 2, None, rng, channel=np.eye(2)), "estimated"))
    with torch.no_grad():
        out = split_model(gm, plan, topo, topology_links(topo, clean))(x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert clean.channel_uses == [topo.links[0].channel_uses(t.nbytes) for t in plan.transfers]
    noisy = OTAActivationLink(OTALink(IdealTransport(2, 2, 5.0, rng), "estimated"))
    with torch.no_grad():
        out = split_model(gm, plan, topo, topology_links(topo, noisy))(x)
    assert (out - ref).abs().max() > 1e-2
    with pytest.raises(LinkError, match="over the air but no ota_link"):
        split_model(gm, plan, topo, topology_links(topo))(x)


def test_pluggable_link_sees_every_crossing(resnet, resnet_plan):
    _, prof, gm = resnet
    plan = resnet_plan
    seen = []

    def link(t, src, dst):
        seen.append((src, dst))
        return t

    split_model(gm, plan, TOPO3, link)(torch.randn(1, 3, 32, 32))
    assert seen == [(t.src, t.dst) for t in sorted(plan.transfers, key=lambda t: -1 if t.layer == "input" else prof.index(t.layer))]
