"""build_channel / build_reciprocal_link: spec keys, inference, and errors that name the key."""

import json
import pathlib

import numpy as np
import pytest

from hil.channel import CHANNEL_KEYS, build_channel, build_reciprocal_link


def kinds(ch):
    return [type(s).__name__ for s in ch.stages]


def test_full_spec_builds_all_stages_in_order():
    spec = {"fading": "rician", "k_factor_db": 6.0, "n_tx": 2, "n_rx": 2, "rho": 0.99,
            "block_samples": 1024, "snr_db": 10, "cfo_hz": 1000, "sample_rate_hz": 1e6,
            "phase_noise": {"linewidth_hz": 5.0}, "delay_samples": 2.5, "sco_ppm": 10,
            "iq_imbalance": {"amplitude_db": 0.2, "phase_deg": 1.0}, "dc_offset": [0.01, -0.01],
            "clip": {"level": 0.9, "mode": "envelope"}, "quantization": {"bits": 12}}
    ch = build_channel(spec, np.random.default_rng(0))
    assert kinds(ch) == ["FlatFading", "FractionalDelay", "SamplingClockOffset",
                         "CarrierFrequencyOffset", "PhaseNoise", "AWGN", "IQImbalance",
                         "DCOffset", "Clipper", "Quantizer"]
    assert ch.stages[0].time.kind == "gauss_markov" and ch.stages[0].time.rho == 0.99
    assert ch.stages[5].reference == "tx"  # auto: fading present -> average SNR
    y = ch(np.full((2, 3000), 0.1, np.complex64))
    assert y.shape == (2, 3000) and y.dtype == np.complex64
    json.dumps(ch.state())


@pytest.mark.parametrize("spec,kind", [
    ({"fading": "rayleigh"}, "static"),
    ({"fading": "rayleigh", "block_samples": 64}, "block"),
    ({"fading": "rayleigh", "block_samples": 64, "rho": 0.9}, "gauss_markov"),
    ({"fading": "rayleigh", "block_samples": 64, "doppler_hz": 10.0}, "gauss_markov"),
    ({"fading": "rayleigh", "doppler_hz": 10.0}, "doppler"),
    ({"fading": "rayleigh", "time": "block", "block_samples": 8}, "block"),
])
def test_time_inference(spec, kind):
    assert build_channel(spec, np.random.default_rng(0)).stages[0].time.kind == kind


def test_awgn_only_and_passthrough():
    ch = build_channel({"snr_db": 20}, np.random.default_rng(0))
    assert kinds(ch) == ["AWGN"] and ch.stages[0].reference == "rx"
    ch = build_channel({}, np.random.default_rng(0))
    x = np.ones((1, 5), np.complex64)
    assert np.array_equal(ch(x), x)


def test_unknown_key_named_with_valid_list():
    with pytest.raises(ValueError) as e:
        build_channel({"snr": 10}, np.random.default_rng(0))
    assert "'snr'" in str(e.value) and "snr_db" in str(e.value) and "cfo_hz" in str(e.value)
    with pytest.raises(ValueError, match="'linewidth'.*linewidth_hz"):
        build_channel({"phase_noise": {"linewidth": 1}}, np.random.default_rng(0))


@pytest.mark.parametrize("spec,match", [
    ({"fading": "rayleighh"}, "valid values: none, rayleigh, rician"),
    ({"fading": "rician"}, "k_factor_db"),
    ({"fading": "rayleigh", "rho": 0.9}, "block_samples"),
    ({"n_tx": 2, "n_rx": 1}, "no fading"),
    ({"snr_db": 10, "noise_power": 1e-3}, "not both"),
    ({"fading": "rayleigh", "time": "fast"}, "valid values"),
    ({"snr_db": "ten"}, "'snr_db' must be a number"),
    ({"n_tx": 1.5}, "'n_tx' must be an integer"),
    ({"tdl": "TDL-A"}, "delay_spread_s"),
    ({"rho": 0.9, "block_samples": 4}, "needs fading"),
    ({"fading": "rayleigh", "rho": 1.5, "block_samples": 4}, "rho"),
])
def test_bad_values_name_the_key(spec, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build_channel(spec, np.random.default_rng(0))


def test_rng_type_checked():
    with pytest.raises(TypeError, match="Generator"):
        build_channel({}, 3)


def test_reciprocal_link_spec():
    link = build_reciprocal_link({"n_a": 2, "n_b": 3, "fading": "rayleigh", "t_a": {"real": [1, 1], "imag": [0, 1]}},
                                 np.random.default_rng(0))
    assert link.forward.n_in == 2 and link.forward.n_out == 3
    assert link.reverse.n_in == 3 and link.reverse.n_out == 2
    with pytest.raises(ValueError, match="'foo'.*chain_gains"):
        build_reciprocal_link({"foo": 1}, np.random.default_rng(0))


def test_keys_documented():
    doc = (pathlib.Path(__file__).parents[3] / "docs" / "channels.md").read_text()
    missing = [k for k in CHANNEL_KEYS if f"`{k}`" not in doc]
    assert not missing, missing
