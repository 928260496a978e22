"""``hil place`` through typer's runner: JSON output, report folder, infeasible exit code."""

import json
from importlib.resources import files

from typer.testing import CliRunner

from hil.cli import app

EX = files("hil.split.examples")


def test_place_profile_json(tmp_path):
    r = CliRunner().invoke(app, ["place", "--profile", str(EX / "vgg16.json"), "--topology", str(EX / "mobile_edge.json"),
                                 "--json", "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["plan"]["solver"] == "dp" and rep["plan"]["optimal"]
    assert all(v >= 1 - 1e-9 for v in rep["ratios"].values())
    for f in ("report.json", "report.md", "plan.png", "config.json", "profile.json", "topology.json"):
        assert (tmp_path / "run" / f).exists(), f


def test_place_infeasible_names_memory(tmp_path):
    topo = {"nodes": [{"name": "a", "flops_per_s": 1e9, "source": True, "mem_bytes": 1e6},
                      {"name": "b", "flops_per_s": 1e9, "mem_bytes": 1e6}],
            "links": [{"a": "a", "b": "b", "mbit_per_s": 10}]}
    (tmp_path / "t.json").write_text(json.dumps(topo))
    r = CliRunner().invoke(app, ["place", "-p", str(EX / "vgg16.json"), "-t", str(tmp_path / "t.json"),
                                 "--out", str(tmp_path / "run")])
    assert r.exit_code == 2
    text = " ".join(r.output.split())
    assert "binding constraint: memory" in text and "needs" in text, text


def test_place_needs_profile_or_model(tmp_path):
    r = CliRunner().invoke(app, ["place", "-t", str(EX / "mobile_edge.json")])
    assert r.exit_code != 0


def test_nas_tiny_run_writes_a_report(tmp_path):
    """Population 2, no generation, one beta, 1-epoch trainings on 100 samples: checks the plumbing."""
    topo = EX / "nas_topology.json"
    cfg = tmp_path / "nas.toml"
    cfg.write_text(f'''[nas]
topology = "{topo}"
population = 2
generations = 0
betas = [0.1]
cache_dir = "{tmp_path / 'cache'}"
[nas.train]
epochs = 1
n_train = 100
n_test = 100
[nas.reference]
widths = [4, 4, 4]
depths = [1, 1, 1]
kernels = [3, 3, 3]
''')
    r = CliRunner().invoke(app, ["nas", "--config", str(cfg), "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "run" / "report.json").read_text())
    assert rep["front"] and rep["chosen"]["plan"]["assignment"]
    assert rep["chosen"]["plan"]["assignment"]["features_0"] == "device"  # pinned stem
    for f in ("report.md", "pareto.png", "chosen_plan.png", "config.json"):
        assert (tmp_path / "run" / f).exists(), f
