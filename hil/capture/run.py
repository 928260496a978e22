"""Run a capture sweep: sound the channel through a Radio and write SigMF recordings and a report.

[Note: stopping a capture]
SIGINT (Ctrl-C) and SIGTERM do not interrupt a capture in the middle of a frame: the first one sets a
stop flag that the loop checks after every frame; the loop then finishes the recording in progress
(atomically, see [Note: atomic recordings]) with ``hil:complete = false`` and ``hil:stopped`` saying
where it stopped (recording, LO step, ``slot`` = the slot of the last burst written), writes the
report, and returns a result whose ``stopped`` says the same. A second signal while finishing raises KeyboardInterrupt at once; the
recording in progress is then dropped (only its ``*.partial`` files existed, and they are removed).
An error from the radio also finishes the recording in progress before it propagates. Either way
the output directory holds only complete, valid recordings.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from hil._io import atomic_write_json
from hil.capture.sigmf_io import RecordingWriter, remove_partials
from hil.capture.sounder import PhySounder, Sounding, sounder_settings
from hil.capture.sweep import CaptureSweep
from hil.errors import CaptureError, ConfigError
from hil.radio.base import Radio

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptureResult:
    """What a capture produced.

    Attributes:
        out_dir: the output directory.
        recordings: the ``.sigmf-meta`` files written, in order.
        frames: frames detected and recorded.
        missed: sounding bursts in which no frame was detected (their IQ is recorded, no estimate).
        stopped: ``None`` when the sweep completed, else where and why it stopped.
        elapsed_s: wall time, s.
    """

    out_dir: Path
    recordings: tuple[Path, ...]
    frames: int
    missed: int
    stopped: dict | None
    elapsed_s: float
    report: dict = field(default_factory=dict, repr=False)


def make_sounder(sweep: CaptureSweep, radio: Radio, rng: np.random.Generator) -> PhySounder:
    """The sounder the sweep's ``[sounder]`` table asks for, sized to the radio's antennas.

    Raises:
        ConfigError: a key or value of ``[sounder]`` is wrong (the message names it).
    """
    kw = sounder_settings(sweep.sounder)
    try:
        return PhySounder(radio, rng=rng, sample_rate_hz=sweep.sample_rate_hz, **kw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"[sounder]: {e}; see docs/capture.md for the keys") from e


@contextlib.contextmanager
def stop_on_signals(event: threading.Event):
    """Turn the first SIGINT/SIGTERM into ``event.set()``; a second one raises KeyboardInterrupt.

    Only in the main thread (elsewhere signals cannot be handled and nothing is installed).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if event.is_set():
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: aborting")
        log.warning("%s: finishing the current frame and recording, then stopping", signal.Signals(signum).name)
        event.set()

    prev = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in prev:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in prev.items():
            signal.signal(s, h)


def run_capture(
    radio: Radio,
    sweep: CaptureSweep,
    out_dir: str | Path,
    *,
    rng: np.random.Generator,
    hw: str = "",
    radio_info: dict | None = None,
    stop_event: threading.Event | None = None,
    on_frame: Callable[[int, int, Sounding], None] | None = None,
    handle_signals: bool = True,
    write_report: bool = True,
) -> CaptureResult:
    """Sound the channel over the sweep and write one SigMF recording per (TX gain, RX gain) pair.

    Each recording holds a capture segment per LO step (and per repeat), with ``frames_per_step``
    sounding bursts each; see :mod:`hil.capture.keys` for what is stored.

    Args:
        radio: the radio to sound through (``transceive`` per frame).
        sweep: the sweep.
        out_dir: output directory; must not already hold recordings.
        rng: generator of the sounding frames' payloads.
        hw: ``core:hw`` text.
        radio_info: what to record about the radio (backend, URI, ...), stored under ``hil:radio``.
        stop_event: set it to stop after the current frame (see [Note: stopping a capture]).
        on_frame: called after every burst with (bursts done, bursts total, sounding).
        handle_signals: install the SIGINT/SIGTERM handler (main thread only).
        write_report: write report.json, report.md and plots at the end.

    Raises:
        CaptureError: ``out_dir`` already holds recordings, or a step missed more than ``max_missed``
            of its frames (the recording so far is kept).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.glob("*.sigmf-meta")):
        raise CaptureError(f"{out} already holds recordings; choose a new --out directory")
    remove_partials(out)
    stop_event = stop_event or threading.Event()
    sounder = make_sounder(sweep, radio, rng)
    caps = radio.caps
    config = {
        "sweep": sweep.to_dict(),
        "sounder": sounder.params(),
        "radio": {"n_tx": caps.n_tx, "n_rx": caps.n_rx, **(radio_info or {})},
        "hw": hw,
    }
    atomic_write_json(out / "config.json", config)
    total = sweep.frames_total
    done = frames = missed = 0
    recordings: list[Path] = []
    stopped: dict | None = None
    t_start = time.monotonic()
    sig = stop_on_signals(stop_event) if handle_signals else contextlib.nullcontext()
    with sig:
        rec_i = 0
        for tx_gain in sweep.tx_gain_db:
            for rx_gain in sweep.rx_gain_db:
                if stop_event.is_set():
                    break
                name = f"rec{rec_i:03d}"
                writer = RecordingWriter(
                    out, name, sample_rate_hz=sweep.sample_rate_hz, n_rx=caps.n_rx, n_tx=caps.n_tx,
                    hw=hw, description=f"hil channel sounding, tx_gain {tx_gain} dB, rx_gain {rx_gain} dB",
                    sounder={**sounder.params(), "frame_interval_s": sweep.frame_interval_s or None},
                    extra_global={"hil:radio": config["radio"],
                                  "hil:subcarrier_spacing_hz": sounder.subcarrier_spacing_hz},
                )
                slot = 0
                where: dict = {"recording": name}
                try:
                    t0 = time.monotonic()
                    for rep in range(sweep.repeats):
                        for lo_step, lo in enumerate(sweep.lo_hz):
                            if stop_event.is_set():
                                break
                            applied = radio.tune(lo_hz=lo, tx_gain_db=tx_gain, rx_gain_db=rx_gain,
                                                 sample_rate_hz=sweep.sample_rate_hz)
                            writer.begin_capture(lo_hz=lo, lo_step=lo_step, tx_gain_db=tx_gain, rx_gain_db=rx_gain,
                                                 rf_applied=applied)
                            step_missed = 0
                            for i in range(sweep.frames_per_step):
                                if stop_event.is_set():
                                    break
                                if sweep.frame_interval_s > 0:
                                    wait = t0 + slot * sweep.frame_interval_s - time.monotonic()
                                    if wait > 0 and stop_event.wait(wait):
                                        break
                                t_s = time.monotonic() - t0
                                s = sounder.sound()
                                writer.add_burst(
                                    s.capture, s.estimate, frame_start=s.frame_start, frame_len=s.frame_len or None,
                                    slot=slot, t_s=t_s, snr_db=s.snr_db, cfo_hz=s.cfo_hz, noise_var=s.noise_var,
                                    estimate_var=s.estimate_var,
                                )
                                # where a stop leaves the recording: the last burst written
                                where = {"recording": name, "repeat": rep, "lo_step": lo_step, "lo_hz": lo,
                                         "frame_in_step": i, "slot": slot}
                                slot += 1
                                done += 1
                                if s.estimate is None:
                                    missed += 1
                                    step_missed += 1
                                else:
                                    frames += 1
                                if on_frame is not None:
                                    on_frame(done, total, s)
                            if step_missed > sweep.max_missed * sweep.frames_per_step:
                                raise CaptureError(
                                    f"{name}, LO step {lo_step} ({lo / 1e6:.3f} MHz): {step_missed} of "
                                    f"{sweep.frames_per_step} sounding frames were not detected (max_missed "
                                    f"{sweep.max_missed}); raise the TX power/gain, check the wiring and the LO"
                                )
                    if stop_event.is_set():
                        stopped = {"reason": "signal", **where, "frames_in_recording": writer.n_frames}
                except BaseException as e:
                    if isinstance(e, KeyboardInterrupt):
                        writer.abort()
                        raise
                    info = {"reason": f"error: {type(e).__name__}: {e}", **where}
                    p = writer.close(stopped=info)
                    if p is not None:
                        recordings.append(p)
                    atomic_write_json(out / "stopped.json", info)
                    raise
                p = writer.close(stopped=stopped)
                if p is not None:
                    recordings.append(p)
                rec_i += 1
                if stopped is not None:
                    break
    elapsed = time.monotonic() - t_start
    if stopped is not None:
        log.warning("capture stopped at %s; %d complete recordings in %s", stopped, len(recordings), out)
    result = CaptureResult(out, tuple(recordings), frames, missed, stopped, elapsed)
    if write_report:
        from hil.capture.report import write_capture_report

        rep = write_capture_report(out, extra={"frames": frames, "missed": missed, "stopped": stopped,
                                               "elapsed_s": elapsed, "complete": stopped is None})
        result = CaptureResult(out, tuple(recordings), frames, missed, stopped, elapsed, rep)
    return result
