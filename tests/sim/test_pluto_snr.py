"""The virtual Pluto's ``--snr-db``: configured vs measured at our receiver, in one SNR definition.

pyadi-iio through hil's Pluto transport (:class:`hil.radio.pluto.PlutoRadio` under a
:class:`hil.ota.PhyTransport`, what ``hil train --radio pluto`` opens), against ``hil emu pluto
--snr-db 10``: the receiver's per-burst Es/N0 minus ``10 log10(sps)`` (docs/channels.md), averaged
in linear power over the bursts, must be 10 +- 0.5 dB. Without ``--snr-db`` the emulator's thermal
floor at its gains sets the noise instead (tens of dB higher), which is how this test fails when
the option is ignored.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim_fallback.pluto.serve import spawn

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("mode", ["1r1t", "2r2t"])
def test_virtual_pluto_at_snr_10_measures_10_db(tmp_path, mode):
    pytest.importorskip("adi")
    from hil.train.config import OTAConfig
    from hil.train.links import open_transport

    n = 1 if mode == "1r1t" else 2
    ch = tmp_path / "bench.toml"
    ch.write_text("seed = 1\n")
    # 40 bursts of 16 vectors x 8 channel uses; payload seed 0, emulator seed 1. Measured (2026-12-04):
    # 9.87 dB (1r1t) and 10.10 dB (2r2t) over 30 bursts, per-burst spread within about +-1.5 dB,
    # so the mean of 40 bursts is within about 0.2 dB of its expectation: 0.5 dB is over 2 sigma.
    with spawn(mode, channel_file=str(ch), extra_args=("--snr-db", "10")) as vp:
        cfg = OTAConfig(transport="pluto", uri=vp.uri, n_tx=n, n_rx=n, channel_uses=8, snr_db=10.0)
        t, closer = open_transport(cfg, vectors_per_burst=16)
        try:
            rng = np.random.default_rng(0)
            lin = []
            for _ in range(40):
                s = (rng.standard_normal((16, n, 8)) + 1j * rng.standard_normal((16, n, 8))) / np.sqrt(2)
                rec = t.send(s.astype(np.complex64))
                lin.append(10 ** ((rec.snr_db - t.symbol_gain_db) / 10))
        finally:
            closer.close()
    measured = 10 * np.log10(np.mean(lin))
    assert t.symbol_gain_db == pytest.approx(10 * np.log10(2))
    assert abs(measured - 10.0) < 0.5, (mode, measured)
