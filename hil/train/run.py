"""One experiment: train the over-the-air model and the digital baseline (optionally the sweeps), write the report.

Output folder: ``config.toml`` (resolved), ``checkpoints/{ota,digital}.pt`` (every epoch; a rerun
resumes), ``sweeps.json`` (finished sweep points, reused on resume; only with ``sweeps=True``), ``report.json``, ``report.md``,
``history.png`` and ``accuracy_vs_*.png``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from hil._io import atomic_write_text, load_mapping
from hil.errors import ConfigError
from hil.ota.link import OTALink, ReciprocityCalibration, calibrate_reciprocity, watch_echo_cosine
from hil.train.config import RunConfig, to_toml
from hil.data import Dataset, load_dataset
from hil.train.links import open_transport
from hil.train.loop import EpochRecord, evaluate, load_checkpoint, train_model
from hil.train.models import build_model
from hil.train.report import write_json, write_report

log = logging.getLogger(__name__)

ProgressHook = Callable[[str, int, int, int, int], None]  # (tag, epoch, epochs, step, steps)


def _build(cfg: RunConfig, data: Dataset, ota: bool, link: OTALink | None):
    m = cfg.model
    return build_model(
        m.kind, data.image_shape, data.classes, hidden=m.hidden, cut_out=m.cut_out, kernel_size=m.kernel_size,
        ota=ota, link=link, n_tx=cfg.ota.n_tx, n_rx=cfg.ota.n_rx, channel_uses=cfg.ota.channel_uses,
        normalize=m.normalize, power=m.power,
    )


def _cal_state(cal: ReciprocityCalibration | None) -> dict | None:
    if cal is None:
        return None
    return {"cb": torch.from_numpy(np.asarray(cal.cb, np.complex64).copy()),
            "ca": torch.from_numpy(np.asarray(cal.ca, np.complex64).copy()), "residual": float(cal.residual)}


def _cal_load(d: dict | None) -> ReciprocityCalibration | None:
    if d is None:
        return None
    return ReciprocityCalibration(d["cb"].numpy().astype(np.complex64), d["ca"].numpy().astype(np.complex64),
                                  float(d["residual"]))


def train_ota(
    cfg: RunConfig,
    data: Dataset,
    checkpoint: Path | None = None,
    progress: ProgressHook | None = None,
    tag: str = "ota",
    epochs: int | None = None,
    log_dir: str | Path | None = None,
) -> dict:
    """Train the over-the-air model of ``cfg`` on ``data``. Returns a dict of results (history,
    accuracy, training frames, calibration frames, measured SNR, calibration, seconds).

    [Note: calibration and resume]
    Reciprocity calibration runs once before training, with pilots from a Generator seeded by
    ``[train] seed``; its frames are counted apart (``calibration_frames``), never in the per-epoch
    training frames. The checkpoint keeps the calibration, the frame counts and, for the in-process
    ``ideal`` transport, the channel's state: resuming a finished run calibrates nothing; resuming over
    ``ideal`` restores channel and calibration and continues exactly; over a radio (whose channel and
    phase references restart) an unfinished run calibrates again.

    ``log_dir``: write TensorBoard scalars to ``log_dir/<tag>`` (see [Note: run logging] in
    :mod:`hil.train.runlog`).
    """
    epochs = epochs or cfg.train.epochs
    ck = load_checkpoint(checkpoint) if checkpoint is not None else None
    extra = (ck or {}).get("extra") or {}
    complete = ck is not None and int(ck["epoch"]) >= epochs
    runlog = None
    transport, closer = open_transport(cfg.ota, vectors_per_burst=_vectors_per_burst(cfg, data))
    try:
        if log_dir is not None:
            from hil.train.runlog import RunLog

            runlog = RunLog(log_dir, tag)
        cal_rng = np.random.default_rng(cfg.train.seed)
        cal = None
        cal_frames = int(extra.get("calibration_frames", 0))
        restored = False
        if extra.get("transport") is not None and hasattr(transport, "load_state_dict"):
            transport.load_state_dict(extra["transport"])
            restored = True
        if extra.get("cal_rng") is not None:
            cal_rng.bit_generator.state = extra["cal_rng"]
        base = transport.frames  # training and calibration frames before this process (restored ideal link)
        new_cal = [0]  # calibration frames sent by this process

        def calibrate(n_bursts: int) -> ReciprocityCalibration:
            f0 = transport.frames
            c = calibrate_reciprocity(transport, cal_rng, n_bursts=n_bursts)
            new_cal[0] += transport.frames - f0
            return c

        if cfg.ota.gradient_mode == "reciprocity" and cfg.ota.calibrate:
            if complete or restored:
                cal = _cal_load(extra.get("calibration"))
            if cal is None and not complete:
                cal = calibrate(4)
        link = OTALink(transport, cfg.ota.gradient_mode, cal, hold_channel=cfg.ota.hold_channel)
        if restored and extra.get("reference") is not None:
            link.reference = extra["reference"].numpy().astype(np.complex64)
        torch.manual_seed(cfg.train.seed)
        model = _build(cfg, data, True, link)
        # the receiver's SNR per training burst, linear, summed (kept in the checkpoint, so a resumed
        # run reports the mean over all its bursts); see [Note: measured SNR]
        snr = {"sum": float(extra.get("snr_linear_sum", 0.0)), "n": int(extra.get("snr_count", 0))}
        # the draw's power gain the receiver sees in its own pilot estimate, linear, summed over the
        # same bursts; see [Note: the draw's gain]
        gain = {"sum": float(extra.get("gain_linear_sum", 0.0)), "n": int(extra.get("gain_count", 0))}

        steps_done = [0]
        cosines: list[float] = []
        steps_per_epoch = [1]
        if runlog is not None:
            watch_echo_cosine(link, transport, cosines.append)
            runlog.step_time()

        def on_step(ep, st, n):
            if link.last is not None and np.isfinite(link.last.snr_db):
                snr["sum"] += 10.0 ** (link.last.snr_db / 10.0)
                snr["n"] += 1
                if link.last.channel_estimate is not None:
                    gain["sum"] += draw_gain(link.last.channel_estimate)
                    gain["n"] += 1
            if runlog is not None:
                steps_per_epoch[0] = n
                last = link.last
                runlog.scalars((ep - 1) * n + st, {
                    "link/snr_db": None if last is None else last.snr_db - transport.symbol_gain_db,
                    "link/cfo_hz": None if last is None else last.cfo_hz,
                    "link/grad_cosine": float(np.mean(cosines)) if cosines else None,
                    "time/step_s": runlog.step_time()})
                cosines.clear()
            steps_done[0] += 1
            every = cfg.ota.recalibrate_every
            if link.calibration is not None and every > 0 and steps_done[0] % every == 0:
                link.calibration = calibrate(2)
            if progress:
                progress(tag, ep, epochs, st, n)

        def extra_state() -> dict:
            st = {"calibration": _cal_state(link.calibration), "calibration_frames": cal_frames + new_cal[0],
                  "cal_rng": cal_rng.bit_generator.state, "snr_linear_sum": snr["sum"], "snr_count": snr["n"],
                  "gain_linear_sum": gain["sum"], "gain_count": gain["n"]}
            if hasattr(transport, "state_dict"):
                st["transport"] = transport.state_dict()
                if link.reference is not None:
                    st["reference"] = torch.from_numpy(np.asarray(link.reference, np.complex64).copy())
            return st

        t0 = time.perf_counter()
        hist = train_model(
            model, data, epochs, cfg.train.batch_size, cfg.train.lr, cfg.train.seed,
            checkpoint=checkpoint, frames=lambda: transport.frames - base - new_cal[0], on_step=on_step,
            extra_state=extra_state,
            on_epoch=None if runlog is None else (lambda rec: runlog.epoch(rec.epoch * steps_per_epoch[0], rec)),
        )
        seconds = time.perf_counter() - t0
        cal = link.calibration
        return {
            "history": [asdict(r) for r in hist],
            "accuracy": hist[-1].test_accuracy,
            "frames": hist[-1].frames,
            "calibration_frames": cal_frames + new_cal[0],
            "measured_snr_db": _measured_snr_db(snr, transport.symbol_gain_db),
            "measured_es_n0_db": _measured_snr_db(snr, 0.0),
            "draw_gain_db": None if gain["n"] == 0 else float(10 * np.log10(gain["sum"] / gain["n"])),
            "calibration": None if cal is None else {"residual": cal.residual, "cb": _c(cal.cb), "ca": _c(cal.ca)},
            "seconds": seconds,
            "model": model,
        }
    finally:
        closer.close()
        if runlog is not None:
            runlog.close()


def _measured_snr_db(snr: dict, symbol_gain_db: float) -> float | None:
    """The receiver's mean SNR over the training bursts in the definition of ``[ota] snr_db``.

    [Note: measured SNR]
    The receiver estimates, per burst, the SNR per receive antenna and *symbol* after its matched
    filter for the channel of that burst: ``Es/N0 = per-sample SNR + 10 log10(sps)`` (docs/channels.md;
    ``Transport.symbol_gain_db``, 0 on ``ideal`` where a sample is a symbol). The configured ``snr_db``
    is per sample and averaged over the fading, i.e. over the *linear* power gain of the draws, so the
    bursts are averaged in linear units (a mean of dB values would sit below it by Jensen's
    inequality: -0.57 dB for a 2x2 Rayleigh draw) and ``symbol_gain_db`` is subtracted. What remains
    between this and ``snr_db`` is the power gain of the channel draw(s) the run saw: on a quasi-static
    channel one draw, whose gain in dB spreads by several dB around 0; over seeds it averages out."""
    if snr["n"] == 0:
        return None
    return float(10 * np.log10(snr["sum"] / snr["n"]) - symbol_gain_db)


def draw_gain(channel_estimate: np.ndarray, average_gain: float = 1.0) -> float:
    """The power gain of a channel draw relative to the model's average, linear, from the receiver's
    own pilot estimate ``H_hat [n_rx, n_tx]``: ``||H_hat||_F^2 / (n_rx n_tx) / average_gain``.

    [Note: the draw's gain]
    The configured ``snr_db`` is averaged over the fading (docs/channels.md), so on a quasi-static
    channel the receiver's measured SNR sits above or below it by the power gain of the draw it sees
    (a 2x2 Rayleigh draw: about +-1 dB over 5 seeds, more for one). The receiver never sees the true
    channel, but its pilot estimate carries the draw's gain: with the fading models' ``E|h_rj|^2 = 1``
    (``average_gain`` 1), ``measured - 10 log10(draw_gain)`` estimates the *average* SNR over the
    fading, the quantity that was configured. It includes the pilot estimate's noise
    (``+ N0 / pilot symbols`` per entry, under 0.2 dB at 10 dB) and, with unequal chain gains
    (``chain_gain_std_db``), the chain gains, which the SNR reference counts as part of the average.
    """
    h = np.asarray(channel_estimate)
    if h.ndim != 2 or h.size == 0:
        raise ValueError(f"draw_gain: expected a channel estimate shaped [n_rx, n_tx], got {h.shape}")
    if not average_gain > 0:
        raise ValueError(f"draw_gain: average_gain must be > 0, got {average_gain}")
    return float(np.sum(np.abs(h.astype(np.complex128)) ** 2) / h.size / average_gain)


def _vectors_per_burst(cfg: RunConfig, data: Dataset) -> int:
    """Activation vectors in one training burst: the batch (MLP) or the batch times the OTA convolution's
    output positions (CNN: after the first 2x2 pooling)."""
    b = int(cfg.train.batch_size)
    if cfg.model.kind == "cnn":
        h, w = data.image_shape[-2:]
        return b * max(h // 2, 1) * max(w // 2, 1)
    return b


def _c(z: np.ndarray) -> list:
    return [[float(v.real), float(v.imag)] for v in np.asarray(z).ravel()]


def train_digital(cfg: RunConfig, data: Dataset, checkpoint: Path | None = None, progress: ProgressHook | None = None,
                  log_dir: str | Path | None = None) -> dict:
    torch.manual_seed(cfg.train.seed)
    model = _build(cfg, data, False, None)
    runlog = None
    if log_dir is not None:
        from hil.train.runlog import RunLog

        runlog = RunLog(log_dir, "digital")
    steps_per_epoch = [1]

    def on_step(ep, st, n):
        steps_per_epoch[0] = n
        if runlog is not None:
            runlog.scalars((ep - 1) * n + st, {"time/step_s": runlog.step_time()})
        if progress:
            progress("digital", ep, cfg.train.epochs, st, n)

    t0 = time.perf_counter()
    try:
        hist = train_model(
            model, data, cfg.train.epochs, cfg.train.batch_size, cfg.train.lr, cfg.train.seed, checkpoint=checkpoint,
            on_step=on_step,
            on_epoch=None if runlog is None else (lambda rec: runlog.epoch(rec.epoch * steps_per_epoch[0], rec)),
        )
    finally:
        if runlog is not None:
            runlog.close()
    return {"history": [asdict(r) for r in hist], "accuracy": hist[-1].test_accuracy,
            "seconds": time.perf_counter() - t0, "model": model}


def run_sweeps(cfg: RunConfig, data: Dataset, out: Path, progress: ProgressHook | None = None) -> dict:
    """Trainings of ``cfg.sweep.epochs`` epochs for each configured SNR, rho and channel-use count, over
    the run's own transport (``[ota] transport``) unless ``[sweep] transport`` names another. Every
    point states its transport, epochs and SNR (per sample per receive antenna, averaged over the
    fading: docs/channels.md). Finished points are kept in ``out/sweeps.json`` and not redone on resume."""
    path = out / "sweeps.json"
    done: dict = load_mapping(path, "sweep results") if path.is_file() else {}
    sw = cfg.sweep
    transport = sw.transport or cfg.ota.transport
    plan = [("snr_db", v) for v in sw.snr_db] + [("rho", v) for v in sw.rho] + [("channel_uses", v) for v in sw.channel_uses]
    result: dict = {"snr_db": [], "rho": [], "channel_uses": []}
    for key, value in plan:
        name = f"{key}={value}/{cfg.ota.gradient_mode}/{transport}/{sw.epochs}"
        if name not in done:
            c = cfg.replace(ota={key: value, "transport": transport})
            r = train_ota(c, data, checkpoint=None, progress=progress, tag=f"sweep {key}={value}", epochs=sw.epochs)
            done[name] = {key: value, "gradient_mode": cfg.ota.gradient_mode, "accuracy": r["accuracy"],
                          "frames": r["frames"], "calibration_frames": r["calibration_frames"],
                          "epochs": sw.epochs, "transport": transport, "snr_db_configured": c.ota.snr_db,
                          "measured_snr_db": r["measured_snr_db"]}
            write_json(path, done)
        result[key].append(done[name])
    return result


def run_experiment(cfg: RunConfig, out: str | Path, progress: ProgressHook | None = None, sweeps: bool = False,
                   log_dir: str | Path | None = None) -> dict:
    """Train OTA and digital models of one seed (resuming from ``out``'s checkpoints), run the
    ``[sweep]`` points when ``sweeps``, write the report. Returns the report dict (also in
    ``out/report.json``). ``log_dir``: TensorBoard event files (:mod:`hil.train.runlog`). Several seeds: :func:`hil.train.seeds.run_seeds`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    resolved = to_toml(cfg)
    old = out / "config.toml"
    if old.is_file() and old.read_text() != resolved and ((out / "checkpoints").is_dir() or (out / "sweeps.json").is_file()):
        raise ConfigError(
            f"{out} holds a run with a different config ({old}); resuming it with this one would mix "
            "two experiments: use another --out, or delete that folder to start over"
        )
    atomic_write_text(old, resolved)  # decides whether a later run may resume: fsync'ed, never half-written
    t0 = time.perf_counter()
    prev = _previous_session(out)
    d = cfg.data
    data = load_dataset(d.name, d.path, d.test_fraction, cfg.train.seed, d.limit_train, d.limit_test)
    ck = out / "checkpoints"
    ota = train_ota(cfg, data, ck / "ota.pt", progress, log_dir=log_dir)
    dig = train_digital(cfg, data, ck / "digital.pt", progress, log_dir=log_dir) if cfg.train.digital else None
    sweep_points = run_sweeps(cfg, data, out, progress) if sweeps else {}
    report = {
        "accuracy": {"ota": ota["accuracy"], "digital": None if dig is None else dig["accuracy"]},
        "snr_db": cfg.ota.snr_db,
        "measured_snr_db": ota["measured_snr_db"],
        "measured_es_n0_db": ota["measured_es_n0_db"],
        "draw_gain_db": ota["draw_gain_db"],
        "measured_avg_snr_db": (None if ota["measured_snr_db"] is None or ota["draw_gain_db"] is None
                                else ota["measured_snr_db"] - ota["draw_gain_db"]),
        "seed": cfg.train.seed,
        "channel_seed": cfg.ota.channel_seed,
        "gradient_mode": cfg.ota.gradient_mode,
        "transport": cfg.ota.transport,
        "frames": ota["frames"],
        "calibration_frames": ota["calibration_frames"],
        "epochs": len(ota["history"]),
        "rho": cfg.ota.rho,
        "n_tx": cfg.ota.n_tx,
        "n_rx": cfg.ota.n_rx,
        "channel_uses": cfg.ota.channel_uses,
        "hold_channel": cfg.ota.hold_channel,
        "channel": cfg.ota.channel or None,
        "dataset": data.name,
        "model": cfg.model.kind,
        "train_samples": len(data.x_train),
        "test_samples": len(data.x_test),
        "calibration": ota["calibration"],
        "seconds": time.perf_counter() - t0,
        "train_seconds": {"ota": ota["seconds"], "digital": None if dig is None else dig["seconds"]},
        "sessions": [],
        "history": {"ota": ota["history"], "digital": [] if dig is None else dig["history"]},
        "sweeps": sweep_points,
        "config": cfg.to_dict(),
    }
    _merge_sessions(report, prev)
    write_report(out, report)
    return report


def _previous_session(out: Path) -> dict | None:
    """What earlier sessions in ``out`` left: their report (a finished run) or, after a crash, a marker
    that checkpoints exist. None for a fresh folder. See [Note: resumed reports]."""
    path = out / "report.json"
    if path.is_file():
        try:
            return load_mapping(path, "previous report")
        except ConfigError as e:  # a damaged report: the checkpoints still hold the training state
            log.warning("ignoring the previous report %s: %s", path, e)
    if (out / "checkpoints").is_dir() and any((out / "checkpoints").glob("*.pt")):
        return {}
    return None


def _merge_sessions(report: dict, prev: dict | None) -> None:
    """[Note: resumed reports]
    Rerunning ``hil train`` with the same ``--out`` resumes. The report then describes the whole
    run, not the last session: the wall and training times are summed over sessions, the measured
    SNR is the mean over every training step of every session (its sum and count travel in the
    checkpoint, so a crash loses only the unfinished epoch), and ``sessions`` lists each session's
    wall time; report.md says the run was resumed. Rerunning a finished run sends no frame and
    changes nothing but the session list."""
    if prev is None:
        report["sessions"] = [{"seconds": report["seconds"]}]
        return
    old = prev.get("sessions") or ([{"seconds": prev["seconds"]}] if "seconds" in prev else [{"seconds": None}])
    report["sessions"] = list(old) + [{"seconds": report["seconds"], "resumed": True}]
    report["seconds"] = sum(s["seconds"] or 0.0 for s in report["sessions"])
    for k, v in (prev.get("train_seconds") or {}).items():
        if v is not None and report["train_seconds"].get(k) is not None:
            report["train_seconds"][k] += v
    for k in ("measured_snr_db", "measured_avg_snr_db"):
        if report.get(k) is None:
            report[k] = prev.get(k)


__all__ = ["EpochRecord", "draw_gain", "evaluate", "run_experiment", "run_sweeps", "train_digital", "train_ota", "ReciprocityCalibration"]
