"""``hil capture --layout per-antenna``: one single-channel SigMF recording per antenna in a valid collection.

A real channel server (2x2, AWGN at 20 dB) on ephemeral ports; the CLI captures 4 frames and the
output is opened with sigmf-python only.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.sim


def test_per_antenna_layout_opens_in_sigmf_as_one_stream_per_antenna(channel_server, tmp_path: Path):
    pytest.importorskip("sigmf")
    from sigmf import SigMFCollection, sigmffile

    from hil.capture.sigmf_io import load_recording

    srv = channel_server({
        "server": {"sample_rate_hz": 1e6, "seed": 3},
        "nodes": [{"name": "edge", "antennas": 2}, {"name": "server", "antennas": 2}],
        "links": [{"a": "edge", "b": "server", "channel": {"snr_db": 20.0}}],
    })
    sweep = tmp_path / "sweep.toml"
    sweep.write_text("lo_hz = [2.40e9, 2.45e9]\nframes_per_step = 2\n"
                     "[sounder]\npilot_len = 64\nquiet_len = 64\n")
    out = tmp_path / "cap"
    r = subprocess.run([sys.executable, "-m", "hil.cli", "capture", "--radio", "zmq", "--uri", srv.control,
                        "--sweep", str(sweep), "--out", str(out), "--layout", "per-antenna"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    multi = load_recording(out / "rec000.sigmf-meta")
    x = multi.samples()
    assert x.shape[0] == 2

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # an undeclared extension would warn
        coll = sigmffile.fromfile(str(out / "per-antenna" / "rec000.sigmf-collection"))
        assert isinstance(coll, SigMFCollection)
        coll.verify_stream_hashes()  # core:streams hashes match the metadata files
        assert coll.get_stream_names() == ["rec000-rx0", "rec000-rx1"]
        for k in range(2):
            one = coll.get_SigMFFile(stream_index=k)  # dataset checksum checked on open
            one.validate()
            assert one.get_global_field("core:num_channels") == 1
            assert one.get_global_field("hil:antenna") == k
            y = one.read_samples()
            assert y.ndim == 1 and np.array_equal(y.astype(np.complex64), x[k])
            anns = one.get_annotations()
            assert len(anns) == 4  # 2 LO steps x 2 frames, all detected at 20 dB
            # every annotation has frequency edges: the recorded band around its segment's LO
            for a in anns:
                lo = 2.40e9 if a["core:sample_start"] < one.get_captures()[1]["core:sample_start"] else 2.45e9
                assert (a["core:freq_lower_edge"], a["core:freq_upper_edge"]) == (lo - 0.5e6, lo + 0.5e6)
    # the multi-channel recording (for inspect/replay) carries the edges too
    assert all("core:freq_lower_edge" in a for a in multi.metadata["annotations"])
