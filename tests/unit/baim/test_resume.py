"""`hil baim` resumes after the last completed cloud strategy ([Note: BAIM resume]); Ctrl-C exits 130.

Quick config, seed of the packaged config. The run is interrupted (KeyboardInterrupt from the progress
hook, as Ctrl-C would) when the second strategy starts; the resumed run must skip the first strategy and
produce the same report numbers as an uninterrupted run (same seed, same machine: bit-for-bit here).
"""

import json

import pytest
from typer.testing import CliRunner

import hil.baim.experiment as experiment
from hil.baim.config import QUICK_OVERRIDES, load_baim_config
from hil.cli import app


def _interrupt_at(strategy: str, seen: list[str]):
    def progress(msg: str) -> None:
        seen.append(msg)
        if msg == f"cloud strategy {strategy}":
            raise KeyboardInterrupt
    return progress


# the quick config cut further (three runs here): two strategies, 2 FedAvg rounds, fewer edge epochs
SMALL = {**QUICK_OVERRIDES, "edge_epochs": 5, "fedavg_rounds": 2, "classifier_epochs": 3}


def test_interrupted_run_resumes_after_the_completed_strategy(tmp_path):
    cfg = load_baim_config(None, **SMALL)
    cfg = load_baim_config(None, **SMALL, strategies=tuple(cfg.strategies[:2]))
    first, second = cfg.strategies[0], cfg.strategies[1]
    out = tmp_path / "run"
    seen: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        experiment.run_baim(cfg, out, progress=_interrupt_at(second, seen))
    assert experiment.completed_strategies(out) == [first]
    assert (out / f"big_{first}.pt").exists() and not (out / "report.json").exists()

    seen2: list[str] = []
    resumed = experiment.run_baim(cfg, out, progress=seen2.append)
    assert f"cloud strategy {first}" not in seen2 and f"cloud strategy {second}" in seen2
    assert any(m.startswith("resuming from") for m in seen2), seen2
    assert experiment.completed_strategies(out) == list(cfg.strategies)

    fresh = experiment.run_baim(cfg, tmp_path / "fresh", progress=lambda m: None, resume=False)
    drop = {"wall_time_s", "elapsed_s"}
    a = {k: v for k, v in resumed.items() if k not in drop}
    b = {k: v for k, v in fresh.items() if k not in drop}
    assert json.dumps(a["strategies"], sort_keys=True) == json.dumps(b["strategies"], sort_keys=True)
    assert json.dumps(a["must_show"], sort_keys=True) == json.dumps(b["must_show"], sort_keys=True)


def test_ctrl_c_exits_130_and_says_where_it_stopped(tmp_path, monkeypatch):
    real = experiment.run_baim
    cfg = load_baim_config(None, **QUICK_OVERRIDES)

    def interrupted(cfg_, out, progress=None, resume=True):
        return real(cfg_, out, progress=_interrupt_at(cfg.strategies[1], []), resume=resume)

    monkeypatch.setattr(experiment, "run_baim", interrupted)  # the CLI imports it at call time
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["baim", "--quick", "--out", str(out)])
    assert res.exit_code == 130, res.output
    assert "interrupted" in res.output and cfg.strategies[0] in res.output and "checkpoint.pt" in res.output
