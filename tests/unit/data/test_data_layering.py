"""hil.data is below training: placement and BAIM read digits without importing hil.train."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hil.data import digits_arrays, load_digits

HIL = Path(__file__).resolve().parents[3] / "hil"


def _imports(py: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(py.read_text(), str(py))):
        if isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module)
    return mods


@pytest.mark.parametrize("package", ["split", "baim"])
def test_placement_and_baim_do_not_import_training(package):
    files = sorted((HIL / package).rglob("*.py"))
    assert files
    bad = {f"{f.relative_to(HIL.parent)}: {m}" for f in files for m in _imports(f)
           if m == "hil.train" or m.startswith("hil.train.")}
    assert not bad, sorted(bad)


def test_digits_arrays_need_no_torch():
    code = ("import sys\n"
            "from hil.data import digits_arrays\n"
            "x, y = digits_arrays(); print(x.shape, x.dtype, y.shape, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(1797, 64) float32 (1797,) False"


def test_load_digits_is_the_standardised_digits_arrays():
    x, y = digits_arrays()
    d = load_digits(test_fraction=0.2, seed=3)
    idx = np.random.default_rng(3).permutation(len(x))
    te, tr = idx[:359], idx[359:]
    assert d.y_train.numpy().tolist() == y[tr].tolist() and d.y_test.numpy().tolist() == y[te].tolist()
    xtr = x[tr].reshape(-1, 1, 8, 8)
    expect = (xtr - xtr.mean(axis=(0, 2, 3), keepdims=True)) / (xtr.std(axis=(0, 2, 3), keepdims=True) + 1e-6)
    np.testing.assert_allclose(d.x_train.numpy(), expect, rtol=0, atol=1e-6)
