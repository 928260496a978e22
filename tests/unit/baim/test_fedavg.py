"""FedAvg baseline: rounds of an equal budget, validation patience, optimizer state kept across rounds."""

import pytest
import torch

import hil.baim.fedavg as fedavg
from hil.baim.fedavg import rounds_for_budget, run_fedavg
from hil.baim.learners import LearnerSpec
from hil.baim.wire import TrafficMeter, pack_state

SPEC = LearnerSpec((8,), 2)


def _nodes():
    g = torch.Generator().manual_seed(0)
    return [torch.rand(20, 64, generator=g), torch.rand(10, 64, generator=g)]


def test_rounds_for_budget():
    assert rounds_for_budget(100, 30) == 4 and rounds_for_budget(90, 30) == 3 and rounds_for_budget(0, 30) == 1
    with pytest.raises(ValueError, match="samples_per_round"):
        rounds_for_budget(10, 0)


def test_each_client_keeps_its_adam_state_across_rounds(monkeypatch):
    seen = {}
    real = fedavg.train_vae

    def spy(model, x, epochs, batch_size, lr, gen, flops=None, opt=None):
        assert opt is not None
        seen.setdefault(len(x), []).append(opt)
        return real(model, x, epochs, batch_size, lr, gen, flops, opt=opt)

    monkeypatch.setattr(fedavg, "train_vae", spy)
    res = run_fedavg(SPEC, _nodes(), 3, 1, 10, 1e-3, torch.Generator().manual_seed(1), TrafficMeter())
    assert res.rounds == 3 and res.samples_per_round == 30
    for n, opts in seen.items():  # one optimizer object per client, its step count running on
        assert len(opts) == 3 and all(o is opts[0] for o in opts)
        steps = {float(st["step"]) for st in opts[0].state.values()}
        assert steps == {3.0 * -(-n // 10)}, (n, steps)  # 3 rounds x ceil(n / batch) steps


def test_patience_budget_and_cap_decide_the_rounds():

    def run(rounds, patience, max_rounds):
        it = iter([10, 9, 8, 8.5, 8.6, 8.7, 8.8, 8.9, 9.0, 9.1, 9.2])
        meter = TrafficMeter()
        r = run_fedavg(SPEC, _nodes(), rounds, 1, 10, 1e-3, torch.Generator().manual_seed(1), meter,
                       validate=lambda m: next(it), patience=patience, max_rounds=max_rounds)
        blob = len(pack_state(r.model.state_dict()))
        assert r.upload_bytes_per_round == [k * 2 * blob for k in range(r.rounds + 1)]  # 2 nodes a round
        assert meter.total_bytes("up") == r.rounds * 2 * blob
        return r

    r = run(1, 3, 50)
    assert (r.rounds, r.best_round, r.stopped_by) == (5, 2, "patience")
    assert r.val_per_round == [10, 9, 8, 8.5, 8.6, 8.7]
    r = run(8, 3, 50)  # the budget is larger than the patience stop
    assert (r.rounds, r.stopped_by) == (8, "budget")
    r = run(1, 3, 4)  # the cap
    assert (r.rounds, r.stopped_by) == (4, "max_rounds")
    with pytest.raises(ValueError, match="patience"):
        run_fedavg(SPEC, _nodes(), 1, 1, 10, 1e-3, torch.Generator(), TrafficMeter(), patience=-1)
