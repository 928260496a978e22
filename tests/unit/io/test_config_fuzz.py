"""Every config loader gets arbitrary TOML/JSON and random bytes: a valid config or ConfigError, nothing else.

Bounded (max_examples 60-80, no deadline) so the file runs in seconds; hypothesis' database is off so
a run depends only on its seed (derandomize).
"""

from __future__ import annotations

import dataclasses
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.baim.config import BaimConfig
from hil.baim.config import load_baim_config as load_baim
from hil.bench import LinkConfig, NodeConfig, ServerConfig, bench_from_dict
from hil.capture.sweep import CaptureSweep
from hil.errors import ConfigError
from hil.phy.config import PhyConfig
from hil.split.nas import NASConfig, SearchSpace, NasTraining as NASTrain, load_nas_file
from hil.split.topology import Topology
from hil.train import config as train_config

SETTINGS = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

scalars = (st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True)
           | st.text(max_size=8))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                      max_leaves=12)


def table_of(*classes, extra: tuple[str, ...] = ()):
    """Dicts whose keys are mostly real field names of ``classes`` (so the checks behind the unknown-key
    check are reached), with values of any type."""
    names = sorted({f.name for c in classes for f in dataclasses.fields(c)} | set(extra))
    key = st.sampled_from(names) | st.text(max_size=6)
    return st.dictionaries(key, values, max_size=6)


def ok_or_config_error(load, arg):
    try:
        load(arg)
    except ConfigError:
        pass


@SETTINGS
@given(st.dictionaries(st.sampled_from(["data", "model", "ota", "train", "sweep", "x"]),
                       table_of(*train_config._SECTIONS.values()) | values, max_size=4))
def test_train_config(raw):
    ok_or_config_error(train_config.from_dict, raw)


@SETTINGS
@given(table_of(BaimConfig) | st.dictionaries(st.just("baim"), table_of(BaimConfig) | values))
def test_baim_config(tmp_path_factory, raw):
    p = tmp_path_factory.mktemp("baim") / "b.json"
    p.write_text(json.dumps(raw))
    ok_or_config_error(load_baim, p)


@SETTINGS
@given(table_of(CaptureSweep, extra=("kind",)))
def test_capture_sweep(raw):
    ok_or_config_error(CaptureSweep.from_dict, raw)


@SETTINGS
@given(table_of(PhyConfig))
def test_phy_config(raw):
    ok_or_config_error(PhyConfig.from_dict, raw)


@SETTINGS
@given(table_of(NASConfig, SearchSpace, NASTrain, extra=("topology", "out_dir", "reference", "space", "train")))
def test_nas_config(tmp_path_factory, raw):
    ok_or_config_error(NASConfig.from_dict, raw)
    p = tmp_path_factory.mktemp("nas") / "n.json"
    p.write_text(json.dumps({"nas": raw}))
    ok_or_config_error(load_nas_file, p)


nodes = st.lists(table_of(NodeConfig, extra=("flops_per_s", "gflops", "source", "mem_gb", "id")), max_size=3)
links = st.lists(table_of(LinkConfig, extra=("tx", "rx", "bytes_per_s", "snr_db", "ota", "n_tx", "from")),
                 max_size=3)
topologies = st.fixed_dictionaries({"nodes": nodes | values}, optional={"links": links | values,
                                                                       "server": table_of(ServerConfig) | values,
                                                                       "bench": values})


@SETTINGS
@given(topologies | values)
def test_placement_topology(tmp_path_factory, raw):
    ok_or_config_error(Topology.from_dict, raw)
    p = tmp_path_factory.mktemp("topo") / "t.json"
    p.write_text(json.dumps(raw))
    ok_or_config_error(Topology.load, p)


@SETTINGS
@given(topologies | values)
def test_bench_topology(raw):
    ok_or_config_error(bench_from_dict, raw)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200), st.sampled_from([".toml", ".json"]))
def test_random_bytes_in_every_loader(tmp_path_factory, data, suffix):
    p = tmp_path_factory.mktemp("bytes") / f"c{suffix}"
    p.write_bytes(data)
    for load in (train_config.load_config, load_baim, CaptureSweep.from_file, load_nas_file, Topology.load,
                 __import__("hil.bench", fromlist=["load_bench"]).load_bench):
        ok_or_config_error(load, p)
