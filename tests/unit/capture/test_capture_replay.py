"""ReplayChannel: plays recorded estimates back (frame and time clocks), noise, specs."""

from __future__ import annotations

import numpy as np
import pytest

from hil.capture.sigmf_io import RecordingWriter
from hil.channel import build_channel
from hil.channel.replay import ReplayChannel, build_replay, is_replay_spec, parse_replay_spec
from hil.errors import CaptureError


def _h(rng, f, n_sc=1, n_rx=2, n_tx=2):
    return ((rng.standard_normal((f, n_sc, n_rx, n_tx)) + 1j * rng.standard_normal((f, n_sc, n_rx, n_tx))) / np.sqrt(2)).astype(np.complex64)


def test_frame_mode_plays_the_sequence_and_loops():
    rng = np.random.default_rng(30)
    h = _h(rng, 5, n_rx=2, n_tx=3)
    ch = ReplayChannel(h)
    assert (ch.n_in, ch.n_out) == (3, 2)
    x = (rng.standard_normal((3, 40)) + 1j * rng.standard_normal((3, 40))).astype(np.complex64)
    for k in range(7):
        y = ch(x)
        np.testing.assert_allclose(y, h[k % 5, 0] @ x, rtol=1e-5, atol=1e-6)
    no_loop = ReplayChannel(h, loop=False)
    for _ in range(5):
        no_loop(x)
    with pytest.raises(ValueError, match="past the end"):
        no_loop(x)


def test_missing_slots_are_interpolated():
    h = np.zeros((3, 1, 1, 1), np.complex64)
    h[:, 0, 0, 0] = [1.0, 3.0, 5.0j]
    ch = ReplayChannel(h, slot=np.array([0, 2, 3]))
    vals = [ch.generate(1)["h"][0, 0, 0] for _ in range(4)]
    np.testing.assert_allclose(vals, [1.0, 2.0, 3.0, 5.0j])


def test_time_mode_interpolates_between_frames():
    h = np.zeros((2, 1, 1, 1), np.complex64)
    h[:, 0, 0, 0] = [1.0, 1j]
    # 1 ms per slot at 1 kS/s: one sample per slot; 10 kS/s: 10 samples per slot
    ch = ReplayChannel(h, mode="time", frame_interval_s=1e-3, sample_rate_hz=1e4)
    y = ch(np.ones((1, 20), np.complex64))
    a = np.arange(10) / 10
    np.testing.assert_allclose(y[0, :10], (1 - a) * 1.0 + a * 1j, atol=1e-6)
    np.testing.assert_allclose(y[0, 10:], (1 - a) * 1j + a * 1.0, atol=1e-6)  # wraps to slot 0
    with pytest.raises(ValueError, match="mode='time' needs"):
        ReplayChannel(h, mode="time")


def test_recorded_noise_power_and_normalize():
    rng = np.random.default_rng(31)
    h = 3.0 * _h(rng, 4)
    ch = ReplayChannel(h, np.random.default_rng(0), noise_var=0.02, noise="recorded", normalize=True)
    y = ch(np.zeros((2, 200_000), np.complex64))
    g = float(np.mean(np.abs(h) ** 2))
    # the noise is scaled with the channel: SNR kept; sample variance within 2 % (200k samples)
    assert np.mean(np.abs(y) ** 2) == pytest.approx(0.02 / g, rel=0.02)
    assert float(np.mean(np.abs(ch._h) ** 2)) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError, match="needs noise_var"):
        ReplayChannel(h, rng, noise="recorded")


def test_frequency_selective_replay_is_a_convolution():
    rng = np.random.default_rng(32)
    taps = np.zeros((1, 8, 1, 1), complex)
    taps[0, 0], taps[0, 3] = 1.0, 0.5j
    h = np.fft.fft(taps, axis=1)  # [1, n_sc, 1, 1]
    ch = ReplayChannel(h)
    x = (rng.standard_normal((1, 50)) + 1j * rng.standard_normal((1, 50))).astype(np.complex64)
    y = ch(x)
    ref = np.convolve(x[0], [1.0, 0, 0, 0.5j])[:50]
    np.testing.assert_allclose(y[0], ref, atol=1e-5)


def test_reverse_is_the_transpose():
    rng = np.random.default_rng(33)
    h = _h(rng, 3, n_rx=2, n_tx=3)
    rev = ReplayChannel(h).reverse()
    assert (rev.n_in, rev.n_out) == (2, 3)
    x = np.ones((2, 4), np.complex64)
    np.testing.assert_allclose(rev(x), h[0, 0].T @ x, rtol=1e-5)


def _recording(tmp_path, rng, f=6, n_rx=2, n_tx=1):
    w = RecordingWriter(tmp_path, "rec000", sample_rate_hz=1e6, n_rx=n_rx, n_tx=n_tx,
                        sounder={"frame_interval_s": 1e-3})
    w.begin_capture(lo_hz=2.4e9, lo_step=0)
    h = _h(rng, f, n_rx=n_rx, n_tx=n_tx)
    for i in range(f):
        w.add_burst(np.zeros((n_rx, 20), np.complex64), h[i], slot=i, noise_var=1e-2)
    w.close()
    return h


def test_specs_and_from_recording(tmp_path):
    rng = np.random.default_rng(34)
    h = _recording(tmp_path, rng)
    assert is_replay_spec(f"replay:{tmp_path}") and is_replay_spec({"replay": str(tmp_path)})
    assert not is_replay_spec({"fading": "rayleigh"})
    s = parse_replay_spec(f"replay:{tmp_path}?mode=time&normalize=true&n_rx=2")
    assert s == {"replay": str(tmp_path), "mode": "time", "normalize": True, "n_rx": 2}
    ch = build_replay(f"replay:{tmp_path}?noise=none", rng)
    x = np.ones((1, 8), np.complex64)
    np.testing.assert_allclose(ch(x), h[0, 0] @ x, rtol=1e-5)
    # a 1 -> 2 recording used for the 2 -> 1 direction plays transposed
    rev = build_replay({"replay": str(tmp_path), "n_tx": 2, "n_rx": 1, "noise": "none"}, rng)
    assert (rev.n_in, rev.n_out) == (2, 1)
    with pytest.raises(ValueError, match="record with matching antennas"):
        build_replay({"replay": str(tmp_path), "n_tx": 3, "n_rx": 3}, rng)
    with pytest.raises(ValueError, match="unknown key"):
        parse_replay_spec(f"replay:{tmp_path}?speed=2")
    with pytest.raises(ValueError, match="needs the capture directory"):
        parse_replay_spec("replay:")
    # snr_db replaces the recorded noise by AWGN at that SNR
    chain = build_replay({"replay": str(tmp_path), "snr_db": 10.0}, np.random.default_rng(1))
    y = chain(np.ones((1, 4096), np.complex64))
    p_sig = np.abs(h[0, 0, :, 0]) ** 2
    p_noise = np.mean(np.abs(y - h[0, 0] @ np.ones((1, 4096))) ** 2, axis=1)
    np.testing.assert_allclose(10 * np.log10(p_sig / p_noise), 10.0, atol=0.3)


def test_replay_through_build_channel_and_the_phy(tmp_path):
    """The path training takes: hil.channel's builders dispatch replay specs; the PHY decodes over them."""
    from hil.capture.sounder import PhySounder
    from hil.channel import build_channel, build_reciprocal_link
    from hil.radio.loopback import LoopbackRadio

    rng = np.random.default_rng(35)
    h = _recording(tmp_path, rng, f=4, n_rx=2, n_tx=2)
    ch = build_channel(f"replay:{tmp_path}?noise=none", rng)
    assert isinstance(ch, ReplayChannel) and (ch.n_in, ch.n_out) == (2, 2)
    link = build_reciprocal_link({"replay": str(tmp_path), "n_a": 2, "n_b": 2, "snr_db": 30.0}, rng)
    radio = LoopbackRadio(link.forward, link.reverse)
    for k in range(2):  # one slot per burst: the PHY sees the recorded frames in order
        est = PhySounder(radio, np.random.default_rng(k), mode="flat").sound().estimate[0]
        nmse = np.sum(np.abs(est - h[k, 0]) ** 2) / np.sum(np.abs(h[k, 0]) ** 2)
        assert nmse < 10 ** (-20 / 10)
    rev = PhySounder(radio.reverse(), np.random.default_rng(9), mode="flat").sound().estimate[0]
    assert np.sum(np.abs(rev - h[0, 0].T) ** 2) / np.sum(np.abs(h[0, 0]) ** 2) < 10 ** (-20 / 10)


def _stepped_recording(tmp_path, rng, n_lo=2, frames=5, repeats=2, missed=()):
    """A recording as run_capture lays it out: slots count straight through LO steps and repeats;
    ``missed`` = slots with no detected frame (IQ kept, no estimate)."""
    w = RecordingWriter(tmp_path, "rec000", sample_rate_hz=1e6, n_rx=2, n_tx=2, sounder={"frame_interval_s": 1e-3})
    h = _h(rng, n_lo * frames * repeats)
    slot, kept = 0, {}
    for _ in range(repeats):
        for lo in range(n_lo):
            w.begin_capture(lo_hz=2.4e9 + lo * 5e7, lo_step=lo)
            for _ in range(frames):
                est = None if slot in missed else h[slot]
                w.add_burst(np.zeros((2, 20), np.complex64), est, slot=slot, noise_var=1e-2)
                if est is not None:
                    kept.setdefault(lo, []).append(slot)
                slot += 1
    w.close()
    return h, kept


def test_replaying_one_lo_step_plays_only_its_frames(tmp_path):
    """Finding: 2 LO steps x 5 frames x 2 repeats, lo_step=0 gave 15 slots (5 interpolated between the
    repeats, i.e. across the other LO step) from 10 real frames."""
    from hil.channel.replay import replay_slots

    rng = np.random.default_rng(36)
    h, kept = _stepped_recording(tmp_path, rng)
    for lo in (0, 1):
        ch = ReplayChannel.from_recording(tmp_path, lo_step=lo, noise="none", loop=False)
        assert ch.n_slots == 10
        played = np.stack([ch.generate(8)["h"] for _ in range(10)])
        np.testing.assert_array_equal(played, h[kept[lo]])  # exactly the recorded frames, in order
    # several LO steps without a choice: refused, saying how to choose
    with pytest.raises(ValueError, match=r"lo_step=0"):
        ReplayChannel.from_recording(tmp_path, noise="none")
    with pytest.raises(ValueError, match="lo_step"):
        build_replay(f"replay:{tmp_path}?noise=none", rng)
    assert build_replay(f"replay:{tmp_path}?noise=none&lo_step=1", rng).n_slots == 10
    # a missed frame inside a segment is still a gap that is interpolated; a skipped segment is not
    np.testing.assert_array_equal(replay_slots(np.array([0, 2, 3, 10, 11]), np.array([0, 0, 0, 2, 2])),
                                  [0, 2, 3, 4, 5])
    np.testing.assert_array_equal(replay_slots(np.array([3, 5, 6]), np.array([0, 1, 1])), [0, 2, 3])


def test_missed_frame_inside_a_step_is_interpolated_but_not_across_repeats(tmp_path):
    rng = np.random.default_rng(37)
    h, kept = _stepped_recording(tmp_path, rng, missed={2})  # lo 0, first repeat, third frame
    ch = ReplayChannel.from_recording(tmp_path, lo_step=0, noise="none", loop=False)
    assert ch.n_slots == 10  # 9 frames + the one missed slot, nothing between the repeats
    played = np.stack([ch.generate(8)["h"] for _ in range(10)])
    np.testing.assert_allclose(played[2], (h[1] + h[3]) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(played[[0, 1, 3, 4]], h[[0, 1, 3, 4]])
    np.testing.assert_array_equal(played[5:], h[10:15])


def test_flat_channel_sounded_by_the_ofdm_phy_replays_as_one_tap():
    """Finding: the OFDM estimate kept the receiver's FFT-window back-off phase ramp and held the edge
    values over the guard band, so a flat channel replayed as taps 2-5 + 62 with 30 % in the strongest.
    Seed 3, fading none at 40 dB, with a 0.3-sample delay (a fractional timing): >= 90 % of the tap
    energy must be in one tap, tap 0 (measured: > 99.9 %)."""
    from hil.capture.sounder import PhySounder
    from hil.channel import Cascade, build_channel
    from hil.channel.impairments import FractionalDelay
    from hil.radio.loopback import LoopbackRadio

    ch = Cascade([FractionalDelay(2, 0.3),
                  build_channel({"fading": "none", "n_tx": 2, "n_rx": 2, "snr_db": 40.0}, np.random.default_rng(3))])
    sd = PhySounder(LoopbackRadio(ch), np.random.default_rng(4), mode="ofdm")
    est = np.stack([sd.sound().estimate for _ in range(3)])  # [3, 64, 2, 2]
    rep = ReplayChannel(est, noise="none")
    for _ in range(3):
        taps = rep.generate(100)["taps"]  # [64, 2, 2]
        pair = np.sum(np.abs(taps) ** 2, axis=0)
        assert np.count_nonzero(pair > 0.01 * pair.max()) == 2  # "none" is the identity: two direct paths
        for r in range(2):
            for t in range(2):
                p = np.abs(taps[:, r, t]) ** 2
                if pair[r, t] < 0.01 * pair.max():  # a cross path: estimation noise only
                    continue
                assert int(np.argmax(p)) == 0
                assert p[0] / p.sum() >= 0.90


def test_phy_sounder_needs_a_generator():
    from hil.capture.sounder import PhySounder
    from hil.channel import build_channel
    from hil.radio.loopback import LoopbackRadio

    radio = LoopbackRadio(build_channel({"fading": "none", "n_tx": 1, "n_rx": 1}, np.random.default_rng(0)))
    with pytest.raises(TypeError):
        PhySounder(radio, mode="flat")
    with pytest.raises(TypeError, match="Generator"):
        PhySounder(radio, 0, mode="flat")


def test_replay_of_a_malformed_meta_is_a_clean_error(tmp_path):
    w = RecordingWriter(tmp_path, "rec000", sample_rate_hz=1e6, n_rx=1, n_tx=1)
    w.begin_capture(lo_hz=1e9, lo_step=0)
    w.add_burst(np.ones((1, 10), np.complex64), np.ones((1, 1)))
    meta = w.close()
    for text in ("[1, 2]", "null", '{"global": {"hil:channel_file": "../x.npy"}}'):
        meta.write_text(text)
        with pytest.raises(CaptureError, match="rec000.sigmf-meta"):
            build_channel(f"replay:{tmp_path}?lo_step=0", np.random.default_rng(0))


def test_replay_reads_recordings_without_importing_hil_capture(tmp_path):
    """Layering: hil.channel sits below hil.capture; replaying a recording loads only hil._sigmf."""
    import subprocess
    import sys

    w = RecordingWriter(tmp_path, "rec000", sample_rate_hz=1e6, n_rx=1, n_tx=1)
    w.begin_capture(lo_hz=1e9, lo_step=0)
    for i in range(3):
        w.add_burst(np.ones((1, 10), np.complex64), np.ones((1, 1)), slot=i, noise_var=1e-3)
    w.close()
    code = (
        "import sys, numpy as np\n"
        "from hil.channel import build_channel\n"
        f"ch = build_channel({f'replay:{tmp_path}'!r}, np.random.default_rng(0))\n"
        "assert ch(np.ones((1, 4), np.complex64)).shape == (1, 4)\n"
        "print(sorted(m for m in sys.modules if m.startswith('hil.capture')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": __import__("os").pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
