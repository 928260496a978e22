"""SigMF recordings: round trip, sigmf's own validator, checksums, atomic writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sigmf import sigmffile
from sigmf import validate as sigmf_validate

from hil.capture import keys as K
from hil.capture.sigmf_io import (
    RecordingWriter,
    list_recordings,
    load_recording,
    load_recordings,
    remove_partials,
    validate_recording,
)
from hil.errors import CaptureError


def _cn(rng, shape, scale=0.1):
    return ((rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * scale).astype(np.complex64)


def _write(tmp_path, rng, n_rx=2, n_tx=2, n_sc=1, frames=6, name="rec000"):
    w = RecordingWriter(tmp_path, name, sample_rate_hz=1e6, n_rx=n_rx, n_tx=n_tx, hw="unit test",
                        sounder={"kind": "pilot", "frame_interval_s": 1e-3})
    bursts, ests = [], []
    for step, lo in enumerate((2.4e9, 2.45e9)):
        w.begin_capture(lo_hz=lo, lo_step=step, tx_gain_db=-10.0, rx_gain_db=30.0)
        for i in range(frames // 2):
            x = _cn(rng, (n_rx, 300))
            h = _cn(rng, (n_sc, n_rx, n_tx), 1.0)
            w.add_burst(x, h, frame_start=40, frame_len=200, slot=len(ests), t_s=len(ests) * 1e-3,
                        snr_db=20.0 + i, cfo_hz=100.0 * i, noise_var=1e-3, estimate_var=1e-5)
            bursts.append(x)
            ests.append(h)
        w.add_burst(_cn(rng, (n_rx, 300)), None)  # a burst without a detected frame
        bursts.append(None)
    return w.close(), bursts, np.stack(ests)


def test_roundtrip_and_sigmf_validator(tmp_path):
    rng = np.random.default_rng(1)
    meta, bursts, ests = _write(tmp_path, rng)
    assert validate_recording(meta) == []
    # sigmf's own command-line validator (exits 0 on success, 1 on failure)
    try:
        sigmf_validate.main((str(meta),))
        code = 0
    except SystemExit as e:
        code = e.code
    assert code == 0
    rec = load_recording(meta)
    assert rec.n_rx == 2 and rec.n_tx == 2 and rec.n_frames == 6
    np.testing.assert_array_equal(rec.estimates, ests.astype(np.complex64))
    np.testing.assert_array_equal(rec.frames.lo_hz, [2.4e9] * 3 + [2.45e9] * 3)
    np.testing.assert_array_equal(rec.frames.slot, np.arange(6))
    np.testing.assert_allclose(rec.frames.snr_db, [20, 21, 22] * 2)
    # multi-channel IQ: sigmf reads it back as (samples, channels); we return (channels, samples)
    iq = rec.samples()
    assert iq.shape == (2, 8 * 300)
    np.testing.assert_array_equal(iq[:, :300], bursts[0])
    sf = sigmffile.fromfile(str(meta))
    assert sf.get_global_field("core:num_channels") == 2
    assert sf.get_global_field("core:datatype") == "cf32_le"
    assert len(sf.get_captures()) == 2 and sf.get_captures()[1]["core:frequency"] == 2.45e9
    ann = sf.get_annotations()
    assert len(ann) == 6 and ann[0]["core:sample_start"] == 40 and ann[0]["core:sample_count"] == 200
    assert ann[0][K.SNR_DB] == 20.0
    g = sf.get_global_info()
    assert {"name": "hil", "version": K.EXTENSION_VERSION, "optional": True} in g["core:extensions"]
    assert g[K.CHANNEL_FILE] == "rec000.hil-channel.npy" and g[K.COMPLETE] is True


def test_subcarrier_estimates_roundtrip(tmp_path):
    meta, _, ests = _write(tmp_path, np.random.default_rng(2), n_rx=1, n_tx=3, n_sc=16)
    rec = load_recording(meta)
    assert rec.estimates.shape == (6, 16, 1, 3)
    np.testing.assert_array_equal(rec.estimates, ests.astype(np.complex64))
    assert validate_recording(meta) == []


def test_corrupted_dataset_and_companion_are_reported(tmp_path):
    meta, _, _ = _write(tmp_path, np.random.default_rng(3))
    data = tmp_path / "rec000.sigmf-data"
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0xFF
    data.write_bytes(bytes(raw))
    problems = validate_recording(meta)
    assert problems and "hash" in problems[0].lower()
    meta2, _, _ = _write(tmp_path / "b", np.random.default_rng(3))
    npy = tmp_path / "b" / "rec000.hil-channel.npy"
    arr = np.load(npy)
    arr[0, 0, 0, 0] += 1
    np.save(npy, arr)
    problems = validate_recording(meta2)
    assert problems and "corrupted" in problems[0]
    with pytest.raises(CaptureError, match="corrupted"):
        load_recording(meta2)


def test_undeclared_extension_is_invalid(tmp_path):
    meta, _, _ = _write(tmp_path, np.random.default_rng(4))
    d = json.loads(meta.read_text())
    d["global"]["core:extensions"] = []
    meta.write_text(json.dumps(d))
    assert any("undeclared" in p.lower() for p in validate_recording(meta))


def test_abort_and_exception_leave_nothing(tmp_path):
    rng = np.random.default_rng(5)
    with pytest.raises(RuntimeError):
        with RecordingWriter(tmp_path, "rec000", sample_rate_hz=1e6, n_rx=1, n_tx=1) as w:
            w.begin_capture(lo_hz=1e9, lo_step=0)
            w.add_burst(_cn(rng, (1, 100)), np.ones((1, 1)))
            assert any(p.name.endswith(".partial") for p in tmp_path.iterdir())
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    assert list_recordings(tmp_path) == []


def test_partials_are_ignored_and_removed(tmp_path):
    meta, _, _ = _write(tmp_path, np.random.default_rng(6))
    (tmp_path / ".rec001.sigmf-data.partial").write_bytes(b"\0" * 64)
    assert list_recordings(tmp_path) == [meta]
    assert [p.name for p in remove_partials(tmp_path)] == [".rec001.sigmf-data.partial"]
    assert len(load_recordings(tmp_path)) == 1


def test_empty_recording_writes_nothing(tmp_path):
    w = RecordingWriter(tmp_path, "rec000", sample_rate_hz=1e6, n_rx=1, n_tx=1)
    w.begin_capture(lo_hz=1e9, lo_step=0)
    assert w.close() is None
    assert list(tmp_path.iterdir()) == []


def test_stopped_recording_is_valid_and_says_where(tmp_path):
    rng = np.random.default_rng(7)
    w = RecordingWriter(tmp_path, "rec000", sample_rate_hz=1e6, n_rx=1, n_tx=1)
    w.begin_capture(lo_hz=1e9, lo_step=0)
    w.add_burst(_cn(rng, (1, 100)), np.ones((1, 1)), snr_db=float("nan"))
    w.begin_capture(lo_hz=2e9, lo_step=1)  # empty trailing segment: dropped
    meta = w.close(stopped={"reason": "signal", "lo_step": 1, "slot": 1})
    assert validate_recording(meta) == []
    g = json.loads(meta.read_text())
    assert g["global"][K.COMPLETE] is False and g["global"][K.STOPPED]["slot"] == 1
    assert len(g["captures"]) == 1
    assert np.isnan(load_recording(meta).frames.snr_db[0])


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="plain file name"):
        RecordingWriter(tmp_path, "a/b", sample_rate_hz=1e6, n_rx=1, n_tx=1)
    with pytest.raises(ValueError, match="sample_rate_hz"):
        RecordingWriter(tmp_path, "x", sample_rate_hz=0, n_rx=1, n_tx=1)
    w = RecordingWriter(tmp_path, "x", sample_rate_hz=1e6, n_rx=2, n_tx=1)
    with pytest.raises(CaptureError, match="begin_capture"):
        w.add_burst(np.zeros((2, 10), np.complex64))
    w.begin_capture(lo_hz=1e9, lo_step=0)
    with pytest.raises(ValueError, match="expected shape"):
        w.add_burst(np.zeros((3, 10), np.complex64))
    with pytest.raises(ValueError, match="estimate"):
        w.add_burst(np.zeros((2, 10), np.complex64), np.zeros((1, 3, 3)))
    w.abort()
    with pytest.raises(CaptureError, match="neither"):
        list_recordings(tmp_path / "missing")
