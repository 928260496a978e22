"""The package as users install it: a wheel in a fresh venv, away from the source tree.

Builds the wheel with ``pip wheel``, installs it into ``python -m venv --system-site-packages`` (torch,
pyadi-iio and the rest come from the system), and runs the ``hil`` entry point of that venv with
``PYTHONPATH`` unset from a temporary folder: ``hil emu pluto`` + ``hil pluto check`` must find the
shipped profile, ``hil demo --quick --transport loopback`` must write its report.

[Note: building from a copy]
The wheel is built from a copy of the tree (symbolic links kept, so ``hil/radio/profiles`` stays a
link that setuptools must follow). Building in place would leave ``build/`` and ``*.egg-info`` in the
checkout, and a stale ``build/lib`` can put files into the next wheel that the tree no longer has.
The venv has no pip of its own (``--without-pip``): ensurepip's bundled setuptools would shadow the
system one, and this pip installs into it with ``--python``. ``--no-index``: every dependency must
already be installed on the system, the install resolves nothing from a registry.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sim_fallback.pluto.serve import spawn_command

pytestmark = pytest.mark.sim

REPO = Path(__file__).resolve().parents[2]
_JUNK = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                               ".hypothesis", "runs", "tests")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"
    env["MPLBACKEND"] = "Agg"
    return env


def _run(cmd: list, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> tuple[Path, Path]:
    """(venv folder, a working folder outside the tree) with the freshly built wheel installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=_JUNK)
    r = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
              "-w", tmp / "dist", src], tmp, 120)
    assert r.returncode == 0, r.stderr
    (whl,) = (tmp / "dist").glob("hil_ota-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    shipped = {f"hil/radio/profiles/{q.name}" for q in (REPO / "firmware_configs").glob("*.toml")}
    assert shipped and shipped <= names, f"profiles missing from the wheel: {sorted(shipped - names)}"
    venv = tmp / "venv"
    r = _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], tmp, 60)
    assert r.returncode == 0, r.stderr
    r = _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", "--no-index",
              whl], tmp, 120)
    assert r.returncode == 0, r.stderr
    work = tmp / "work"
    work.mkdir()
    return venv, work


def test_the_installed_package_is_the_wheel(wheel_venv):
    venv, work = wheel_venv
    r = _run([venv / "bin" / "python", "-c",
              "import hil, sim_fallback, hil.radio.pluto as p; "
              "print(hil.__file__); print(sim_fallback.__file__); print(p.profile_names())"], work, 60)
    assert r.returncode == 0, r.stderr
    hil_file, sim_file, names = r.stdout.strip().splitlines()
    for f in (hil_file, sim_file):
        assert Path(f).resolve().is_relative_to(venv.resolve()), f"imported from {f}, not from the venv"
    assert "'pluto_1r1t'" in names


def test_pluto_check_finds_the_shipped_profile(wheel_venv):
    venv, work = wheel_venv
    hil = venv / "bin" / "hil"
    with spawn_command([str(hil), "emu", "pluto", "--port", "0"], boards=1, timeout_s=30) as vp:
        uri = vp.uri
        before = _run([hil, "pluto", "check", "--uri", uri], work, 60)
        # the board as it boots differs from the profile: exit 1 with the profile's values in the table
        assert before.returncode == 1, before.stdout + before.stderr
        assert "vs profile pluto_1r1t" in before.stdout and "1000000" in before.stdout
        # configure it with the same shipped profile (PlutoRadio's default), then it matches
        r = _run([venv / "bin" / "python", "-c",
                  f"from hil.radio.pluto import PlutoRadio; PlutoRadio({uri!r}).close()"], work, 60)
        assert r.returncode == 0, r.stderr
        after = _run([hil, "pluto", "check", "--uri", uri], work, 60)
    assert after.returncode == 0, after.stdout + after.stderr
    assert f"{uri} matches profile pluto_1r1t" in " ".join(after.stdout.split())


def test_demo_quick_runs_from_the_wheel(wheel_venv):
    venv, work = wheel_venv
    r = _run([venv / "bin" / "hil", "demo", "--quick", "--transport", "loopback", "--out", work / "demo"], work, 180)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rep = json.loads((work / "demo" / "report.json").read_text())
    # the quick demo runs 2 seeds: per-seed lists
    assert rep["transport"] == "loopback" and len(rep["seeds"]) == 2 and all(f > 0 for f in rep["frames"])
    assert min(rep["accuracy"]["ota"]) > 50.0  # percent; the quick demo reaches about 97, chance is 10
