"""The import layering of docs/architecture.md, checked on the source (every import, also inside functions).

channel < radio < phy < ota < (train, capture) < split, baim < cluster < cli; ``sim_fallback`` holds the
processes that stand in for hardware and is started by command line, never imported by the library.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HIL = Path(__file__).resolve().parents[2] / "hil"


def _imports(package: str) -> list[tuple[str, int, str]]:
    """(file, line, imported module) for every import in ``hil/<package>`` (or all of hil for "")."""
    root = HIL / package if package else HIL
    files = [root.with_suffix(".py")] if not root.is_dir() else sorted(root.rglob("*.py"))
    out = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                out += [(str(f.relative_to(HIL.parent)), node.lineno, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                out += [(str(f.relative_to(HIL.parent)), node.lineno, node.module)]
                # `from hil import capture` imports hil.capture
                if node.module == "hil":
                    out += [(str(f.relative_to(HIL.parent)), node.lineno, f"hil.{a.name}") for a in node.names]
    return out


def _offending(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{f}:{line} imports {mod}" for f, line, mod in _imports(package)
            if any(mod == b or mod.startswith(b + ".") for b in forbidden)]


@pytest.mark.parametrize("package, forbidden", [
    ("channel", ("hil.capture", "hil.phy", "hil.ota", "hil.train", "hil.radio", "hil.split", "hil.cluster", "hil.cli")),
    ("radio", ("hil.phy", "hil.ota", "hil.train", "hil.capture", "hil.split", "hil.cluster", "hil.cli")),
    ("phy", ("hil.ota", "hil.train", "hil.capture", "hil.split", "hil.cluster", "hil.cli")),
    ("ota", ("hil.train", "hil.capture", "hil.split", "hil.cluster", "hil.cli")),
    ("split", ("hil.train", "hil.cluster", "hil.cli")),
    ("_sigmf", ("hil.capture", "hil.channel")),
    ("data", ("hil.train", "hil.split", "hil.baim")),
])
def test_lower_layers_do_not_import_higher_ones(package, forbidden):
    assert _offending(package, forbidden) == []


def test_the_library_never_imports_sim_fallback():
    """No module of hil imports sim_fallback: `hil sim serve` and `hil emu pluto` hand over to its processes."""
    assert _offending("", ("sim_fallback",)) == []


def test_the_check_sees_imports_inside_functions(tmp_path):
    """The checker itself: an import inside a function body is found (so the rules above can fail)."""
    pkg = tmp_path / "hil" / "fake"
    pkg.mkdir(parents=True)
    (pkg / "m.py").write_text("def f():\n    from hil.train.run import x\n    import sim_fallback.topology\n")
    globals()["HIL"], old = tmp_path / "hil", HIL
    try:
        assert _offending("fake", ("hil.train",)) == ["hil/fake/m.py:2 imports hil.train.run"]
        assert _offending("fake", ("sim_fallback",)) == ["hil/fake/m.py:3 imports sim_fallback.topology"]
    finally:
        globals()["HIL"] = old
