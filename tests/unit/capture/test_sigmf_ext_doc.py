"""docs/hil.sigmf-ext.md defines every ``hil:`` key the code writes (the keys live in hil/_sigmf.py)."""

from __future__ import annotations

import re
from pathlib import Path

import hil._sigmf as K

DOC = Path(__file__).resolve().parents[3] / "docs" / "hil.sigmf-ext.md"


def test_every_hil_key_has_a_row_in_the_extension_document():
    keys = {v for n, v in vars(K).items() if n.isupper() and isinstance(v, str) and v.startswith("hil:")}
    assert len(keys) >= 20, keys  # the module really lists them
    text = DOC.read_text()
    rows = set(re.findall(r"^\| `([a-z_0-9]+)` \|", text, flags=re.M))
    missing = sorted(k for k in keys if k.split(":", 1)[1] not in rows)
    assert not missing, f"keys without a table row in {DOC.name}: {missing}"
    assert f"# hil Extension v{K.EXTENSION_VERSION}" in text
