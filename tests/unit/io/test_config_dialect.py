"""The config dialect (hil._io.from_section), the loaders that use it, and the shipped configs."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from typer.testing import CliRunner

from hil._io import from_section
from hil.errors import CheckpointError, ConfigError

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Inner:
    k: int = field(default=3, metadata={"ge": 1})


@dataclass(frozen=True)
class Schema:
    lr: float = field(default=0.1, metadata={"gt": 0.0})
    n: int = field(default=1, metadata={"ge": 1, "le": 8})
    kind: Literal["a", "b"] = "a"
    name: str = field(default="x", metadata={"choices": ("x", "y")})
    widths: tuple[int, ...] = field(default=(1,), metadata={"ge": 1, "min_items": 1})
    limit: int | None = None
    level: float = field(default=0.0, metadata={"finite": False})
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self):
        if self.kind == "b" and self.n > 4:
            raise ValueError("kind 'b' needs n <= 4")


@pytest.mark.parametrize("raw, match", [
    ({"lrr": 1}, r"^\[train\]\.lrr: unknown key; valid: lr, n, kind, name, widths, limit, level, inner$"),
    ({"lr": -1}, r"^\[train\]\.lr: out of range \(got -1\); valid: > 0\.0$"),
    ({"lr": math.nan}, r"^\[train\]\.lr: must be finite \(not NaN or Inf\) \(got nan\)"),
    ({"lr": "ten"}, r"^\[train\]\.lr: must be a number \(got 'ten'\)"),
    ({"n": True}, r"^\[train\]\.n: must be an integer \(got True\)"),
    ({"n": 2.0}, r"^\[train\]\.n: must be an integer \(got 2\.0\)"),
    ({"n": 9}, r"^\[train\]\.n: out of range \(got 9\); valid: >= 1 and <= 8$"),
    ({"kind": "c"}, r"^\[train\]\.kind: not an allowed value \(got 'c'\); valid: 'a', 'b'$"),
    ({"name": "z"}, r"^\[train\]\.name: not an allowed value \(got 'z'\); valid: one of 'x', 'y'$"),
    ({"widths": []}, r"^\[train\]\.widths: needs at least 1 item"),
    ({"widths": [2, 0]}, r"^\[train\]\.widths\[1\]: out of range \(got 0\); valid: >= 1$"),
    ({"widths": 2}, r"^\[train\]\.widths: must be a list"),
    ({"limit": "x"}, r"^\[train\]\.limit: must be an integer \(got 'x'\)"),
    ({"inner": {"k": 0}}, r"^\[train\]\.inner\.k: out of range \(got 0\)"),
    ({"inner": {"q": 0}}, r"^\[train\]\.inner\.q: unknown key; valid: k$"),
    ({"inner": 3}, r"^\[train\]\.inner: must be a table \(got 3\)"),
    ({"kind": "b", "n": 5}, r"^\[train\]: kind 'b' needs n <= 4$"),
])
def test_from_section_names_section_key_value_and_range(raw, match):
    with pytest.raises(ConfigError, match=match):
        from_section(Schema, raw, "train")


def test_from_section_converts_and_keeps_defaults():
    s = from_section(Schema, {"lr": 2, "widths": [3, 4], "limit": None, "level": math.inf}, "train")
    assert s == Schema(lr=2.0, widths=(3, 4), level=math.inf)
    assert isinstance(s.lr, float) and isinstance(s.widths, tuple)
    with pytest.raises(ConfigError, match=r"^\[\[nodes\]\] #2: must be a table"):
        from_section(Schema, [1], "[[nodes]] #2")


def test_cli_error_keeps_the_section_name(tmp_path):
    """rich markup would print '[train].lr' as '.lr'; the CLI escapes error text."""
    from hil.cli import app

    p = tmp_path / "bad.toml"
    p.write_text("[train]\nlr = -1\n")
    r = CliRunner().invoke(app, ["train", "--config", str(p), "--out", str(tmp_path / "run")])
    assert r.exit_code == 2
    assert "[train].lr: out of range (got -1)" in " ".join(r.output.split()), r.output


def test_placement_topology_rejects_unknown_keys(tmp_path):
    from hil.split.topology import Topology

    base = {"nodes": [{"name": "a", "flops_per_s": 1e9, "source": True}, {"name": "b", "gflops": 1}],
            "links": [{"a": "a", "b": "b", "mbit_per_s": 10}]}
    assert len(Topology.from_dict(base).links) == 1
    for raw, match in [
        ({**base, "nodes": [{**base["nodes"][0], "flop_per_s": 1}, base["nodes"][1]]},
         r"^\[\[nodes\]\] #0\.flop_per_s: unknown key; valid: name, id, flops_per_s"),
        ({**base, "links": [{**base["links"][0], "latency": 0.1}]}, r"^\[\[links\]\] #0\.latency: unknown key"),
        ({**base, "link": []}, r"^\[link\]: unknown section"),
        ({**base, "links": [{**base["links"][0], "mbit_per_s": "10"}]},
         r"^\[\[links\]\] #0\.mbit_per_s: must be a number \(got '10'\)"),
        ({**base, "nodes": [{**base["nodes"][0], "antennas": 0}, base["nodes"][1]]},
         r"^\[\[nodes\]\] #0\.antennas: out of range \(got 0\)"),  # a bench key, checked as the server does
        ({**base, "nodes": [{**base["nodes"][0], "flops_per_s": 0}, base["nodes"][1]]},
         r"^\[\[nodes\]\] #0\.flops_per_s: out of range"),
    ]:
        with pytest.raises(ConfigError, match=match):
            Topology.from_dict(raw)


def test_nas_file_holds_config_topology_and_out_dir(tmp_path):
    from hil.split.nas import load_nas_file

    ex = files("hil.split.examples")
    (tmp_path / "t.json").write_text((ex / "nas_topology.json").read_text())
    p = tmp_path / "nas.toml"
    p.write_text('[nas]\ntopology = "t.json"\nout_dir = "runs/x"\npopulation = 4\n[nas.train]\nepochs = 1\n')
    f = load_nas_file(p)
    assert f.config.population == 4 and f.config.train.epochs == 1 and f.out_dir == "runs/x"
    assert f.topology_path == str(tmp_path / "t.json") and f.topology.names
    for text, match in [
        ("[nas]\npopulaton = 4\n", r"^\[nas\]\.populaton: unknown key; valid: space, train, population"),
        ("[nas.train]\nlr = -1\n", r"^\[nas\]\.train\.lr: out of range \(got -1\)"),
        ("[nas.reference]\nwidths = [8]\ndepths = [1]\nkernels = [3]\n", r"reference has 1 blocks"),
        ("[nas]\ntopology = 3\n", r"^\[nas\]\.topology: must be a string"),
        ("[nas]\n[other]\n", r"\[other\]: unknown section; valid: nas"),
    ]:
        p.write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_nas_file(p)


def test_baim_config_errors_name_the_key(tmp_path):
    from hil.baim.config import load_baim_config

    p = tmp_path / "b.toml"
    for text, match in [("[baim]\nlr = -1\n", r"\[baim\]\.lr: out of range \(got -1\)"),
                        ("[baim]\nwidths = [8, 0]\n", r"\[baim\]\.widths\[1\]: out of range"),
                        ("[baim]\nn_tasks = 3\n", r"\[baim\]: n_tasks=3 must divide"),
                        ("[baim]\n[x]\n", r"\[x\]: unknown section; valid: baim")]:
        p.write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_baim_config(p)


def test_truncated_training_checkpoint_names_the_file(tmp_path):
    import torch

    from hil.train.loop import load_checkpoint

    p = tmp_path / "epoch.pt"
    torch.save({"w": torch.arange(1000.0)}, p)
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=r"checkpoint '.*epoch\.pt' is unreadable.*delete it"):
        load_checkpoint(p)
    assert load_checkpoint(tmp_path / "none.pt") is None


def test_truncated_baim_checkpoint_names_the_file(tmp_path):
    import torch

    from hil.baim.experiment import CHECKPOINT, completed_strategies

    torch.save({"meta": json.dumps({"done": {"freeze": {}}, "config": {}}), "w": torch.arange(1000.0)},
               tmp_path / CHECKPOINT)
    assert completed_strategies(tmp_path) == ["freeze"]
    (tmp_path / CHECKPOINT).write_bytes((tmp_path / CHECKPOINT).read_bytes()[:300])
    with pytest.raises(CheckpointError, match=r"BAIM checkpoint '.*checkpoint\.pt' is unreadable.*--no-resume"):
        completed_strategies(tmp_path)


# ---------------------------------------------------------------- every shipped config loads

def _shipped(folder: str, pattern: str) -> list[Path]:
    return sorted((ROOT / folder).glob(pattern))


@pytest.mark.parametrize("path", _shipped("hil/train/configs", "*.toml"), ids=lambda p: p.name)
def test_shipped_training_configs_load(path):
    from hil.train.config import load_config

    assert load_config(path) == load_config(path.stem)  # the packaged name gives the same config


@pytest.mark.parametrize("path", _shipped("hil/baim/configs", "*.toml"), ids=lambda p: p.name)
def test_shipped_baim_configs_load(path):
    from hil.baim.config import load_baim_config
    from hil.baim.maintain import load_maintain_config

    cfg = load_maintain_config(path)[0] if path.name == "maintain.toml" else load_baim_config(path)
    assert cfg.n_nodes >= 1


def _check_channels(links, antennas):
    """The channel of every link builds with hil.channel (e.g. ``model = ...`` is not a channel key)."""
    from hil.channel import build_reciprocal_link

    for a, b, spec in links:
        build_reciprocal_link({"n_a": antennas[a], "n_b": antennas[b], **spec}, np.random.default_rng(0))


@pytest.mark.parametrize("path", _shipped("sim_fallback/configs", "*.toml"), ids=lambda p: p.name)
def test_shipped_channel_server_topologies_load(path):
    from hil.bench import load_bench

    bench = load_bench(path)
    _check_channels([(ln.a, ln.b, dict(ln.channel)) for ln in bench.links], {n.name: n.antennas for n in bench.nodes})


@pytest.mark.parametrize("path", [p for p in _shipped("hil/split/examples", "*") if p.suffix in (".json", ".toml")],
                         ids=lambda p: p.name)
def test_shipped_placement_examples_load(path):
    from hil._io import load_mapping
    from hil.split.nas import load_nas_file
    from hil.split.profile import Profile
    from hil.split.topology import Topology

    raw = load_mapping(path)
    if path.name == "nas.toml":
        assert load_nas_file(path).topology.names
    elif "layers" in raw:
        assert len(Profile.from_dict(raw)) > 0
    else:
        topo = Topology.load(path)
        assert topo.names
        antennas = {n.get("name"): n.get("antennas", 1) for n in raw.get("nodes", [])}
        _check_channels([(ln.get("a", ln.get("tx")), ln.get("b", ln.get("rx")), ln["channel"])
                         for ln in raw.get("links", []) if "channel" in ln], antennas)
