"""run_capture over LoopbackRadio: recordings, statistics, stop and error paths, report, CLI inspect."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from typer.testing import CliRunner

from hil.capture.run import run_capture
from hil.capture.sigmf_io import list_recordings, load_recording, validate_recording
from hil.capture.stats import recording_stats
from hil.capture.sweep import CaptureSweep
from hil.cli import app
from hil.errors import CaptureError, ConfigError, RadioError
from hil.radio.loopback import LoopbackRadio

A = 0.35
# a short sounding frame: 64 pilot symbols per antenna (2x2: 256 pilot samples per coefficient, as the
# earlier 8 x 31-sample Zadoff-Chu blocks gave 248), 32 quiet symbols
FAST = {"pilot_len": 64, "quiet_len": 32}


def test_capture_recovers_the_channel_and_writes_a_report(tmp_path, gm_channel):
    # seed 40: 2x2 Rician K = 5 dB, rho = 0.8 per burst, SNR 12 dB; 2 LO steps x 100 frames.
    # The estimators' accuracy is tested in test_capture_stats.py and, at the issue's tolerances, through
    # the ZMQ server in tests/sim/test_capture_zmq.py; here: the pipeline, with 200-frame tolerances.
    rng = np.random.default_rng(40)
    ch = gm_channel(2, 2, rng, rho=0.8, k_db=5.0, n0=2 * A**2 / 10 ** 1.2)
    sweep = CaptureSweep(lo_hz=(2.40e9, 2.45e9), frames_per_step=100, sounder=FAST)
    res = run_capture(LoopbackRadio(ch), sweep, tmp_path, rng=rng, handle_signals=False, hw="loopback")
    assert res.stopped is None and res.frames == 200 and res.missed == 0
    assert [p.name for p in res.recordings] == ["rec000.sigmf-meta"]
    assert validate_recording(res.recordings[0]) == []
    rec = load_recording(res.recordings[0])
    assert len(rec.captures) == 2 and rec.captures[1]["core:frequency"] == 2.45e9
    st = recording_stats(rec)
    # tolerances: SNR 0.5 dB, rho 0.06, K 1.0 dB (200 frames x 4 pairs: std ~0.015 and ~0.5 dB; K at
    # 2 sigma as in tests/sim/test_capture_zmq.py)
    assert abs(st.snr.mean_db - 12.0) < 0.5
    assert abs(st.gauss_markov_rho - 0.8) < 0.06
    assert abs(st.rician_k_db - 5.0) < 1.0
    for f in ("report.json", "report.md", "config.json", "h_time.png", "h_freq.png", "snr_time.png",
              "cfo_time.png", "pdp.png"):
        assert (tmp_path / f).stat().st_size > 0, f
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["all_valid"] and rep["complete"] and rep["recordings"][0]["stats"]["n_frames"] == 200
    assert "stats_per_lo_step" in rep["recordings"][0]
    assert "Gauss-Markov rho" in (tmp_path / "report.md").read_text()
    with pytest.raises(CaptureError, match="already holds recordings"):
        run_capture(LoopbackRadio(ch), sweep, tmp_path, rng=rng, handle_signals=False)


def test_one_recording_per_gain_pair(tmp_path, gm_channel):
    rng = np.random.default_rng(41)
    sweep = CaptureSweep(tx_gain_db=(-10.0, 0.0), rx_gain_db=(20.0,), frames_per_step=3, sounder=FAST)
    res = run_capture(LoopbackRadio(gm_channel(1, 1, rng)), sweep, tmp_path, rng=rng, handle_signals=False,
                      write_report=False)
    assert [p.name for p in res.recordings] == ["rec000.sigmf-meta", "rec001.sigmf-meta"]
    seg = load_recording(res.recordings[1]).captures[0]
    assert seg["hil:tx_gain_db"] == 0.0 and seg["hil:rf_applied"] is False  # loopback: labels only


def test_stop_event_leaves_a_valid_recording_that_says_where(tmp_path, gm_channel):
    rng = np.random.default_rng(42)
    stop = threading.Event()
    sweep = CaptureSweep(lo_hz=(1e9, 2e9), frames_per_step=50, tx_gain_db=(0.0, 1.0), sounder=FAST)

    def on_frame(done, total, s):
        if done == 60:  # inside LO step 1 of rec000
            stop.set()

    res = run_capture(LoopbackRadio(gm_channel(2, 2, rng)), sweep, tmp_path, rng=rng, stop_event=stop,
                      on_frame=on_frame, handle_signals=False, write_report=False)
    assert res.stopped["recording"] == "rec000" and res.stopped["lo_step"] == 1 and res.stopped["slot"] == 59
    assert [p.name for p in list_recordings(tmp_path)] == ["rec000.sigmf-meta"]
    assert validate_recording(res.recordings[0]) == []
    g = load_recording(res.recordings[0]).global_info
    assert g["hil:complete"] is False and g["hil:stopped"]["slot"] == 59
    assert load_recording(res.recordings[0]).n_frames == 60
    assert not list(tmp_path.glob(".*partial*"))


class _FailingRadio(LoopbackRadio):
    def __init__(self, ch, fail_at):
        super().__init__(ch)
        self.fail_at = fail_at

    def transceive(self, tx_burst, rx_samples=None):
        if self.bursts == self.fail_at:
            raise RadioError("device vanished")
        return super().transceive(tx_burst, rx_samples)


def test_radio_error_keeps_what_was_recorded(tmp_path, gm_channel):
    rng = np.random.default_rng(43)
    sweep = CaptureSweep(frames_per_step=20, sounder=FAST)
    with pytest.raises(RadioError, match="vanished"):
        run_capture(_FailingRadio(gm_channel(1, 1, rng), 7), sweep, tmp_path, rng=rng, handle_signals=False,
                    write_report=False)
    (meta,) = list_recordings(tmp_path)
    assert validate_recording(meta) == []
    assert load_recording(meta).n_frames == 7
    assert "vanished" in json.loads((tmp_path / "stopped.json").read_text())["reason"]


def test_too_many_missed_frames_fail(tmp_path, noise_channel):
    rng = np.random.default_rng(44)
    with pytest.raises(CaptureError, match="were not detected"):
        run_capture(LoopbackRadio(noise_channel(1, 1, rng)), CaptureSweep(frames_per_step=4, sounder=FAST),
                    tmp_path, rng=rng, handle_signals=False, write_report=False)
    (meta,) = list_recordings(tmp_path)  # the IQ of the misses is kept, valid
    assert validate_recording(meta) == [] and load_recording(meta).n_frames == 0


def test_sweep_file(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('lo_hz = [1e9, 2e9]\nframes_per_step = 10\n[sounder]\npilot_len = 61\n')
    s = CaptureSweep.from_file(p)
    assert s.lo_hz == (1e9, 2e9) and s.sounder == {"pilot_len": 61} and s.frames_total == 20
    p.write_text("[sounder]\nseq_len = 61\n")  # a key of the earlier pilot sounder: refused at load, says what replaces it
    with pytest.raises(ConfigError, match=r"\[sounder\]\.seq_len: removed.*pilot_len"):
        CaptureSweep.from_file(p)
    p.write_text("lo = 1\n")
    with pytest.raises(ConfigError, match=r"^\[sweep\]\.lo: unknown key; valid: sample_rate_hz, lo_hz"):
        CaptureSweep.from_file(p)
    p.write_text("frames_per_step = 1\n")
    with pytest.raises(ConfigError, match=r"^\[sweep\]\.frames_per_step: out of range \(got 1\); valid: >= 2"):
        CaptureSweep.from_file(p)
    p.write_text("lo_hz = 2.4e9\n")  # one LO may be given without a list
    assert CaptureSweep.from_file(p).lo_hz == (2.4e9,)
    p.write_text('lo_hz = [1e9, "x"]\n')
    with pytest.raises(ConfigError, match=r"^\[sweep\]\.lo_hz\[1\]: must be a number \(got 'x'\)"):
        CaptureSweep.from_file(p)


def test_cli_inspect(tmp_path, gm_channel):
    rng = np.random.default_rng(45)
    run_capture(LoopbackRadio(gm_channel(2, 2, rng)), CaptureSweep(frames_per_step=20, sounder=FAST), tmp_path,
                rng=rng, handle_signals=False, write_report=False)
    r = CliRunner().invoke(app, ["capture", "inspect", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "rec000" in r.output and "yes" in r.output
    assert (tmp_path / "inspect" / "rec000_h_time.png").exists()
    assert json.loads((tmp_path / "inspect" / "inspect.json").read_text())["all_valid"]
    data = tmp_path / "rec000.sigmf-data"
    data.write_bytes(data.read_bytes()[:-8])  # truncate: checksum and size no longer match
    r = CliRunner().invoke(app, ["capture", "inspect", str(tmp_path)])
    assert r.exit_code == 1
    r = CliRunner().invoke(app, ["capture", "--radio", "zmq"])
    assert r.exit_code == 2 and "--uri" in r.output


def test_tune_applies_a_pluto_profile_and_a_simulated_radio_only_labels(gm_channel):
    from hil.radio.pluto import PlutoProfile, PlutoRadio

    r = PlutoRadio.__new__(PlutoRadio)  # no board: configure() is replaced by a recorder
    r.profile = PlutoProfile(rx_enabled_channels=(0,), tx_enabled_channels=(0,))
    applied: list = []
    r.configure = applied.append
    assert r.tune(lo_hz=2.45e9, tx_gain_db=-5.0, rx_gain_db=40.0, sample_rate_hz=2e6) is True
    p = applied[-1]
    assert (p.rx_lo_hz, p.tx_lo_hz, p.tx_gain_db, p.rx_gain_db, p.sample_rate_hz) == (
        2_450_000_000, 2_450_000_000, (-5.0,), (40.0,), 2_000_000)
    assert r.tune(lo_hz=1e9, sample_rate_hz=1e6) is True  # gains not given: the profile's stay
    assert applied[-1].rx_lo_hz == 1_000_000_000 and applied[-1].rx_gain_db == r.profile.rx_gain_db
    assert LoopbackRadio(gm_channel(1, 1, np.random.default_rng(0))).tune(
        lo_hz=1e9, tx_gain_db=0, rx_gain_db=0, sample_rate_hz=1e6) is False


def test_signals_set_the_stop_flag_then_abort():
    import os
    import signal

    from hil.capture.run import stop_on_signals

    ev = threading.Event()
    before = signal.getsignal(signal.SIGINT)
    with stop_on_signals(ev):
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to the main thread before kill() returns
        assert ev.is_set()
        with pytest.raises(KeyboardInterrupt, match="second SIGINT"):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # the previous handler is back


def _strict_json(path):
    def no_constant(c):
        raise AssertionError(f"{path.name} holds the non-JSON constant {c}")

    return json.loads(path.read_text(), parse_constant=no_constant)


def test_report_and_metadata_are_strict_json_and_keep_an_infinite_coherence_time(tmp_path, gm_channel):
    # seed 44: a static channel (rho = 1): the coherence time is longer than the recording (inf), the
    # complex rho undefined (NaN); both must come out as strict JSON (null), inf flagged and shown as "inf"
    rng = np.random.default_rng(44)
    ch = gm_channel(1, 1, rng, rho=1.0, k_db=None, n0=A**2 / 10 ** 2)
    res = run_capture(LoopbackRadio(ch), CaptureSweep(frames_per_step=20, sounder=FAST), tmp_path, rng=rng,
                      handle_signals=False)
    rep = _strict_json(tmp_path / "report.json")
    st = rep["recordings"][0]["stats"]
    assert st["coherence_time_s"] is None and st["coherence_time_beyond_recording"] is True
    assert st["gauss_markov_rho"] is None
    assert "| coherence time (R < 0.5) | inf [" in (tmp_path / "report.md").read_text()  # then its interval
    assert res.report == rep
    _strict_json(tmp_path / "config.json")
    meta = _strict_json(res.recordings[0])
    assert meta["global"]["hil:channel_file"] == "rec000.hil-channel.npy"
    assert not list(tmp_path.glob(".*partial*"))
