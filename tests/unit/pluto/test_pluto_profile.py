"""Profiles in firmware_configs/ and their validation (no board needed)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from hil.errors import ConfigError
from hil.radio.pluto import PlutoProfile, load_profile, parse_range, profile_names

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name, cls, n", [("pluto_1r1t", "Pluto", 1), ("pluto_2r2t", "ad9361", 2),
                                          ("fmcomms2_3", "ad9361", 2), ("fmcomms5", "FMComms5", 4)])
def test_shipped_profiles_parse(name, cls, n):
    p = PlutoProfile.from_dict(load_profile(name))
    assert p.board_class == cls
    assert len(p.rx_enabled_channels) == len(p.tx_enabled_channels) == n
    assert p.tx_scale == 2**14 and p.gain_control_mode == "manual"


def test_shipped_profiles_are_firmware_configs():
    """One copy: the package's profiles are exactly the TOMLs of the top-level firmware_configs/."""
    top = {q.stem: q.read_text() for q in (REPO / "firmware_configs").glob("*.toml")}
    assert profile_names() == sorted(top)
    assert (REPO / "hil" / "radio" / "profiles").resolve() == (REPO / "firmware_configs").resolve()
    for name, text in top.items():
        assert load_profile(name) == tomllib.loads(text)


def test_unknown_profile_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match=r"no profile 'pluto_9r9t'.*'pluto_1r1t'"):
        load_profile("pluto_9r9t")


def test_every_toml_in_firmware_configs_is_a_valid_profile():
    names = profile_names()
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


# ---------------------------------------------------------------- values: conversions and checks
@pytest.mark.parametrize(
    "d, match",
    [
        ({"rf": {"sample_rate_hz": "2M"}}, r"\[rf\] sample_rate_hz = '2M': expected an integer in Hz"),
        ({"rf": {"rx_lo_hz": 2.4e9 + 0.5}}, r"\[rf\] rx_lo_hz = 2400000000.5: expected an integer in Hz"),
        ({"rf": {"tx_rf_bandwidth_hz": True}}, r"\[rf\] tx_rf_bandwidth_hz = True: expected an integer"),
        ({"rf": {"tx_gain_db": ["-10"]}}, r"\[rf\] tx_gain_db = '-10': expected gains in dB"),
        ({"rf": {"rx_gain_db": 30}}, r"\[rf\] rx_gain_db = 30: expected a list of gains in dB"),
        ({"buffers": {"rx_enabled_channels": ["0"]}}, r"\[buffers\] rx_enabled_channels = '0': expected antenna"),
        ({"buffers": {"tx_scale": "16384"}}, r"\[buffers\] tx_scale = '16384': expected an int16 amplitude"),
        ({"buffers": {"guard_samples": 1.5}}, r"\[buffers\] guard_samples = 1.5: expected an integer"),
        ({"buffers": {"timeout_ms": 0}}, r"\[buffers\] timeout_ms = 0: must be > 0"),
        ({"buffers": {"timeout_ms": -5}}, r"\[buffers\] timeout_ms = -5: must be > 0"),
        ({"buffers": {"timeout_ms": "5s"}}, r"\[buffers\] timeout_ms = '5s': expected an integer number of ms"),
        ({"buffers": {"flush_captures": -1}}, r"\[buffers\] flush_captures = -1: must be >= 0"),
        # accepted and never applied before: now refused (transceive sizes the RX buffer per call)
        ({"buffers": {"rx_buffer_size": 4096}}, r"unknown keys \['rx_buffer_size'\]"),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_expected(d, match):
    with pytest.raises(ConfigError, match=match):
        PlutoProfile.from_dict(d)


def test_integral_floats_and_zero_flushes_are_accepted():
    p = PlutoProfile.from_dict({"rf": {"sample_rate_hz": 2e6, "rx_lo_hz": 2.4e9},
                                "buffers": {"flush_captures": 0, "timeout_ms": 1}})
    assert p.sample_rate_hz == 2_000_000 and type(p.sample_rate_hz) is int and p.rx_lo_hz == 2_400_000_000
    assert p.flush_captures == 0 and p.timeout_ms == 1
    assert p.rx_rf_bandwidth_hz == p.tx_rf_bandwidth_hz == 2_000_000  # default: the sample rate


# ---------------------------------------------------------------- configure on a fake FMCOMMS5 (both chips)

from hil.errors import RadioError  # noqa: E402
from hil.radio import pluto as pluto_mod  # noqa: E402

_RANGES = {("altvoltage0", "frequency_available", True): "[70000000 1 6000000000]",
           ("altvoltage1", "frequency_available", True): "[70000000 1 6000000000]",
           ("voltage0", "sampling_frequency_available", False): "[2083333 1 61440000]",
           ("voltage0", "rf_bandwidth_available", False): "[200000 1 56000000]",
           ("voltage0", "rf_bandwidth_available", True): "[200000 1 40000000]",
           ("voltage0", "hardwaregain_available", False): "[-3 1 71]",
           ("voltage0", "hardwaregain_available", True): "[-89.75 0.25 0]",
           ("voltage0", "gain_control_mode_available", False): "manual fast_attack slow_attack hybrid"}


class FMComms5:
    """Stands in for ``adi.FMComms5``: pyadi-iio's properties as plain attributes; the two chips'
    sample rates are written together by ``sample_rate`` (as pyadi-iio does). ``ignore`` names
    properties whose writes the 'board' drops (a driver that did not take the value)."""

    _ctrl_b = object()

    def __init__(self, ignore=(), chip_b_rate_offset=0):
        object.__setattr__(self, "v", {})
        object.__setattr__(self, "ignore", set(ignore))
        object.__setattr__(self, "chip_b_rate_offset", chip_b_rate_offset)

    def __setattr__(self, k, val):
        if k in self.ignore:
            return
        self.v[k] = val
        if k == "sample_rate":
            self.v["chip_b_sample_rate"] = val + self.chip_b_rate_offset

    def __getattr__(self, k):
        try:
            return self.v[k]
        except KeyError:
            if "chip_b" in k:
                return 0  # never written: what a board at another setting would read
            raise AttributeError(k) from None

    def _get_iio_attr_str(self, ch, attr, out):
        return _RANGES[(ch, attr, out)]

    def _get_iio_attr(self, ch, attr, out, ctrl=None):
        assert (ch, attr, out, ctrl) == ("voltage0", "sampling_frequency", False, self._ctrl_b)
        return self.chip_b_sample_rate


def _configure_fake(dev):
    prof = PlutoProfile.from_dict(load_profile("fmcomms5"))
    r = PlutoRadio("ip:fake", prof, _pair=(dev, dev))  # the reverse-wiring path: opens nothing
    r.configure(prof)
    return prof


def test_fmcomms5_both_chips_are_written():
    dev = FMComms5()
    p = _configure_fake(dev)
    for k in ("rx_rf_bandwidth", "rx_rf_bandwidth_chip_b"):
        assert dev.v[k] == p.rx_rf_bandwidth_hz
    for k in ("tx_rf_bandwidth", "tx_rf_bandwidth_chip_b"):
        assert dev.v[k] == p.tx_rf_bandwidth_hz
    assert dev.v["rx_lo_chip_b"] == p.rx_lo_hz and dev.v["tx_lo_chip_b"] == p.tx_lo_hz
    for c in range(2):  # antennas 2, 3: chip B's chan0, chan1
        assert dev.v[f"gain_control_mode_chip_b_chan{c}"] == "manual"
        assert dev.v[f"rx_hardwaregain_chip_b_chan{c}"] == p.rx_gain_db[2 + c]
        assert dev.v[f"tx_hardwaregain_chip_b_chan{c}"] == p.tx_gain_db[2 + c]


@pytest.mark.parametrize("ignored", ["rx_rf_bandwidth_chip_b", "tx_rf_bandwidth_chip_b", "rx_lo_chip_b",
                                     "tx_lo_chip_b", "rx_hardwaregain_chip_b_chan1"])
def test_fmcomms5_chip_b_is_read_back(ignored):
    with pytest.raises(RadioError, match=f"{ignored} reads back"):
        _configure_fake(FMComms5(ignore={ignored}))


def test_fmcomms5_chip_b_sample_rate_is_read_back():
    # 3.84 Msps with tolerance 0.01 % = 384 Hz: chip B 1 kHz off is refused, 100 Hz off is accepted
    with pytest.raises(RadioError, match="chip B sampling_frequency reads back 3841000"):
        _configure_fake(FMComms5(chip_b_rate_offset=1000))
    _configure_fake(FMComms5(chip_b_rate_offset=100))


# ---------------------------------------------------------------- constants in one place
def test_one_sample_rate_floor_pyadi_iios_own():
    """The floor is pyadi-iio's: its setter refuses ``rate < 521e3`` (read from the class, no board);
    the range configure checks starts there for an AD9361 listing 2.083 Msps (FIR off)."""
    import inspect

    adi = pytest.importorskip("adi")
    assert "rate < 521e3" in inspect.getsource(adi.ad9364.sample_rate.fset)
    assert pluto_mod.PYADI_MIN_SAMPLE_RATE_HZ == 521_000
    r = PlutoRadio("ip:fake", None, _pair=(FMComms5(), None))
    assert r._ranges_of(FMComms5())["sample_rate_hz"][0] == 521_000
    with pytest.raises(ValueError, match=r"sample_rate_hz = 520999 Hz is below the lowest rate pyadi-iio can set \(521000 Hz"):
        r._validate(PlutoProfile(sample_rate_hz=520_999), r._ranges_of(FMComms5()))


def test_readback_tolerances_and_adc_scale_are_defined_once():
    assert pluto_mod.readback_tolerance("sample_rate_hz", 1e6) == pytest.approx(100.0)
    assert pluto_mod.readback_tolerance("rx_rf_bandwidth_hz", 2e6) == pytest.approx(20_000.0)
    assert pluto_mod.readback_tolerance("rx_lo_hz", 2.4e9) == 10.0
    assert pluto_mod.readback_tolerance("rx_gain_db", 30) == 0.5
    assert pluto_mod.readback_tolerance("tx_gain_db", -10) == 0.125
    from sim_fallback.pluto import air

    assert air.ADC_FULL_SCALE is pluto_mod.ADC_FULL_SCALE
