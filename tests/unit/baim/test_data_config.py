"""Config loading and the non-IID digits split."""

import numpy as np
import pytest

from hil.baim.config import BaimConfig, QUICK_OVERRIDES, load_baim_config, packaged_config
from hil.baim.data import load_digits_split, node_class_plan
from hil.errors import ConfigError


def test_packaged_configs_load_and_match_defaults():
    assert load_baim_config(None) == BaimConfig()
    # `hil baim --quick` (defaults + QUICK_OVERRIDES) and the packaged quick.toml are the same run
    assert load_baim_config(packaged_config("quick")) == load_baim_config(None, **QUICK_OVERRIDES)


def test_unknown_and_bad_keys_raise_config_error(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[baim]\nn_nodez = 3\n")
    with pytest.raises(ConfigError, match="n_nodez"):
        load_baim_config(p)
    with pytest.raises(ConfigError, match="n_tasks"):
        BaimConfig(n_tasks=3)
    with pytest.raises(ConfigError, match="strategies"):
        BaimConfig(strategies=("finetune",))


def test_split_is_disjoint_and_non_iid():
    cfg = BaimConfig()
    d = load_digits_split(cfg, np.random.default_rng(0))
    n_total = len(d.x_test) + len(d.x_cloud) + sum(len(x) for x in d.x_nodes)
    assert n_total == 1797  # every digit used exactly once with the default plan
    classes, tasks = node_class_plan(cfg)
    for n, y in enumerate(d.y_nodes):
        assert set(y.tolist()) == set(classes[n])  # only its own classes: non-IID
        assert all(c // 5 == tasks[n] for c in classes[n])
    assert set(d.y_cloud.tolist()) == set(range(10)) and set(d.y_test.tolist()) == set(range(10))
    # rows are unique images: no image appears in two parts
    rows = {tuple(r) for r in d.x_test.numpy().round(4)} & {tuple(r) for r in d.x_nodes[0].numpy().round(4)}
    assert len(rows) <= 2  # digits contains a few duplicate images; shards are index-disjoint
