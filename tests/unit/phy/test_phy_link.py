"""PhyLink end to end over LoopbackRadio with the channel models, every mode, all impairments."""

import numpy as np
import pytest

from hil.channel.config import build_channel
from hil.phy import PhyConfig, PhyLink, real_to_symbols, symbols_to_real
from hil.phy.bench import check, run_phy_bench
from hil.radio.loopback import LoopbackRadio

from .conftest import TinyChannel, gauss_symbols


def _expected(res, s):
    if res.subcarrier is None:
        return np.einsum("rt,btk->brk", res.channel_estimate, s)
    return np.einsum("bkrt,btk->brk", res.channel_estimate[res.subcarrier], s)


@pytest.mark.parametrize(
    "mode,n_tx,n_rx,tdl",
    [("single", 1, 1, False), ("single", 1, 2, False), ("flat", 2, 2, False), ("flat", 4, 2, False),
     ("ofdm", 2, 2, False), ("ofdm", 2, 2, True)],
)
def test_link_all_impairments(mode, n_tx, n_rx, tdl, rng):
    """20 dB, CFO 100 kHz at 1 MS/s, fractional delay, Pluto-like phase noise (seed 1234).

    The payload must match H_est @ symbols with an error consistent with the reported noise
    variance plus the LS channel-estimate error (``n_tx * estimate_error_var * E|s|^2``): within
    -2.5..+2 dB of that (LMMSE makes the estimate error smaller than the LS value; the phase noise
    left after tracking adds up to ~1.5 dB at 20 dB for 1x1; TDL adds ISI).
    """
    spec = {"n_tx": n_tx, "n_rx": n_rx, "snr_db": 20.0, "snr_reference": "rx", "cfo_hz": 1e5,
            "delay_samples": 1.37, "phase_noise": {"psd_dbc_hz": -87.0, "psd_offset_hz": 1e4}}
    if tdl:
        spec.update({"tdl": "TDL-A", "delay_spread_s": 1e-6})
    else:
        spec["fading"] = "rayleigh"
    link = PhyLink(LoopbackRadio(build_channel(spec, rng)), PhyConfig(n_tx=n_tx, n_rx=n_rx, mode=mode))
    for _ in range(2):
        s = gauss_symbols(rng, 6, n_tx, 64)
        res = link.transceive(s)
        assert res.payload.shape == (6, n_rx, 64) and res.payload.dtype == np.complex64
        assert abs(res.cfo_hz - 1e5) < 100
        # with multipath the correlation peak sits within the delay spread (TDL-A, 1 us = 1 sample)
        assert abs(res.timing - (64 + 1.37)) < (3.0 if tdl else 0.3)
        err = float(np.mean(np.abs(res.payload - _expected(res, s)) ** 2))
        pred = res.noise_var + n_tx * res.estimate_error_var * float(np.mean(np.abs(s) ** 2))
        ratio_db = 10 * np.log10(err / pred)
        assert -2.5 < ratio_db < (2.5 if tdl else 2.0), ratio_db
        assert 15 < res.snr_db < 28  # 20 dB per sample; per symbol up to +3 dB (sps=2)
        assert res.tx_clipped == 0


def test_noise_free_identity_link_recovers_symbols_exactly(rng):
    """No noise, identity channel, integer delay: payload == symbols to float precision."""
    cfg = PhyConfig(n_tx=2, n_rx=2, mode="flat")
    ch = TinyChannel(np.eye(2), rng, noise_power=1e-12, delay=5)
    link = PhyLink(LoopbackRadio(ch), cfg)
    v = rng.standard_normal((4, 2 * 2 * 30)).astype(np.float32)
    s = real_to_symbols(v, 2)
    res = link.transceive(s)
    np.testing.assert_allclose(res.channel_estimate, np.eye(2), atol=2e-3)
    est = np.einsum("ts,bsk->btk", np.linalg.inv(res.channel_estimate), res.payload)
    np.testing.assert_allclose(symbols_to_real(est, v.shape[1]), v, atol=2e-2 * np.abs(v).max())


def test_power_normalisation_and_clipping_reported(rng):
    s = gauss_symbols(rng, 4, 1, 200) * 10
    for norm in ("average", "peak"):
        cfg = PhyConfig(n_tx=1, n_rx=1, mode="single", power_norm=norm, backoff_db=12.0, peak_backoff_db=1.0)
        link = PhyLink(LoopbackRadio(TinyChannel(np.ones((1, 1)), rng, noise_power=1e-8)), cfg)
        res = link.transceive(s)
        info = link.last_tx
        if norm == "average":
            assert abs(info.avg_dbfs + 12.0) < 0.5
        else:
            assert info.peak_dbfs <= -1.0 + 1e-6 and info.clipped_samples == 0
        # Measured (seed 1234): worst-symbol error 1.0-1.2 % of the symbol RMS (pulse-shaping residual,
        # noise at 1e-8 is negligible); tolerance 3.5 % of the RMS, ~3x that.
        rms = float(np.sqrt(np.mean(np.abs(s[:, 0]) ** 2)))
        err = np.abs(res.payload[:, 0] / res.channel_estimate[0, 0] - s[:, 0])
        assert float(err.max()) < 0.035 * rms, (norm, float(err.max()) / rms)
    # OFDM at 3 dB back-off clips, and says so
    cfg = PhyConfig(n_tx=2, n_rx=2, mode="ofdm", backoff_db=3.0)
    link = PhyLink(LoopbackRadio(TinyChannel(np.eye(2), rng, noise_power=1e-8)), cfg)
    res = link.transceive(gauss_symbols(rng, 8, 2, 64))
    assert res.tx_clipped > 0 and link.last_tx.clipped_samples == res.tx_clipped


def test_short_benchmark_meets_the_targets():
    """The short version of `hil bench phy` (seed 3): every acceptance check of docs/phy.md holds.

    Tolerances are the issue's: Pd >= 0.999 at >= 0 dB (here: all 25 impaired frames per point),
    no false alarm in 150 noise captures, LS NMSE within 1 dB of theory at 0 and 30 dB (80 clean
    frames per point: the NMSE estimate's own spread is about +-0.3 dB), LMMSE better than LS at
    0 dB, EVM within 1 dB of its prediction. About 3 s.

    Plus the docs/phy.md claims of the full sweep, with loose bounds (measured at this seed in
    brackets; the docs' 500-trial values in braces): impaired CFO RMSE below 25 Hz at 0 and 30 dB
    [13.5, 15.4] {13.3, 11.9} out of a +-100 kHz range (25 trials: the RMSE's own spread is ~15 %);
    clean CFO RMSE below 10 Hz at 0 dB [4.5] {4.9} and below 1 Hz at 30 dB [0.14] {0.2}; with
    phase noise on, the NMSE floor at 30 dB sits 0.5..4 dB above LS theory [2.7] {1.4}.
    """
    rep = run_phy_bench(quick=True, seed=3, snrs=(0, 30), n_trials=25, n_clean=80, n_noise=150)
    res = check(rep)
    assert all(res.values()), (res, rep["clean"], rep["impaired"])
    imp = {p["snr_db"]: p for p in rep["impaired"]}
    cln = {p["snr_db"]: p for p in rep["clean"]}
    assert imp[30]["timing_err_rms_samples"] < 0.05
    assert imp[0]["cfo_rmse_hz"] < 25 and imp[30]["cfo_rmse_hz"] < 25, (imp[0], imp[30])
    assert cln[0]["cfo_rmse_hz"] < 10 and cln[30]["cfo_rmse_hz"] < 1, (cln[0], cln[30])
    assert 0.5 < imp[30]["nmse_ls_minus_theory_db"] < 4.0, imp[30]
    assert rep["false_alarm"]["false_alarms"] == 0


def test_ofdm_comb_pilots_interpolate_across_subcarriers(rng):
    """Pilots on every 4th subcarrier over TDL-A multipath (20 dB, seed 1234): the interpolated LS
    and the LMMSE estimates both explain the payload; LMMSE (which interpolates with the channel's
    frequency correlation) is the better of the two."""
    spec = {"n_tx": 2, "n_rx": 2, "tdl": "TDL-A", "delay_spread_s": 1e-6, "snr_db": 20.0, "snr_reference": "rx",
            "cfo_hz": -4e4, "delay_samples": 0.6}
    cfg = PhyConfig(n_tx=2, n_rx=2, mode="ofdm", ofdm_pilot_spacing=4)
    link = PhyLink(LoopbackRadio(build_channel(spec, rng)), cfg)
    s = gauss_symbols(rng, 8, 2, 72)
    res = link.transceive(s)
    errs = {}
    for name in ("channel_estimate_ls", "channel_estimate_lmmse"):
        h = getattr(res, name)[res.subcarrier]
        errs[name] = float(np.mean(np.abs(res.payload - np.einsum("bkrt,btk->brk", h, s)) ** 2))
    snr_eff = 10 * np.log10(np.mean(np.abs(res.payload) ** 2) / errs["channel_estimate_lmmse"])
    assert snr_eff > 12.0, errs  # 20 dB less noise + interpolation error
    assert errs["channel_estimate_lmmse"] < errs["channel_estimate_ls"], errs


def test_adc_clipping_is_reported(rng):
    """A channel gain that drives the ADC past full scale shows up in ``rx_clipped``."""
    cfg = PhyConfig(n_tx=1, n_rx=1, mode="single")
    s = gauss_symbols(rng, 2, 1, 64)
    quiet = PhyLink(LoopbackRadio(TinyChannel(np.ones((1, 1)), rng, noise_power=1e-6)), cfg).transceive(s)
    assert quiet.rx_clipped == 0

    class Adc(TinyChannel):
        def apply(self, x, coeffs):
            y = super().apply(x, coeffs)
            return (np.clip(y.real, -1, 1) + 1j * np.clip(y.imag, -1, 1)).astype(np.complex64)

    loud = PhyLink(LoopbackRadio(Adc(np.full((1, 1), 3.5), rng, noise_power=1e-6)), cfg).transceive(s)
    assert loud.rx_clipped > 0


def test_sampling_clock_drift_is_tracked(monkeypatch):
    """40 ppm sampling-clock offset, 30 dB, a long flat burst (16 x 128 uses, seed 21): re-timing
    on the payload's energy (see [Note: timing drift]) brings the payload error over noise from
    ~15 dB down to ~1.5 dB (measured, seed 21: 14.9 -> 1.4 dB; seeds 21-23: 14.9-15.6 -> 1.3-2.0 dB).
    Asserted with margin: below 4 dB with tracking, and at least 10 dB better than without."""

    def run(retime: bool) -> float:
        rng = np.random.default_rng(21)
        spec = {"n_tx": 2, "n_rx": 2, "fading": "rayleigh", "snr_db": 30.0, "snr_reference": "rx", "sco_ppm": 40}
        link = PhyLink(LoopbackRadio(build_channel(spec, rng)), PhyConfig(n_tx=2, n_rx=2, mode="flat"))
        if not retime:
            monkeypatch.setattr(link.receiver, "_retime", lambda xc, t0, lay, h, y, blocks: y)
        errs = []
        for _ in range(3):
            s = gauss_symbols(rng, 16, 2, 128)
            res = link.transceive(s)
            errs.append(float(np.mean(np.abs(res.payload - _expected(res, s)) ** 2)) / res.noise_var)
        return 10 * np.log10(np.mean(errs))

    with_, without = run(True), run(False)
    assert with_ < 4.0 and without - with_ > 10.0, (with_, without)
def test_noiseless_wire_decodes_with_finite_numbers():
    """An ideal simulated wire (identity, no noise) measures zero noise: the receiver must not divide
    by it (regression: ZeroDivisionError). Payload equals what was sent to within the pulse-shaping
    residual (-40 dB of the symbol amplitude)."""
    import numpy as np

    from hil.channel.fading import FixedMatrix
    from hil.phy import PhyConfig, PhyLink
    from hil.radio.loopback import LoopbackRadio

    link = PhyLink(LoopbackRadio(FixedMatrix(np.eye(2, dtype=np.complex64))), PhyConfig(n_tx=2, n_rx=2, mode="flat"))
    s = (np.random.default_rng(0).standard_normal((4, 2, 8)) * 0.5).astype(np.complex64)
    res = link.transceive(s)
    assert np.isfinite(res.snr_db) and res.snr_db > 100
    assert np.max(np.abs(res.payload - s)) < 1e-2 * np.max(np.abs(s))


@pytest.mark.parametrize("mode,n", [("single", 1), ("flat", 2), ("ofdm", 2)])
@pytest.mark.parametrize("power_norm", ["average", "peak", "fixed"])
def test_a_payload_of_zeros_says_so_and_decodes_to_exact_zeros(mode, n, power_norm, rng):
    """A burst whose symbols are all zero has no scale: its header carries ZERO_PAYLOAD_CODE and the receiver
    returns exact zeros with noise variance 0 (not the noise of an empty payload, divided by a made-up scale);
    the next burst decodes as usual. 10 dB, CFO 20 kHz, seed 1234."""
    from hil.phy.waveform import ZERO_PAYLOAD_CODE

    spec = {"n_tx": n, "n_rx": n, "snr_db": 10.0, "cfo_hz": 2e4, "fading": "rayleigh"}
    link = PhyLink(LoopbackRadio(build_channel(spec, rng)), PhyConfig(n_tx=n, n_rx=n, mode=mode,
                                                                    power_norm=power_norm))
    res = link.transceive(np.zeros((4, n, 16), np.complex64))
    assert res.header.scale_code == ZERO_PAYLOAD_CODE and res.tx_scale == 0.0
    assert res.payload.shape == (4, n, 16) and not np.any(res.payload)
    assert res.noise_var == 0.0 and not np.any(res.noise_var_rx)
    s = gauss_symbols(rng, 4, n, 16)
    res = link.transceive(s)
    assert res.header.scale_code != ZERO_PAYLOAD_CODE and res.tx_scale > 0
    assert np.mean(np.abs(res.payload - _expected(res, s)) ** 2) < 0.5 * np.mean(np.abs(s) ** 2)
