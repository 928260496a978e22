"""JMSNAS: search space, cache, Pareto front, the comparison, and a tiny end-to-end run."""

import math

import numpy as np
import pytest

from hil.split.nas import (
    Arch, Candidate, Evaluator, NASConfig, SearchSpace, NasTraining, compare_fronts, evolve, pareto_front,
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
    ev = Evaluator(NASConfig(cache_dir=str(tmp_path)), TOPO, trainer=lambda a, s, c, split: 0.1)
    narrow = ev.evaluate(Arch((4, 16, 16), (1, 1, 1), (3, 3, 3)))
    wide = ev.evaluate(Arch((32, 16, 16), (1, 1, 1), (3, 3, 3)))
    assert narrow.plan.assignment["features_0"] == "device"
    assert narrow.plan.comm_s < wide.plan.comm_s
    assert narrow.latency_s < wide.latency_s


def test_training_error_is_cached_on_disk(tmp_path):
    """A 1-epoch, 150-sample training (seeded) gives an error k/100; a second evaluator reads the cache."""
    cfg = NASConfig(train=NasTraining(epochs=1, n_train=150, n_test=100), cache_dir=str(tmp_path))
    arch = Arch((4, 4, 4), (1, 1, 1), (3, 3, 3))
    e1 = Evaluator(cfg, TOPO)
    err = e1.error(arch)
    assert 0.0 <= err <= 1.0 and round(err * 100, 9).is_integer() and e1.trained == 1  # k / n_test
    e2 = Evaluator(cfg, TOPO, trainer=lambda *a: pytest.fail("should come from the cache"))
    assert e2.error(arch) == err and e2.trained == 0 and e2.cache_hits == 1
    assert train_error(arch, cfg.space, cfg.train) == err  # deterministic per architecture
    assert train_error(arch, cfg.space, cfg.train, "val") == err  # the search's error is the validation error


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


def test_evolve_beats_random_search_of_equal_budget():
    """Over 30 seeds, evolution (population 6, 8 generations: 54 scorings) finds a better best score
    than 54 uniform random architectures. The score rewards width 16 everywhere, depth 1, kernel 3,
    and penalises a first block wider than the second (optimum 18). Measured (2026-12-04): mean best
    20.4 (evolution) vs 23.5 (random), evolution strictly better on 22 of 30 seeds; an evolution
    that keeps the worse parent and the worst survivors scores 28.3. Thresholds: a mean at least
    2 below random's and strictly better on at least 60 % of the seeds (seeds 0-29; random search
    seeded [seed, 99])."""
    space = SearchSpace()

    def score(a):
        return (sum(abs(w - 16) for w in a.widths) / 4 + 3 * sum(a.depths) + sum(a.kernels)
                + (5 if a.widths[0] > a.widths[1] else 0))

    evo, rand = [], []
    for seed in range(30):
        seen = evolve(space, score, np.random.default_rng(seed), population=6, generations=8)
        assert len(seen) == 6 * 9
        r = np.random.default_rng([seed, 99])
        evo.append(min(map(score, seen)))
        rand.append(min(score(space.sample(r)) for _ in range(len(seen))))
    evo, rand = np.array(evo), np.array(rand)
    assert evo.mean() <= rand.mean() - 2.0, (evo.mean(), rand.mean())
    assert np.mean(evo < rand) >= 0.6, (evo, rand)


def test_run_jmsnas_end_to_end_with_a_synthetic_error(tmp_path):
    """Error model: wider/deeper is more accurate; JMSNAS must find narrow first blocks at low latency,
    select on validation error and touch the test split once, at the end."""
    calls = []

    def fake_error(arch, space, cfg, split):
        calls.append((arch, split))
        cap = sum(w * d * k for w, d, k in zip(arch.widths, arch.depths, arch.kernels))
        return 0.02 + 0.5 / (1 + cap / 20) + (0.01 if split == "test" else 0.0)

    cfg = NASConfig(population=4, generations=2, betas=(0.05, 0.5), cache_dir=str(tmp_path))
    res = run_jmsnas(cfg, TOPO, Evaluator(cfg, TOPO, trainer=fake_error))
    assert res.front and res.search_first_front
    assert res.chosen in res.jmsnas
    lat = [c.latency_s for c in res.front]
    err = [c.error for c in res.front]
    assert lat == sorted(lat) and all(e1 > e2 for e1, e2 in zip(err, err[1:]))
    # the OTA cut after the pinned first block is the latency lever: the fastest front member has a
    # narrower first block than the slowest, and narrower than the 32-wide reference
    assert res.front[0].arch.widths[0] < res.front[-1].arch.widths[0] or res.front[0].arch.widths[0] == 4
    assert res.front[0].arch.widths[0] < cfg.reference.widths[0]
    assert res.front[0].latency_s < res.fixed.latency_s
    # the chosen model is the best of everything evaluated by alpha * val error + beta * latency / ref
    obj = lambda c: cfg.alpha * c.error + cfg.beta * c.latency_s / res.fixed.latency_s  # noqa: E731
    assert obj(res.chosen) == min(map(obj, res.jmsnas)) and obj(res.chosen) <= obj(res.fixed)
    # validation for every decision; the test split once, after all of them, for chosen and fixed only
    splits = [sp for _, sp in calls]
    assert splits[-2:] == ["test", "test"] and "test" not in splits[:-2]
    assert [a for a, sp in calls if sp == "test"] == [res.chosen.arch, res.fixed.arch]
    assert res.test_error == {"chosen": pytest.approx(res.chosen.error + 0.01),
                              "fixed": pytest.approx(res.fixed.error + 0.01)}
    d = res.to_dict()
    assert set(d) >= {"front", "chosen", "fixed_model_best_split", "comparison", "test_error"}
    assert d["error_split"] == "validation"
    assert res.fixed.arch == cfg.reference


def test_validation_and_test_digits_are_disjoint():
    from hil.split.nas import _digits

    cfg = NasTraining(n_test=500, n_val=300)
    xtr, _, xva, _ = _digits(cfg, "val")
    _, _, xte, _ = _digits(cfg, "test")
    assert (len(xtr), len(xva), len(xte)) == (1797 - 800, 300, 500)
    rows = lambda x: {r.tobytes() for r in x.reshape(len(x), -1)}  # noqa: E731
    assert not rows(xva) & rows(xte) and not rows(xtr) & rows(xte)
    with pytest.raises(ValueError, match="split"):
        _digits(cfg, "train")
    with pytest.raises(ValueError, match="n_val"):
        NasTraining(n_val=0)
