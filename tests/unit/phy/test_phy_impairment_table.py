"""The impairment table of docs/phy.md ("Limits"), reproduced short: 4 frames instead of 10, seed 5.

The docs' values come from ``hil.phy.bench.impairment_excess_db`` with 10 frames (seed 5). With 4
frames the same seed gives every cell within 0.2 dB of the docs (measured); the tolerance is 1.5 dB,
so the test fails if an impairment's handling regresses, not on frame-count noise. About 2 s.
"""

import pytest

from hil.phy.bench import IMPAIRMENTS, impairment_excess_db

# docs/phy.md, Limits: payload error over its prediction at 30 dB (flat dB, ofdm dB)
DOCS = {
    "none": (0.7, -0.9),
    "sco 20 ppm": (2.9, 0.3),
    "iq 0.3 dB / 2 deg": (3.8, 2.4),
    "dc (0.003, -0.002)": (1.0, -1.4),
    "cfo 90 kHz": (0.7, -1.2),
    "phase noise -87 dBc/Hz@10k": (1.3, -0.1),
}


@pytest.mark.parametrize("name", list(DOCS))
def test_impairment_excess_matches_docs(name):
    for mode, documented in zip(("flat", "ofdm"), DOCS[name]):
        got = impairment_excess_db(IMPAIRMENTS[name], mode, snr_db=30.0, frames=4, seed=5)
        assert abs(got - documented) < 1.5, (name, mode, got, documented)
        assert got < 5.0  # every listed impairment is handled to within 5 dB of the prediction
