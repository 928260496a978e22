"""One experiment: train the over-the-air model and the digital baseline, run the sweeps, write the report.

Output folder: ``config.toml`` (resolved), ``checkpoints/{ota,digital}.pt`` (every epoch; a rerun
resumes), ``sweeps.json`` (finished sweep points, reused on resume), ``report.json``, ``report.md``,
``history.png`` and ``accuracy_vs_*.png``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from hil.errors import ConfigError
from hil.ota.link import OTALink, ReciprocityCalibration, calibrate_reciprocity
from hil.train.config import RunConfig, to_toml
from hil.train.data import Dataset, load_dataset
from hil.train.links import open_transport
from hil.train.loop import EpochRecord, evaluate, train_model
from hil.train.models import build_model
from hil.train.report import write_json, write_report

log = logging.getLogger(__name__)

ProgressHook = Callable[[str, int, int, int, int], None]  # (tag, epoch, epochs, step, steps)


def _build(cfg: RunConfig, data: Dataset, ota: bool, link: OTALink | None):
    m = cfg.model
    return build_model(
        m.kind, data.image_shape, data.classes, hidden=m.hidden, cut_out=m.cut_out, kernel_size=m.kernel_size,
        ota=ota, link=link, n_tx=cfg.ota.n_tx, n_rx=cfg.ota.n_rx, channel_uses=cfg.ota.channel_uses,
        normalize=m.normalize,
    )


def train_ota(
    cfg: RunConfig,
    data: Dataset,
    checkpoint: Path | None = None,
    progress: ProgressHook | None = None,
    tag: str = "ota",
    epochs: int | None = None,
) -> dict:
    """Train the over-the-air model of ``cfg`` on ``data``. Returns a dict of results (history,
    accuracy, frames, measured SNR, calibration, seconds per step)."""
    epochs = epochs or cfg.train.epochs
    transport, closer = open_transport(cfg.ota)
    try:
        cal = None
        if cfg.ota.gradient_mode == "reciprocity" and cfg.ota.calibrate:
            cal = calibrate_reciprocity(transport)
        link = OTALink(transport, cfg.ota.gradient_mode, cal, hold_channel=cfg.ota.hold_channel)
        torch.manual_seed(cfg.train.seed)
        model = _build(cfg, data, True, link)
        snrs: list[float] = []

        steps_done = [0]

        def on_step(ep, st, n):
            if link.last is not None and np.isfinite(link.last.snr_db):
                snrs.append(link.last.snr_db)
            steps_done[0] += 1
            every = cfg.ota.recalibrate_every
            if cal is not None and every > 0 and steps_done[0] % every == 0:
                link.calibration = calibrate_reciprocity(transport, n_bursts=2)
            if progress:
                progress(tag, ep, epochs, st, n)

        t0 = time.perf_counter()
        hist = train_model(
            model, data, epochs, cfg.train.batch_size, cfg.train.lr, cfg.train.seed,
            checkpoint=checkpoint, frames=lambda: transport.frames, on_step=on_step,
        )
        seconds = time.perf_counter() - t0
        return {
            "history": [asdict(r) for r in hist],
            "accuracy": hist[-1].test_accuracy,
            "frames": hist[-1].frames,
            "measured_snr_db": float(np.mean(snrs)) if snrs else None,
            "calibration": None if cal is None else {"residual": cal.residual, "cb": _c(cal.cb), "ca": _c(cal.ca)},
            "seconds": seconds,
            "model": model,
        }
    finally:
        closer.close()


def _c(z: np.ndarray) -> list:
    return [[float(v.real), float(v.imag)] for v in np.asarray(z).ravel()]


def train_digital(cfg: RunConfig, data: Dataset, checkpoint: Path | None = None, progress: ProgressHook | None = None) -> dict:
    torch.manual_seed(cfg.train.seed)
    model = _build(cfg, data, False, None)
    t0 = time.perf_counter()
    hist = train_model(
        model, data, cfg.train.epochs, cfg.train.batch_size, cfg.train.lr, cfg.train.seed, checkpoint=checkpoint,
        on_step=(lambda ep, st, n: progress("digital", ep, cfg.train.epochs, st, n)) if progress else None,
    )
    return {"history": [asdict(r) for r in hist], "accuracy": hist[-1].test_accuracy,
            "seconds": time.perf_counter() - t0, "model": model}


def run_sweeps(cfg: RunConfig, data: Dataset, out: Path, progress: ProgressHook | None = None) -> dict:
    """Short trainings over ``cfg.sweep.transport`` for each configured SNR, rho and channel-use count.
    Finished points are kept in ``out/sweeps.json`` and not redone on resume."""
    path = out / "sweeps.json"
    done: dict = json.loads(path.read_text()) if path.is_file() else {}
    sw = cfg.sweep
    plan = [("snr_db", v) for v in sw.snr_db] + [("rho", v) for v in sw.rho] + [("channel_uses", v) for v in sw.channel_uses]
    result: dict = {"snr_db": [], "rho": [], "channel_uses": []}
    for key, value in plan:
        name = f"{key}={value}/{cfg.ota.gradient_mode}"
        if name not in done:
            c = cfg.replace(ota={key: value, "transport": sw.transport})
            r = train_ota(c, data, checkpoint=None, progress=progress, tag=f"sweep {key}={value}", epochs=sw.epochs)
            done[name] = {key: value, "gradient_mode": cfg.ota.gradient_mode, "accuracy": r["accuracy"],
                          "frames": r["frames"], "epochs": sw.epochs, "transport": sw.transport}
            write_json(path, done)
        result[key].append(done[name])
    return result


def run_experiment(cfg: RunConfig, out: str | Path, progress: ProgressHook | None = None) -> dict:
    """Train OTA and digital models (resuming from ``out``'s checkpoints), run sweeps, write the report.
    Returns the report dict (also in ``out/report.json``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    resolved = to_toml(cfg)
    old = out / "config.toml"
    if old.is_file() and old.read_text() != resolved and ((out / "checkpoints").is_dir() or (out / "sweeps.json").is_file()):
        raise ConfigError(
            f"{out} holds a run with a different config ({old}); resuming it with this one would mix "
            "two experiments: use another --out, or delete that folder to start over"
        )
    old.write_text(resolved)
    t0 = time.perf_counter()
    d = cfg.data
    data = load_dataset(d.name, d.path, d.test_fraction, cfg.train.seed, d.limit_train, d.limit_test)
    ck = out / "checkpoints"
    ota = train_ota(cfg, data, ck / "ota.pt", progress)
    dig = train_digital(cfg, data, ck / "digital.pt", progress) if cfg.train.digital else None
    sweeps = run_sweeps(cfg, data, out, progress)
    report = {
        "accuracy": {"ota": ota["accuracy"], "digital": None if dig is None else dig["accuracy"]},
        "snr_db": cfg.ota.snr_db,
        "measured_snr_db": ota["measured_snr_db"],
        "gradient_mode": cfg.ota.gradient_mode,
        "transport": cfg.ota.transport,
        "frames": ota["frames"],
        "epochs": len(ota["history"]),
        "rho": cfg.ota.rho,
        "n_tx": cfg.ota.n_tx,
        "n_rx": cfg.ota.n_rx,
        "channel_uses": cfg.ota.channel_uses,
        "dataset": data.name,
        "model": cfg.model.kind,
        "train_samples": len(data.x_train),
        "test_samples": len(data.x_test),
        "calibration": ota["calibration"],
        "seconds": time.perf_counter() - t0,
        "train_seconds": {"ota": ota["seconds"], "digital": None if dig is None else dig["seconds"]},
        "history": {"ota": ota["history"], "digital": [] if dig is None else dig["history"]},
        "sweeps": sweeps,
        "config": cfg.to_dict(),
    }
    write_report(out, report)
    return report


__all__ = ["EpochRecord", "evaluate", "run_experiment", "run_sweeps", "train_digital", "train_ota", "ReciprocityCalibration"]
