"""Results over seeds: one experiment per seed, per-seed values, the mean and a 95 % interval of the gap.

Output folder: ``seed-<train seed>/`` per seed (a whole :func:`hil.train.run.run_experiment` folder,
resuming on its own), ``config.toml`` (the base config), ``sweeps.json`` and ``accuracy_vs_*.png``
(with ``sweeps=True``), ``report.json`` and ``report.md`` over all seeds.

[Note: what a seed varies]
Seed ``i`` (0-based) trains with ``[train] seed = base + i`` (weights, batch order, calibration
pilots) over ``[ota] channel_seed = base + i`` (the channel draw, its noise, chain gains), so the
interval covers both the training's and the channel's randomness. The OTA-digital gap is paired per
seed (both models share the seed's data order and initial weights), and its 95 % interval is
Student's t over the per-seed gaps: with few seeds it is wide, as it should be.

Seeds may also run elsewhere than in this machine's processes: ``runner`` (e.g.
:func:`hil.cluster.seeds.ray_runner`, one Ray task per seed) is given each seed's config and folder
and yields the reports as they finish.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing as mp
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from hil._io import atomic_write_text
from hil.errors import ConfigError
from hil.stats import mean_ci95, mean_db
from hil.train.config import RunConfig, to_toml

log = logging.getLogger(__name__)


def seed_configs(cfg: RunConfig, n_seeds: int) -> list[RunConfig]:
    """The configs of ``n_seeds`` seeds (see [Note: what a seed varies])."""
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
        raise ValueError(f"n_seeds must be an int >= 1, got {n_seeds!r}")
    return [cfg.replace(train={"seed": cfg.train.seed + i}, ota={"channel_seed": cfg.ota.channel_seed + i})
            for i in range(n_seeds)]


_progress_queue = None  # in a worker process of run_seeds: where its progress goes (set by _init_worker)


def _init_worker(queue) -> None:
    global _progress_queue
    _progress_queue = queue


def run_one(cfg: RunConfig, out: str, threads: int) -> dict:
    """One seed in a worker process or a Ray task; ``threads`` > 0 sets torch's. In a worker of
    :func:`run_seeds` given a progress hook, every step is forwarded to it, tagged with the seed."""
    import torch

    from hil.train.run import run_experiment

    if threads > 0:
        torch.set_num_threads(threads)
    progress = None
    if _progress_queue is not None:
        queue, seed = _progress_queue, cfg.train.seed

        def progress(tag: str, *counts: int) -> None:
            queue.put((f"seed {seed} {tag}", *counts))

    return run_experiment(cfg, out, progress=progress)


def _forward(queue, progress: Callable) -> None:
    """Call ``progress`` with what the workers put on ``queue`` until it yields None."""
    while (item := queue.get()) is not None:
        progress(*item)


def run_seeds(
    cfg: RunConfig,
    out: str | Path,
    n_seeds: int,
    workers: int = 2,
    sweeps: bool = False,
    progress: Callable | None = None,
    on_seed: Callable[[dict], None] | None = None,
    runner: Callable[[list[tuple[RunConfig, Path]]], Iterable[tuple[int, dict]]] | None = None,
) -> dict:
    """Run ``cfg`` for ``n_seeds`` seeds into ``out/seed-K`` and write the report over seeds.

    Args:
        workers: seeds trained at once, each in its own process with one torch thread (1: in this
            process); ``progress`` gets every worker's steps, tagged ``seed K``.
        sweeps: also run the ``[sweep]`` points (once, with the first seed, over the run's transport).
        on_seed: called with each finished seed's report.
        runner: runs the seeds instead of this machine's processes (``workers`` unused): called with
            ``[(config, folder), ...]``, yields ``(train seed, report)`` as each finishes.

    Returns the report dict (also ``out/report.json``).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "checkpoints").is_dir():
        raise ConfigError(f"{out} holds a single-seed run (checkpoints/ at its top); runs over seeds keep one "
                          "folder per seed: use another --out")
    atomic_write_text(out / "config.toml", to_toml(cfg))
    cfgs = seed_configs(cfg, n_seeds)
    t0 = time.perf_counter()
    reports: dict[int, dict] = {}
    folders = {c.train.seed: out / f"seed-{c.train.seed}" for c in cfgs}
    n_workers = min(workers, len(cfgs))
    if runner is not None:
        for seed, rep in runner([(c, folders[c.train.seed]) for c in cfgs]):
            reports[seed] = rep
            if on_seed:
                on_seed(rep)
    elif n_workers == 1:
        from hil.train.run import run_experiment

        for c in cfgs:
            hook = None if progress is None else (
                lambda tag, *counts, seed=c.train.seed: progress(f"seed {seed} {tag}", *counts))
            rep = run_experiment(c, folders[c.train.seed], progress=hook)
            reports[c.train.seed] = rep
            if on_seed:
                on_seed(rep)
    else:
        # spawn: a fresh interpreter per worker (no forked torch/ZMQ state); one torch thread each
        ctx = mp.get_context("spawn")
        queue = ctx.Queue() if progress else None
        fwd = threading.Thread(target=_forward, args=(queue, progress), daemon=True) if progress else None
        if fwd:
            fwd.start()
        try:
            with cf.ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_init_worker,
                                        initargs=(queue,)) as pool:
                futs = {pool.submit(run_one, c, str(folders[c.train.seed]), 1): c.train.seed for c in cfgs}
                for f in cf.as_completed(futs):
                    rep = f.result()
                    reports[futs[f]] = rep
                    if on_seed:
                        on_seed(rep)
        finally:
            if fwd:
                queue.put(None)
                fwd.join()
    sweep_points: dict = {}
    if sweeps:
        from hil.data import load_dataset
        from hil.train.run import run_sweeps

        d = cfg.data
        data = load_dataset(d.name, d.path, d.test_fraction, cfg.train.seed, d.limit_train, d.limit_test)
        sweep_points = run_sweeps(cfg, data, out, progress)
    report = summarize([reports[c.train.seed] for c in cfgs], cfg)
    report["sweeps"] = sweep_points
    report["seconds"] = time.perf_counter() - t0
    report["folders"] = [folders[c.train.seed].name for c in cfgs]
    from hil.train.report import write_seeds_report

    write_seeds_report(out, report)
    return report


def summarize(reports: list[dict], cfg: RunConfig) -> dict:
    """The report over seeds from the per-seed reports of :func:`hil.train.run.run_experiment`."""
    if not reports:
        raise ValueError("summarize needs at least one seed's report")
    ota = [r["accuracy"]["ota"] for r in reports]
    dig = [r["accuracy"]["digital"] for r in reports]
    gaps = [o - d for o, d in zip(ota, dig)] if all(d is not None for d in dig) else []
    measured = [r.get("measured_snr_db") for r in reports]
    have = [m for m in measured if m is not None]
    avg = [r.get("measured_avg_snr_db") for r in reports]
    have_avg = [a for a in avg if a is not None]
    snr = float(cfg.ota.snr_db)
    first = reports[0]
    return {
        "seeds": [r["seed"] for r in reports],
        "channel_seeds": [r["channel_seed"] for r in reports],
        "accuracy": {"ota": ota, "digital": dig},
        "gap_points": {"per_seed": gaps, **(mean_ci95(gaps) if gaps else {"n": 0, "mean": None, "std": None,
                                                                           "ci95": None})},
        "accuracy_ota": mean_ci95(ota),
        "accuracy_digital": mean_ci95(dig) if all(d is not None for d in dig) else None,
        "snr_db": snr,
        # per sample per receive antenna, as snr_db; per seed and averaged over the seeds' draws in
        # linear units (the average over the fading, docs/channels.md)
        "measured_snr_db": {
            "per_seed": measured,
            "mean": mean_db(have) if have else None,
            "draw_offset_db": [None if m is None else m - snr for m in measured],
        },
        # the receiver's estimate of the AVERAGE SNR over the fading: each seed's measured SNR minus
        # the power gain of its draw that the receiver sees in its own pilot estimate (see
        # [Note: the draw's gain] in hil.train.run); its mean over seeds should equal snr_db
        "draw_gain_db": [r.get("draw_gain_db") for r in reports],
        "measured_avg_snr_db": {"per_seed": avg, **(mean_ci95(have_avg) if have_avg else
                                                    {"n": 0, "mean": None, "std": None, "ci95": None})},
        "measured_es_n0_db": [r.get("measured_es_n0_db") for r in reports],
        "symbol_gain_db": _symbol_gain(first),
        "transport": first["transport"],
        "gradient_mode": first["gradient_mode"],
        "epochs": first["epochs"],
        "frames": [r["frames"] for r in reports],
        "calibration_frames": [r["calibration_frames"] for r in reports],
        "rho": first["rho"],
        "n_tx": first["n_tx"],
        "n_rx": first["n_rx"],
        "channel_uses": first["channel_uses"],
        "dataset": first["dataset"],
        "model": first["model"],
        "train_samples": first["train_samples"],
        "test_samples": first["test_samples"],
        "train_seconds": [r["train_seconds"] for r in reports],
        "config": cfg.to_dict(),
    }


def _symbol_gain(rep: dict) -> float | None:
    """``10 log10(sps)`` of the run's receiver, recovered from its two measured values."""
    a, b = rep.get("measured_es_n0_db"), rep.get("measured_snr_db")
    return None if a is None or b is None else round(float(a - b), 6)


__all__ = ["run_seeds", "seed_configs", "summarize"]
