"""Profiles in firmware_configs/ and their validation (no board needed)."""

from __future__ import annotations

import pytest

from hil.errors import ConfigError
from hil.radio.pluto import PROFILE_DIR, PlutoProfile, load_profile, parse_range


@pytest.mark.parametrize("name, cls, n", [("pluto_1r1t", "Pluto", 1), ("pluto_2r2t", "ad9361", 2),
                                          ("fmcomms2_3", "ad9361", 2), ("fmcomms5", "FMComms5", 4)])
def test_shipped_profiles_parse(name, cls, n):
    p = PlutoProfile.from_dict(load_profile(name))
    assert p.board_class == cls
    assert len(p.rx_enabled_channels) == len(p.tx_enabled_channels) == n
    assert p.tx_scale == 2**14 and p.gain_control_mode == "manual"


def test_every_toml_in_firmware_configs_is_a_valid_profile():
    names = sorted(q.stem for q in PROFILE_DIR.glob("*.toml"))
    assert {"pluto_1r1t", "pluto_2r2t", "fmcomms2_3", "fmcomms5"} <= set(names)
    for n in names:
        PlutoProfile.from_dict(load_profile(n))


@pytest.mark.parametrize(
    "d, match",
    [
        ({"rf": {"rx_lo": 1}}, r"unknown keys \['rx_lo'\]"),
        ({"radio": {}}, "unknown tables"),
        ({"board": {"class": "B210"}}, "class = 'B210'"),
        ({"board": {"mode": "3r3t"}}, "mode = '3r3t'"),
        ({"buffers": {"rx_enabled_channels": [1]}}, r"rx_enabled_channels = \[1\]: give distinct channels in 0..0"),
        ({"buffers": {"tx_enabled_channels": []}}, "tx_enabled_channels"),
        ({"rf": {"rx_gain_db": [1, 2]}}, "one value per enabled channel"),
        ({"rf": {"gain_control_mode": "fast_attack", "rx_gain_db": [10]}}, "silently ignore"),
        ({"buffers": {"tx_scale": 40000}}, r"tx_scale = 40000.0: must be in \(0, 32767\]"),
        ({"buffers": {"guard_samples": -1}}, "guard_samples = -1"),
    ],
)
def test_bad_profiles_name_the_key(d, match):
    with pytest.raises(ConfigError, match=match):
        PlutoProfile.from_dict(d)


def test_load_profile_unknown_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="pluto_1r1t"):
        load_profile("no_such_board")


def test_parse_range():
    assert parse_range("[-89.750000 0.250000 0.000000]") == (-89.75, 0.25, 0.0)
    assert parse_range("manual fast_attack slow_attack hybrid") == ["manual", "fast_attack", "slow_attack", "hybrid"]


# ---------------------------------------------------------------- the one-burst capture window
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from hil.radio.pluto import PlutoRadio  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 400), g=st.integers(1, 64), phase=st.integers(0, 10_000), seed=st.integers(0, 2**31),
       n_ant=st.integers(1, 2))
def test_one_burst_window_is_guard_burst_guard_for_any_cycle_phase(n, g, phase, seed, n_ant):
    """[Note: one burst per capture]: a 2L capture of the cyclic [g zeros, burst, g zeros] starting at
    any phase gives back exactly the padded burst (noise-free; burst samples never zero)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    burst = (rng.uniform(0.1, 1, (n_ant, n)) * np.exp(2j * np.pi * rng.uniform(size=(n_ant, n)))).astype(np.complex64)
    padded = np.zeros((n_ant, n + 2 * g), np.complex64)
    padded[:, g:g + n] = burst
    L = padded.shape[1]
    capture = np.tile(padded, 3)[:, phase % L: phase % L + 2 * L]
    win = PlutoRadio._one_burst(capture, n, g)
    assert win.shape == (n_ant, L)
    np.testing.assert_array_equal(win, padded)
