import json
import math

import numpy as np
import pytest

from hil._io import atomic_write, atomic_write_json, json_safe, load_mapping
from hil.errors import ConfigError


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path):
    p = tmp_path / "report.json"
    atomic_write_json(p, {"a": 1})

    def boom(f):
        f.write(b"half")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(p, boom)
    assert json.loads(p.read_text()) == {"a": 1}
    assert sorted(x.name for x in tmp_path.iterdir()) == ["report.json"]  # no temporary left


def test_json_safe_numpy_and_nonfinite():
    out = json_safe({"x": np.float32(1.5), "n": np.int64(3), "a": np.arange(2), "bad": math.inf, 1: np.nan})
    assert out == {"x": 1.5, "n": 3, "a": [0, 1], "bad": None, "1": None}
    json.dumps(out, allow_nan=False)


def test_load_mapping_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_mapping(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("a = [")
    with pytest.raises(ConfigError, match="bad.toml.*not valid TOML"):
        load_mapping(bad)
    good = tmp_path / "g.json"
    good.write_text('{"k": 2}')
    assert load_mapping(good) == {"k": 2}
