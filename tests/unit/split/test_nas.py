"""JMSNAS: search space, cache, Pareto front, the comparison, and a tiny end-to-end run."""

import math

import numpy as np
import pytest

from hil.split.nas import (
    Arch, Candidate, Evaluator, NASConfig, SearchSpace, TrainConfig, compare_fronts, evolve, pareto_front,
    run_jmsnas, train_error,
)
from hil.split.plan import Plan
from hil.split.topology import Link, Node, Topology

TOPO = Topology((Node("device", 5e7, source=True), Node("edge", 5e9)),
                (Link("device", "edge", ota=True, n_tx=2, sample_rate_hz=1e5, overhead=0.25),))


def _cand(lat, err):
    plan = Plan({}, lat, lat, 0.0, 0.0, "latency", lat, "x", True)
    return Candidate(Arch((1,), (1,), (3,)), err, lat, 0.0, 0.0, plan)


def test_pareto_front_and_budget_comparison():
    pts = [_cand(1, 0.5), _cand(2, 0.3), _cand(2.5, 0.4), _cand(3, 0.1), _cand(4, 0.1)]
    front = pareto_front(pts)
    assert [(c.latency_s, c.error) for c in front] == [(1, 0.5), (2, 0.3), (3, 0.1)]
    worse = [_cand(1, 0.6), _cand(3.5, 0.2)]
    comp = compare_fronts(front, pareto_front(worse), n=5)
    assert comp["dominates"]
    assert comp["error_b"][0] == 0.6 and math.isinf(compare_fronts(worse, front, lo_q=0, hi_q=0, n=2)["error_a"][0]) is False
    assert not compare_fronts(pareto_front(worse), front, n=5)["dominates"]


def test_space_mutation_changes_exactly_one_gene():
    space = SearchSpace()
    rng = np.random.default_rng(0)
    a = space.sample(rng)
    for _ in range(50):
        b = space.mutate(a, rng)
        diff = sum(x != y for x, y in zip(a.widths + a.depths + a.kernels, b.widths + b.depths + b.kernels))
        assert diff == 1
        a = b
    assert space.size == 16**3


def test_wider_cut_costs_more_channel_uses(tmp_path):
    """Same model except the first block's width: the OTA transfer after the pinned stem grows with it."""
    ev = Evaluator(NASConfig(cache_dir=str(tmp_path)), TOPO, trainer=lambda a, s, c: 0.1)
    narrow = ev.evaluate(Arch((4, 16, 16), (1, 1, 1), (3, 3, 3)))
    wide = ev.evaluate(Arch((32, 16, 16), (1, 1, 1), (3, 3, 3)))
    assert narrow.plan.assignment["features_0"] == "device"
    assert narrow.plan.comm_s < wide.plan.comm_s
    assert narrow.latency_s < wide.latency_s


def test_training_error_is_cached_on_disk(tmp_path):
    """A 1-epoch, 150-sample training (seeded) gives an error k/100; a second evaluator reads the cache."""
    cfg = NASConfig(train=TrainConfig(epochs=1, n_train=150, n_test=100), cache_dir=str(tmp_path))
    arch = Arch((4, 4, 4), (1, 1, 1), (3, 3, 3))
    e1 = Evaluator(cfg, TOPO)
    err = e1.error(arch)
    assert 0.0 <= err <= 1.0 and round(err * 100, 9).is_integer() and e1.trained == 1  # k / n_test
    e2 = Evaluator(cfg, TOPO, trainer=lambda *a: pytest.fail("should come from the cache"))
    assert e2.error(arch) == err and e2.trained == 0 and e2.cache_hits == 1
    assert train_error(arch, cfg.space, cfg.train) == err  # deterministic per architecture


def test_corrupt_cache_entry_counts_as_a_training_not_a_hit(tmp_path):
    cfg = NASConfig(cache_dir=str(tmp_path))
    arch = Arch((4, 4, 4), (1, 1, 1), (3, 3, 3))
    ev = Evaluator(cfg, TOPO, trainer=lambda *a: 0.25)
    (tmp_path / f"{ev._train_key(arch)}.json").write_text("{not json")
    assert ev.error(arch) == 0.25 and ev.trained == 1 and ev.cache_hits == 0
    assert Evaluator(cfg, TOPO, trainer=lambda *a: pytest.fail("cached")).error(arch) == 0.25
    (tmp_path / f"{ev._train_key(arch)}.json").write_text('{"error": null}')
    ev2 = Evaluator(cfg, TOPO, trainer=lambda *a: 0.5)
    assert ev2.error(arch) == 0.5 and (ev2.trained, ev2.cache_hits) == (1, 0)


def test_evolve_improves_a_score():
    space = SearchSpace()
    rng = np.random.default_rng(1)
    score = lambda a: sum(a.widths) + 10 * sum(a.depths)  # noqa: E731
    seen = evolve(space, score, rng, population=6, generations=8)
    assert len(seen) == 6 * 9
    assert min(map(score, seen[-6:])) <= min(map(score, seen[:6]))


def test_run_jmsnas_end_to_end_with_a_synthetic_error(tmp_path):
    """Error model: wider/deeper is more accurate; JMSNAS must find narrow first blocks at low latency."""
    def fake_error(arch, space, cfg):
        cap = sum(w * d * k for w, d, k in zip(arch.widths, arch.depths, arch.kernels))
        return 0.02 + 0.5 / (1 + cap / 20)

    cfg = NASConfig(population=4, generations=2, betas=(0.05, 0.5), cache_dir=str(tmp_path))
    res = run_jmsnas(cfg, TOPO, Evaluator(cfg, TOPO, trainer=fake_error))
    assert res.front and res.search_first_front
    assert res.chosen in res.jmsnas
    lat = [c.latency_s for c in res.front]
    err = [c.error for c in res.front]
    assert lat == sorted(lat) and all(e1 > e2 for e1, e2 in zip(err, err[1:]))
    assert set(res.to_dict()) >= {"front", "chosen", "fixed_model_best_split", "comparison"}
    assert res.fixed.arch == cfg.reference
