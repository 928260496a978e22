"""Tapped delay lines: the shipped 3GPP profiles (checked against Sionna), power delay profile, delays, memory."""

import numpy as np
import pytest

from hil.channel import TDL, TimeBehaviour, build_channel, load_tdl_profile
from hil.channel.tdl import lag_weights


def test_shipped_profiles_match_the_3gpp_tables():
    a = load_tdl_profile("TDL-A", 100e-9)
    assert len(a["delays_s"]) == 23
    assert max(a["delays_s"]) == pytest.approx(9.6586 * 100e-9)  # TR 38.901 Table 7.7.2-1
    assert sum(a["powers"]) == pytest.approx(1.0)
    assert a["k_factor_db"] is None
    d = load_tdl_profile("TDL-D", 30e-9)
    assert d["k_factor_db"] == pytest.approx(13.3)  # TR 38.901 Table 7.7.2-4
    assert load_tdl_profile("TDL-E", 30e-9)["k_factor_db"] == pytest.approx(22.0)
    assert max(load_tdl_profile("TDL-A30")["delays_s"]) == pytest.approx(290e-9)  # TS 38.101-4, ns
    with pytest.raises(ValueError, match="delay_spread_s"):
        load_tdl_profile("TDL-B")
    with pytest.raises(ValueError, match="TDL-A"):
        load_tdl_profile("TDL-Z", 1e-7)


@pytest.mark.parametrize("version", ["16.1", "19.2"])
def test_shipped_tables_equal_sionnas(version):
    # Every profile of hil/channel/tdl_profiles.json against Sionna's own TDL model (public API):
    # delays, normalised path powers (LOS power on the first path) and K-factor, to float32 precision.
    tdl_mod = pytest.importorskip("sionna.phy.channel.tr38901", reason="sionna-no-rt is optional")
    from hil.channel.tdl import FIXED_PROFILES, SCALABLE_PROFILES

    cases = [(n, 100e-9) for n in SCALABLE_PROFILES] + ([(n, None) for n in FIXED_PROFILES] if version == "19.2" else [])
    for name, ds in cases:
        ref = tdl_mod.TDL(name.removeprefix("TDL-"), delay_spread=ds if ds else 1e-7, carrier_frequency=3.5e9,
                          spec_version=version)
        got = load_tdl_profile(name, ds, spec_version=version)
        want_d = ref.delays.cpu().numpy().astype(np.float64)
        want_p = ref.mean_powers.cpu().numpy().astype(np.float64)
        order = np.argsort(want_d, kind="stable")
        np.testing.assert_allclose(got["delays_s"], want_d[order], rtol=1e-6, atol=1e-15, err_msg=name)
        np.testing.assert_allclose(got["powers"], want_p[order], rtol=1e-5, err_msg=name)
        if ref.los:
            assert got["k_factor_db"] == pytest.approx(10 * np.log10(float(ref.k_factor)), abs=1e-4), name
        else:
            assert got["k_factor_db"] is None, name


def test_integer_delays_are_exact_taps():
    # paths at 0 and 3 samples: the impulse response has exactly two nonzero lags
    t = TDL(1, 1, np.random.default_rng(20), 1e6, delays_s=[0.0, 3e-6], powers_db=[0.0, -3.0])
    assert t.lags == (0, 3)
    imp = np.zeros((1, 10), np.complex64)
    imp[0, 0] = 1
    h = t(imp)[0]
    assert np.count_nonzero(np.abs(h) > 0) == 2 and h[1] == 0 and h[3] != 0


def test_power_delay_profile_matches_profile():
    # TDL-C, DS 300 ns at 30.72 Msps; 3000 independent blocks (seed 21). Mean power per lag of the
    # impulse response vs sum_l p_l w_l[n]^2 within 10% (relative) on lags above -20 dB, total 1 +- 3%
    fs = 30.72e6
    t = TDL(1, 1, np.random.default_rng(21), fs, profile="TDL-C", delay_spread_s=300e-9,
            time=TimeBehaviour("block", block_samples=1))
    c = t.generate(3000)
    m = c.mats[:, :, 0, 0].astype(np.complex128)  # [blocks, lags]
    pdp = np.mean(np.abs(m) ** 2, axis=0)
    expect = (np.asarray(t.powers)[:, None] * t._w**2).sum(axis=0)
    assert pdp.sum() == pytest.approx(1.0, rel=0.03)
    big = expect > 0.01 * expect.max()
    assert np.all(np.abs(pdp[big] / expect[big] - 1) < 0.1)
    # RMS delay spread of the continuous profile equals the configured one (normalised profile)
    tau = np.asarray(t.delays_s)
    p = np.asarray(t.powers)
    ds = np.sqrt(np.sum(p * tau**2) - np.sum(p * tau) ** 2)
    assert ds == pytest.approx(300e-9, rel=0.05)


def test_tdl_d_first_path_rician():
    # TDL-D: K = 13.3 dB on the first path; K recovered from 20000 draws within 0.5 dB (seed 22)
    t = TDL(1, 1, np.random.default_rng(22), 1e6, profile="TDL-D", delay_spread_s=10e-9,
            time=TimeBehaviour("block", block_samples=1))
    h = t.paths[0].matrices(20000)[1][:, 0, 0].astype(np.complex128)
    k = np.abs(h.mean()) ** 2 / np.var(h)
    assert 10 * np.log10(k) == pytest.approx(13.3, abs=0.5)


def test_fractional_lag_weights_unit_energy():
    lags, w = lag_weights(np.array([0.0, 2.5, 7.25]))
    assert np.allclose((w**2).sum(axis=1), 1.0)
    assert lags[0] == 0


def test_tdl_streaming_equals_one_call():
    # FIR history is carried across calls: cutting the stream changes nothing (static channel)
    spec = {"tdl": "TDL-A", "delay_spread_s": 300e-9, "sample_rate_hz": 20e6, "n_tx": 2, "n_rx": 2}
    rng = np.random.default_rng(23)
    x = (rng.standard_normal((2, 5000)) + 1j * rng.standard_normal((2, 5000))).astype(np.complex64)
    a = build_channel(spec, np.random.default_rng(1))(x)
    ch = build_channel(spec, np.random.default_rng(1))
    b = np.concatenate([ch(x[:, :1234]), ch(x[:, 1234:1240]), ch(x[:, 1240:])], axis=1)
    assert np.abs(a - b).max() < 1e-5


def test_tdl_time_varying_and_state_json():
    import json

    ch = build_channel({"tdl": {"delays_s": [0, 1e-6], "powers_db": [0, -6]}, "doppler_hz": 50.0,
                        "sample_rate_hz": 1e6, "n_tx": 2, "n_rx": 1}, np.random.default_rng(24))
    y = ch(np.ones((2, 20000), np.complex64))
    assert y.shape == (1, 20000) and y.dtype == np.complex64
    st = json.loads(json.dumps(ch.state()))
    assert st["stages"][0]["model"] == "TDL" and st["stages"][0]["lags"] == [0, 1]
