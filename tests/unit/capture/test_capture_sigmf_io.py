"""SigMF recordings: round trip, sigmf's own validator, checksums, atomic writes."""

from __future__ import annotations

import json
import re

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
                        sounder={"kind": "phy", "frame_interval_s": 1e-3})
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


# ---------------------------------------------------------------- hostile recordings


def _edit_meta(meta, fn):
    d = json.loads(meta.read_text())
    d = fn(d)
    meta.write_text(json.dumps(d))


def _set_global(key, value):
    def fn(d):
        d["global"][key] = value
        return d
    return fn


def _rewrite_estimates(meta, fn):
    """Replace the companion array by fn(array) and fix its checksum, so only the content is wrong."""
    import hashlib

    npy = meta.parent / "rec000.hil-channel.npy"
    np.save(npy, fn(np.load(npy)), allow_pickle=False)
    _edit_meta(meta, _set_global(K.CHANNEL_SHA512, hashlib.sha512(npy.read_bytes()).hexdigest()))


def _nan_estimate(meta):
    def fn(a):
        a[2, 0, 1, 0] = np.nan
        return a
    _rewrite_estimates(meta, fn)


def _duplicate_frame(meta):
    def fn(d):
        frames = [a for a in d["annotations"] if K.FRAME in a]
        frames[1][K.FRAME] = frames[0][K.FRAME]
        return d
    _edit_meta(meta, fn)


CASES = {
    "missing dataset": (lambda m: (m.parent / "rec000.sigmf-data").unlink(), "dataset rec000.sigmf-data is missing"),
    "datatype changed": (lambda m: _edit_meta(m, _set_global("core:datatype", "ci16_le")), "core:datatype"),
    "datatype cf32 to rf32": (lambda m: _edit_meta(m, _set_global("core:datatype", "rf32_le")), "core:datatype"),
    "truncated dataset": (lambda m: (m.parent / "rec000.sigmf-data").write_bytes(
        (m.parent / "rec000.sigmf-data").read_bytes()[:-16]), "bytes"),
    "NaN estimate": (_nan_estimate, "NaN or Inf (frames [2])"),
    "duplicate frame index": (_duplicate_frame, "duplicate frame indices"),
    "meta is a list": (lambda m: m.write_text("[1, 2]"), "JSON array"),
    "meta is null": (lambda m: m.write_text("null"), "JSON null"),
    "meta is a string": (lambda m: m.write_text('"x"'), "JSON string"),
    "meta nested deeply": (lambda m: m.write_text("[" * 100_000 + "]" * 100_000), "nested too deeply"),
    "meta is not UTF-8": (lambda m: m.write_bytes(b"\xff\xfe{"), "cannot read"),
    "global is a list": (lambda m: _edit_meta(m, lambda d: {**d, "global": []}), "'global' must be an object"),
    "captures is an object": (lambda m: _edit_meta(m, lambda d: {**d, "captures": {}}), "'captures' must be an array"),
    "annotation is a number": (lambda m: _edit_meta(m, lambda d: {**d, "annotations": [1]}), "'annotations'[0]"),
    "num_channels 0": (lambda m: _edit_meta(m, _set_global("core:num_channels", 0)), "core:num_channels"),
    "num_channels 3": (lambda m: _edit_meta(m, _set_global("core:num_channels", 3)), "core:num_channels"),
    "num_channels a string": (lambda m: _edit_meta(m, _set_global("core:num_channels", "2")), "core:num_channels"),
    "channel_file a number": (lambda m: _edit_meta(m, _set_global(K.CHANNEL_FILE, 5)), "must be a file name"),
    "channel_file a list": (lambda m: _edit_meta(m, _set_global(K.CHANNEL_FILE, ["a"])), "must be a file name"),
    "channel_file null": (lambda m: _edit_meta(m, _set_global(K.CHANNEL_FILE, None)), "must be a file name"),
    "sounder a list": (lambda m: _edit_meta(m, _set_global(K.SOUNDER, [])), "hil:sounder must be an object"),
    "sample rate huge int": (lambda m: _edit_meta(m, _set_global("core:sample_rate", 10**400)), "core:sample_rate"),
    "channel_file with a NUL byte": (lambda m: _edit_meta(m, _set_global(K.CHANNEL_FILE, "a\x00b")), "not a usable file name"),
    "channel_file too long": (lambda m: _edit_meta(m, _set_global(K.CHANNEL_FILE, "x" * 5000)), "is missing"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_inspect_reports_each_problem_on_one_line(tmp_path, case):
    from hil.capture.report import inspect_directory

    meta, _, _ = _write(tmp_path, np.random.default_rng(8))
    breakit, expect = CASES[case]
    breakit(meta)
    problems = validate_recording(meta)
    assert problems and any(expect in p for p in problems), problems
    assert all("\n" not in p for p in problems)
    with pytest.raises(CaptureError, match=re.escape(expect)):
        load_recording(meta)
    rep = inspect_directory(tmp_path, plots_dir=tmp_path / "plots")
    assert rep["all_valid"] is False and rep["recordings"][0]["problems"] == problems


@pytest.mark.parametrize("name", ["../x.npy", "/etc/passwd", "sub/../../x.npy", ".", "link.npy"])
def test_paths_in_a_meta_stay_inside_the_recording_folder(tmp_path, name):
    rec_dir = tmp_path / "rec"
    meta, _, _ = _write(rec_dir, np.random.default_rng(9))
    outside = tmp_path / "x.npy"
    np.save(outside, np.zeros((6, 1, 2, 2), np.complex64))
    (rec_dir / "link.npy").symlink_to(outside)
    for key in (K.CHANNEL_FILE, "core:dataset"):
        m2 = rec_dir / f"{key.replace(':', '_')}.sigmf-meta"
        m2.write_text(meta.read_text())
        (rec_dir / f"{key.replace(':', '_')}.sigmf-data").write_bytes((rec_dir / "rec000.sigmf-data").read_bytes())
        _edit_meta(m2, _set_global(key, name))
        problems = validate_recording(m2)
        assert any(f"{key} = {name!r} points outside the recording's folder" in p for p in problems), problems
        with pytest.raises(CaptureError, match="points outside"):
            load_recording(m2)


def test_cli_inspect_prints_no_traceback_on_any_meta_shape(tmp_path):
    from typer.testing import CliRunner

    from hil.cli import app

    for i, text in enumerate(["[]", "null", "3", '{"global": 1}', '{"global": {"core:num_channels": 3}}', "{"]):
        d = tmp_path / f"d{i}"
        d.mkdir()
        (d / "rec000.sigmf-meta").write_text(text)
        res = CliRunner().invoke(app, ["capture", "inspect", str(d)])
        assert res.exit_code == 1, (text, res.output, res.exception)
        assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), res.exception
        assert "Traceback" not in res.output and "NO:" in res.output


# ---------------------------------------------------------------- a second Ctrl-C while finishing


def test_second_interrupt_while_finishing_leaves_no_partial_file(tmp_path, monkeypatch):
    """KeyboardInterrupt in the dataset's fsync (the second Ctrl-C), then a real SIGINT in the middle of
    the cleanup: the cleanup finishes first, the interrupt comes after, nothing is left behind."""
    import os
    import signal
    import threading

    from hil.capture import sigmf_io
    from hil.capture.run import stop_on_signals

    rng = np.random.default_rng(11)
    w = RecordingWriter(tmp_path, "rec000", sample_rate_hz=1e6, n_rx=1, n_tx=1)
    w.begin_capture(lo_hz=1e9, lo_step=0)
    w.add_burst(_cn(rng, (1, 1000)), np.ones((1, 1)))

    def fsync_interrupted(fd):
        raise KeyboardInterrupt("second SIGINT")

    real_unlink = sigmf_io.Path.unlink
    calls = []

    def unlink_then_signal(self, *a, **k):
        calls.append(self.name)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # a third Ctrl-C lands inside the cleanup
        return real_unlink(self, *a, **k)

    monkeypatch.setattr(sigmf_io.os, "fsync", fsync_interrupted)
    monkeypatch.setattr(sigmf_io.Path, "unlink", unlink_then_signal)
    ev = threading.Event()
    ev.set()  # the first Ctrl-C already came: every further one raises KeyboardInterrupt
    with stop_on_signals(ev), pytest.raises(KeyboardInterrupt):
        w.close()
    assert calls and calls[0] == ".rec000.sigmf-data.partial"
    assert list(tmp_path.iterdir()) == []


def test_double_sigint_on_a_capture_process_leaves_no_partial_file(tmp_path):
    """A real `run_capture` in a child process: SIGINT after the first frame, a second SIGINT while the
    recording is being finished (its fsync made slow), then the folder holds no hidden file."""
    import os
    import select
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    script = textwrap.dedent(f"""
        import os, sys, time
        import numpy as np
        from hil.capture.run import run_capture
        from hil.capture.sweep import CaptureSweep
        from hil.channel.awgn import AWGN
        from hil.radio.loopback import LoopbackRadio

        real_fsync = os.fsync
        def slow_fsync(fd):
            print("finishing", flush=True)
            time.sleep(20)
            real_fsync(fd)
        said = []
        def on_frame(done, total, s):
            if not said:
                said.append(1)
                os.fsync = slow_fsync  # from now on: the next fsync is the recording's dataset
                print("frame", flush=True)
        rng = np.random.default_rng(0)
        sweep = CaptureSweep(frames_per_step=10_000, frame_interval_s=0.01,
                            sounder={{"pilot_len": 32, "quiet_len": 32}})
        run_capture(LoopbackRadio(AWGN(1, rng, noise_power=1e-3)), sweep, {str(tmp_path)!r}, rng=rng,
                    on_frame=on_frame, write_report=False)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        def wait_for(word, timeout=60):
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                r, _, _ = select.select([p.stdout], [], [], 0.5)
                if r:
                    line = p.stdout.readline().decode()
                    if line.strip() == word:
                        return
                    if not line:
                        break
            raise AssertionError(f"child never printed {word!r}: {p.stderr.read().decode()[-2000:]}")

        wait_for("frame")
        p.send_signal(signal.SIGINT)
        wait_for("finishing")
        p.send_signal(signal.SIGINT)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = p.stderr.read().decode()
    assert p.returncode != 0 and "KeyboardInterrupt" in err, err[-2000:]
    left = sorted(q.name for q in tmp_path.iterdir())
    assert left == ["config.json"], left


# ---------------------------------------------------------------- fuzz: the reader never crashes

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from hil.errors import HilError  # noqa: E402

_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_GLOBAL_KEYS = ["core:datatype", "core:num_channels", "core:sample_rate", "core:dataset", "core:metadata_only",
                "core:sha512", K.CHANNEL_FILE, K.CHANNEL_SHA512, K.CHANNEL_SHAPE, K.N_TX, K.N_RX, "hil:n_samples",
                K.SOUNDER, "core:extensions"]
_ITEM_KEYS = ["core:sample_start", "core:sample_count", "core:frequency", K.LO_STEP, K.FRAME, K.SLOT, K.T_S,
              K.SNR_DB, K.TIMING, K.NOISE_VAR]
_FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    d = tmp_path_factory.mktemp("template")
    meta, _, _ = _write(d, np.random.default_rng(12))
    return {p.name: p.read_bytes() for p in d.iterdir()}


def _check_reader(d):
    """load_recording gives a Recording or a HilError; validate_recording a list of one-line strings."""
    meta = d / "rec000.sigmf-meta"
    try:
        rec = load_recording(meta)
        assert rec.estimates.dtype == np.complex64 and rec.estimates.ndim == 4
    except HilError:
        pass
    problems = validate_recording(meta)
    assert isinstance(problems, list) and all(isinstance(p, str) and "\n" not in p for p in problems)


class _Dirs:
    n = 0

    @classmethod
    def fresh(cls, root, template):
        cls.n += 1
        d = root / f"ex{cls.n}"
        d.mkdir()
        for name, data in template.items():
            (d / name).write_bytes(data)
        return d


@_FUZZ
@given(meta=_json | st.binary(max_size=64))
def test_fuzz_any_meta_file(tmp_path, template, meta):
    d = _Dirs.fresh(tmp_path, template)
    m = d / "rec000.sigmf-meta"
    m.write_bytes(meta if isinstance(meta, bytes) else json.dumps(meta).encode())
    _check_reader(d)


@_FUZZ
@given(where=st.sampled_from(["global", "captures", "annotations"]),
       key=st.sampled_from(_GLOBAL_KEYS + _ITEM_KEYS), index=st.integers(0, 7), value=_json)
def test_fuzz_one_field_of_a_valid_meta(tmp_path, template, where, key, index, value):
    d = _Dirs.fresh(tmp_path, template)
    m = d / "rec000.sigmf-meta"
    meta = json.loads(m.read_text())
    if where == "global":
        meta["global"][key] = value
    else:
        items = meta[where]
        items[index % len(items)][key] = value
    m.write_text(json.dumps(meta))
    _check_reader(d)


@_FUZZ
@given(which=st.sampled_from(["rec000.sigmf-data", "rec000.hil-channel.npy"]), cut=st.integers(0, 400),
       junk=st.binary(max_size=200))
def test_fuzz_data_and_companion_bytes(tmp_path, template, which, cut, junk):
    d = _Dirs.fresh(tmp_path, template)
    f = d / which
    f.write_bytes(f.read_bytes()[:cut] + junk)
    _check_reader(d)
