"""Every script in benchmarks/ answers ``--help`` (argparse) without running or writing anything.

Tracked results (benchmarks/results/*, docs/*.json, docs/img/*) are only written when asked with
``--out``/``--json``/``--copy-plots``; ``--help`` must leave every one of them untouched.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py"))
TRACKED = [*(ROOT / "benchmarks" / "results").glob("*"), *(ROOT / "docs").glob("*.json"),
           *(ROOT / "docs" / "img").glob("*")]


def _digest() -> dict:
    return {str(p): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) for p in TRACKED if p.is_file()}


def test_there_are_benchmarks():
    assert len(SCRIPTS) >= 10 and TRACKED


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_help_parses_and_writes_nothing(script: Path):
    before = _digest()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                       cwd=ROOT, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.lstrip().startswith("usage:"), r.stdout[:500]
    assert _digest() == before, "--help changed tracked results"
