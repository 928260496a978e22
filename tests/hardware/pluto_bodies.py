"""Test bodies shared by tests/sim (virtual Pluto) and tests/hardware (a real board on --radio-uri).

Each body takes a libiio URI and checks one promise of docs/bench.md through the real driver stack
(pyadi-iio -> libiio -> TCP/USB -> iiod). Level checks need a known path loss, so they take the
expected level as an argument (None on hardware: the cable and attenuator are not known).
"""

from __future__ import annotations

import gc
import os
import threading
import time

import numpy as np
import pytest

from hil.errors import RadioError
from hil.radio.pluto import PlutoRadio, load_profile, readback_tolerance


def tone_peak(x: np.ndarray, fs: float) -> tuple[float, float, float]:
    """(peak frequency Hz, bin width Hz, peak amplitude) of a complex capture, rectangular window."""
    n = x.shape[-1]
    spec = np.fft.fft(x)
    k = int(np.argmax(np.abs(spec)))
    f = np.fft.fftfreq(n, 1 / fs)[k]
    return float(f), fs / n, float(np.abs(spec[k]) / n)


def burst_start(y: np.ndarray) -> int:
    """Index of the first rising edge of the envelope (quiet guard -> burst) in a capture."""
    env = np.abs(y) > 0.5 * np.abs(y).max()
    edges = np.flatnonzero(env[1:] & ~env[:-1]) + 1
    return int(edges[0]) if edges.size else 0


def body_tone_through_adi_pluto(uri: str, expected_level_dbfs: float | None, tol_db: float = 0.5) -> None:
    """A cyclic TX tone through ``adi.Pluto`` comes back within one FFT bin, at the expected level."""
    import adi

    sdr = adi.Pluto(uri)
    try:
        fs = 1_000_000
        sdr.sample_rate = fs
        sdr.rx_lo = sdr.tx_lo = 2_400_000_000
        sdr.rx_rf_bandwidth = sdr.tx_rf_bandwidth = fs
        sdr.gain_control_mode_chan0 = "manual"
        sdr.rx_hardwaregain_chan0 = 30.0
        sdr.tx_hardwaregain_chan0 = -10.0
        n_tx, f0 = 1000, 125_000.0  # 125 kHz: an integer number of cycles in the cyclic buffer
        tone = 2**14 * np.exp(2j * np.pi * f0 / fs * np.arange(n_tx))
        sdr.tx_cyclic_buffer = True
        sdr.tx(tone)
        sdr.rx_buffer_size = 8000
        sdr.rx()  # first buffer after the TX starts: thrown away, as on a board
        x = sdr.rx() / 2048.0
        f, df, amp = tone_peak(x, fs)
        assert abs(f - f0) <= df, f"tone at {f} Hz, sent {f0} Hz (bin {df} Hz)"
        if expected_level_dbfs is not None:
            level = 20 * np.log10(amp)
            assert abs(level - expected_level_dbfs) <= tol_db, f"level {level:.2f} dBFS, expected {expected_level_dbfs:.2f}"
    finally:
        sdr.tx_destroy_buffer()
        sdr.rx_destroy_buffer()


#: pyadi-iio properties a profile round trip changes, in the order they are restored, with the
#: profile key whose readback tolerance applies (hil.radio.pluto.readback_tolerance)
_RF_STATE = [("sample_rate", "sample_rate_hz"), ("rx_rf_bandwidth", "rx_rf_bandwidth_hz"),
             ("tx_rf_bandwidth", "tx_rf_bandwidth_hz"), ("rx_lo", "rx_lo_hz"), ("tx_lo", "tx_lo_hz"),
             ("gain_control_mode_chan0", None), ("tx_hardwaregain_chan0", "tx_gain_db"),
             ("rx_hardwaregain_chan0", "rx_gain_db")]


def rf_state(uri: str) -> dict:
    """The board's chan-0 RF settings (rate, bandwidths, LOs, gain mode, gains) read through adi.Pluto."""
    import adi

    sdr = adi.Pluto(uri)
    try:
        return {prop: getattr(sdr, prop) for prop, _ in _RF_STATE}
    finally:
        sdr.close()


def restore_rf_state(uri: str, state: dict) -> None:
    """Write back what :func:`rf_state` read (the RX gain only in manual mode: pyadi-iio skips it otherwise)."""
    import adi

    sdr = adi.Pluto(uri)
    try:
        for prop, _ in _RF_STATE:
            if prop == "rx_hardwaregain_chan0" and state["gain_control_mode_chan0"] != "manual":
                continue
            setattr(sdr, prop, state[prop])
    finally:
        sdr.close()


def assert_same_rf_state(got: dict, want: dict) -> None:
    for prop, key in _RF_STATE:
        if key is None:
            assert got[prop] == want[prop], (prop, got[prop], want[prop])
        elif not (prop == "rx_hardwaregain_chan0" and want["gain_control_mode_chan0"] != "manual"):
            assert abs(float(got[prop]) - float(want[prop])) <= readback_tolerance(key, want[prop]), (prop, got, want)


def body_profile_roundtrip(uri: str, profile: str = "pluto_1r1t") -> None:
    """Every profile attribute is written and read back (PlutoRadio raises if one does not stick).

    The board is left as it was found: its settings are read first and written back in a
    ``finally``, also when an assertion failed, and the restore is checked.
    """
    prof = load_profile(profile)
    original = rf_state(uri)
    try:
        with PlutoRadio(uri, prof) as r:
            dev = r._tx_dev
            rf = prof["rf"]
            assert dev.sample_rate == rf["sample_rate_hz"]
            assert dev.rx_lo == rf["rx_lo_hz"] and dev.tx_lo == rf["tx_lo_hz"]
            assert dev.rx_rf_bandwidth == rf["rx_rf_bandwidth_hz"]
            assert dev.tx_rf_bandwidth == rf["tx_rf_bandwidth_hz"]
            assert dev.gain_control_mode_chan0 == "manual"
            assert dev.rx_hardwaregain_chan0 == rf["rx_gain_db"][0]
            assert dev.tx_hardwaregain_chan0 == rf["tx_gain_db"][0]
            # a second, different profile: the new values are on the board
            prof2 = {**prof, "rf": {**rf, "sample_rate_hz": 2_500_000, "rx_lo_hz": 915_000_000, "tx_lo_hz": 915_000_000,
                                    "rx_gain_db": [20] * len(rf["rx_gain_db"]),
                                    "tx_gain_db": [-20.5] * len(rf["tx_gain_db"])}}
            r.configure(prof2)
            assert dev.sample_rate == 2_500_000 and dev.rx_lo == 915_000_000
            assert dev.rx_hardwaregain_chan0 == 20 and dev.tx_hardwaregain_chan0 == -20.5
    finally:
        restore_rf_state(uri, original)
    assert_same_rf_state(rf_state(uri), original)


def body_out_of_range(uri: str) -> None:
    """An out-of-range write fails in the driver with EINVAL; PlutoRadio refuses it before writing."""
    import adi

    sdr = adi.Pluto(uri)
    before = sdr.rx_lo
    with pytest.raises(OSError) as e:
        sdr.rx_lo = 10_000_000_000
    assert e.value.errno == 22  # -EINVAL, what iiod returns for the AD9361 driver's refusal
    assert sdr.rx_lo == before
    with pytest.raises(ValueError, match=r"rx_lo_hz = 10000000000 is outside the board's range \[\d+, \d+\]"):
        PlutoRadio(uri, {"rf": {"rx_lo_hz": 10_000_000_000}})
    with pytest.raises(ValueError, match=r"tx_gain_db\[channel 0\] = 5.0 dB is outside the board's range \[-89.75, 0\]"):
        PlutoRadio(uri, {"rf": {"tx_gain_db": [5]}})


def body_transceive_tone(uri: str, profile: str, expected_level_dbfs: list[float] | None) -> None:
    """PlutoRadio.transceive: (n_rx, m) complex64 capture holding the burst, right tone on each antenna."""
    with PlutoRadio(uri, profile) as r:
        n_ant = r.caps.n_tx
        fs = r.profile.sample_rate_hz
        n = 2000
        freqs = [50_000.0 * (a + 1) for a in range(n_ant)]
        x = np.stack([0.5 * np.exp(2j * np.pi * f / fs * np.arange(n)) for f in freqs]).astype(np.complex64)
        g = r.profile.guard_samples
        y = r.transceive(x)
        assert y.dtype == np.complex64 and y.shape == (r.caps.n_rx, n + 2 * g)
        raw = r.transceive(x, rx_samples=3 * n)
        assert raw.shape == (r.caps.n_rx, 3 * n)
        for a in range(n_ant):
            # one whole burst with its guards: quiet at both ends, the burst in the middle
            quiet = np.abs(y[a, : g // 2]).max() + np.abs(y[a, -g // 2 :]).max()
            assert quiet < 0.1 * np.abs(y[a]).max(), "the capture window is not centred on one burst"
            start = burst_start(y[a])
            assert abs(start - g) <= g // 2, start
            seg = y[a][start:][:n]
            assert seg.shape[0] == n
            f, df, amp = tone_peak(seg[n // 10: -n // 10], fs)
            assert abs(f - freqs[a]) <= df, (a, f, freqs[a])
            if expected_level_dbfs is not None:
                assert abs(20 * np.log10(amp) - expected_level_dbfs[a]) <= 0.5, (a, amp)


def open_sockets(pid: int | str = "self") -> int:
    """Number of sockets process ``pid`` (default: this one) holds open, from ``/proc/<pid>/fd`` (Linux)."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:  # closed between listdir and readlink
            pass
    return n


def wait_for_sockets(pid: int | str, want: int, timeout_s: float = 5.0) -> int:
    """Poll ``open_sockets(pid)`` until it equals ``want`` or ``timeout_s`` passes; returns the last count.

    A server closes its side of a connection when it reads EOF, a moment after the client closed.
    """
    deadline = time.monotonic() + timeout_s
    n = open_sockets(pid)
    while n != want and time.monotonic() < deadline:
        time.sleep(0.02)
        n = open_sockets(pid)
    return n


def body_no_leaks(uri: str, n: int = 100) -> None:
    """``n`` consecutive transceives leave no socket and no thread behind in this process."""
    x = (0.5 * np.exp(2j * np.pi * 0.01 * np.arange(256))).astype(np.complex64)
    with PlutoRadio(uri) as r:
        r.transceive(x)
        gc.collect()  # contexts of earlier tests that only a GC pass frees must not close during the count
        socks, threads = open_sockets(), threading.active_count()
        tasks = len(os.listdir("/proc/self/task"))
        for _ in range(n):
            r.transceive(x)
        gc.collect()
        assert open_sockets() == socks, f"{open_sockets()} sockets open after {n} transceives, {socks} before"
        assert threading.active_count() == threads
        # a joined thread leaves /proc/self/task a moment after join() returns: poll with a deadline
        deadline = time.monotonic() + 2.0
        while len(os.listdir("/proc/self/task")) > tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(os.listdir("/proc/self/task")) <= tasks


def body_closed_radio_refuses(uri: str) -> None:
    r = PlutoRadio(uri)
    r.close()
    r.close()  # idempotent
    with pytest.raises(RadioError, match="closed"):
        r.transceive(np.zeros(16, np.complex64))
