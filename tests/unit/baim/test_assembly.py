"""Assembly: projections, the hierarchical gate, pruning, and exactness of deployed per-task models."""

import pytest
import torch

from hil.baim.assembly import BigModel, VaeSquad, assemble, candidate_projection_keys, parse_projection_key
from hil.baim.deploy import check_exact, deploy, pack_task_model, split_by_task, task_model_profile, unpack_task_model
from hil.baim.learners import LearnerSpec, VaeLearner
from hil.baim.wire import TrafficMeter

SPECS = [LearnerSpec((16, 8), 4), LearnerSpec((12,), 4), LearnerSpec((16, 12, 8), 4), LearnerSpec((8, 8), 4)]


def _trained_big(seed: int = 0, steps: int = 15) -> tuple[BigModel, list[list[int]]]:
    """A 2-task big model trained a few steps so projections and gates are non-trivial."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    big, members = assemble(SPECS, [None] * 4, (0, 1, 0, 1), 2, top_k=2, max_hop=1,
                            task_prior=torch.tensor([0.5, 0.5]))
    x = torch.rand(64, 64, generator=g)
    tasks = (x[:, :32].mean(1) > x[:, 32:].mean(1)).long()
    opt = torch.optim.Adam(big.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = big.loss(x, tasks, g, proj_penalty=1e-3)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return big.eval(), members


def test_projection_candidates_run_shallow_to_deep_within_hop():
    widths = [s.widths for s in SPECS]
    for h in (0, 1, 2):
        keys = candidate_projection_keys(widths, h)
        assert keys
        for k in keys:
            a, i, b, j = parse_projection_key(k)
            assert a != b and 0 <= j - i <= h and i < len(widths[a]) and j < len(widths[b])
        # completeness: count by brute force
        n = sum(1 for a in range(4) for b in range(4) if a != b for i in range(len(widths[a]))
                for j in range(len(widths[b])) if 0 <= j - i <= h)
        assert len(keys) == n


def test_zero_initialised_projections_leave_edge_learners_unchanged():
    torch.manual_seed(1)
    squad = VaeSquad(SPECS, top_k=2, max_hop=2)
    z = torch.randn(10, 4)
    x = torch.rand(10, 64)
    dec = squad.decode_all(z)
    mu, _ = squad.encode_all(x)
    for li, m in enumerate(squad.learners):
        assert torch.allclose(dec[li], m.decode(z), atol=1e-6, rtol=0)
        assert torch.allclose(mu[li], m.encode(x)[0], atol=1e-6, rtol=0)


def test_lsgate_keeps_exactly_top_k_weights_summing_to_one():
    torch.manual_seed(2)
    squad = VaeSquad(SPECS, top_k=2, max_hop=1)
    q = squad.gate(torch.rand(30, 64))
    assert torch.equal((q > 0).sum(1), torch.full((30,), 2))
    assert torch.allclose(q.sum(1), torch.ones(30), atol=1e-6)


def test_gates_receive_gradients_and_learn_with_top_k_masking():
    # With top-K masking the kept weights are a softmax over the K kept logits: the LSGate and the
    # component prior must still get finite, non-zero gradients, and a few Adam steps on the gates
    # alone must change them and lower the loss on the same batch (seeds 3 and 0; 16 images).
    torch.manual_seed(3)
    squad = VaeSquad(SPECS, top_k=2, max_hop=1)
    x = torch.rand(16, 64)
    loss = squad.loss(x, torch.Generator().manual_seed(0)).mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in squad.parameters() if p.grad is not None)
    gates = [squad.ls_gate.weight, squad.ls_gate.bias, squad.prior_logits]
    for p in gates:
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, p.shape
    before = [p.detach().clone() for p in gates]
    q0 = squad.gate(x).detach()
    opt = torch.optim.Adam(gates, lr=1e-2)
    for _ in range(20):
        opt.zero_grad()
        squad.loss(x, torch.Generator().manual_seed(0)).mean().backward()
        opt.step()
    after = squad.loss(x, torch.Generator().manual_seed(0)).mean()
    assert all(not torch.allclose(b, p) for b, p in zip(before, gates))
    assert float((squad.gate(x).detach() - q0).abs().max()) > 1e-3  # the routing moved
    assert after.item() < loss.item()


def test_pruning_keeps_the_most_useful_fraction_and_removes_parameters():
    big, _ = _trained_big()
    squad = big.squads[0]
    before = squad.dec_proj.usefulness()
    n_params_before = sum(p.numel() for p in squad.parameters())
    removed = squad.dec_proj.prune(0.5)
    kept = squad.dec_proj.keys_list()
    assert len(kept) == len(before) - len(removed) and len(kept) <= -(-len(before) // 2)
    assert min(before[k] for k in kept) >= max(before[k] for k in removed)
    assert sum(p.numel() for p in squad.parameters()) < n_params_before


def test_per_task_models_reproduce_the_big_model_exactly():
    """torch.equal, tolerance 0 (see [Note: exact dispatch]): same kernels on bit-identical inputs."""
    big, members = _trained_big()
    big.prune(0.5)
    x = torch.rand(200, 64, generator=torch.Generator().manual_seed(9))
    meter = TrafficMeter()
    nodes = deploy(big, members, meter)
    per_task = [nodes[m[0]] for m in members]
    checks = check_exact(big, per_task, x, torch.Generator().manual_seed(4))
    assert all(c.n_rows > 0 for c in checks), "both tasks must receive inputs for the test to mean something"
    assert all(c.reconstruct_equal and c.generate_equal for c in checks)
    assert meter.total_bytes("down") == sum(len(pack_task_model(big, t)) * len(m) for t, m in enumerate(members))
    # negative control: a per-task model that differs by one ulp-scale weight change is detected
    broken = unpack_task_model(pack_task_model(big, 0))
    with torch.no_grad():
        broken.learners[0].dec_head.bias.add_(1e-3)
    checks = check_exact(big, [broken, per_task[1]], x, torch.Generator().manual_seed(4))
    assert not checks[0].generate_equal and checks[1].generate_equal


def test_per_task_model_is_compact_and_profile_is_topologically_ordered():
    big, _ = _trained_big()
    models = split_by_task(big)
    n_big = sum(p.numel() for p in big.parameters())
    assert all(sum(p.numel() for p in m.parameters()) < n_big for m in models)
    prof = task_model_profile(models[0])
    seen = set()
    for layer in prof["layers"]:
        assert set(layer["deps"]) <= seen, layer
        seen.add(layer["name"])
    assert prof["input_bytes"] == 4 * 4


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="latent_dim"):
        VaeSquad([LearnerSpec((8,), 4), LearnerSpec((8,), 5)], 1, 1)
    with pytest.raises(ValueError, match="task"):
        pack_task_model(_trained_big(steps=0)[0], 5)
    with pytest.raises(ValueError, match="some task has no node"):
        assemble(SPECS[:1], [None], (0,), 2, 1, 1, torch.tensor([0.5, 0.5]))
    _ = VaeLearner(SPECS[0])


def test_one_learner_squad_loss_equals_the_learners_negative_elbo():
    """With one learner the gate weight is 1 and the component KL is 0: the squad is the edge VAE."""
    torch.manual_seed(5)
    squad = VaeSquad([SPECS[0]], top_k=1, max_hop=1)
    x = torch.rand(12, 64, generator=torch.Generator().manual_seed(1))
    a = squad.loss(x, torch.Generator().manual_seed(7))
    b = squad.learners[0].loss(x, torch.Generator().manual_seed(7))
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-6)
    assert float(squad.loss_terms(x, torch.Generator().manual_seed(7))["kl_comp"].detach().abs().max()) == 0.0
