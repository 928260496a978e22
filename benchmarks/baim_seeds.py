#!/usr/bin/env python
"""BAIM vs FedAvg over seeds: final Frechet distance per method with Student-t 95 % intervals.

Usage: python benchmarks/baim_seeds.py --config hil/baim/configs/quick.toml --seeds 3 [--out runs/baim_seeds]
Runs ``hil.baim.experiment.run_baim`` once per seed (``seed = 0..N-1``; data split, edge
learners, FedAvg and references all change with it), two seeds at a time in their own processes
with one torch thread each, writes ``out/seed-K/`` and ``out/summary.json`` and prints the markdown
table of docs/baim.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import json
import multiprocessing as mp
import time
from pathlib import Path


def _one(config: str | None, seed: int, out: str) -> dict:
    import torch

    from hil.baim.config import load_baim_config
    from hil.baim.experiment import run_baim

    torch.set_num_threads(1)
    cfg = dataclasses.replace(load_baim_config(config), seed=seed)
    return run_baim(cfg, Path(out))


def summarize(reports: list[dict]) -> dict:
    """Per method: final FD per seed and its mean_ci95; FedAvg's rounds; upload at each strategy's FD."""
    from hil.stats import mean_ci95

    methods = list(reports[0]["strategies"])
    out = {"seeds": [r["config"]["seed"] for r in reports], "methods": {}}
    for m in methods:
        fds = [r["strategies"][m]["final_fd"] for r in reports]
        out["methods"][m] = {"final_fd": fds, **mean_ci95(fds),
                             "upload_bytes": [r["strategies"][m]["upload_bytes"] for r in reports],
                             "rounds_or_epochs": [r["strategies"][m]["cloud_epochs_or_rounds"] for r in reports]}
    out["fedavg_at_strategy_fd"] = {
        s: [r["must_show"]["fedavg_upload_at_strategy_fd"][s] for r in reports]
        for s in reports[0]["must_show"]["fedavg_upload_at_strategy_fd"]}
    out["fedavg_stopped_by"] = [r["strategies"]["fedavg"]["stopped_by"] for r in reports]
    out["fedavg_min_rounds"] = [r["strategies"]["fedavg"]["min_rounds"] for r in reports]
    return out


def table(summary: dict) -> str:
    def ci(d):
        lo, hi = d["ci95"]
        return f"{d['mean']:.2f} [{lo:.2f}, {hi:.2f}]"

    lines = ["| method | final FD per seed | mean [95 % interval] | upload per seed | epochs / rounds |",
             "|---|---|---|---|---|"]
    for m, d in summary["methods"].items():
        lines.append(f"| {m} | {', '.join(f'{v:.2f}' for v in d['final_fd'])} | {ci(d)} | "
                     f"{', '.join(str(b) for b in d['upload_bytes'])} B | {', '.join(map(str, d['rounds_or_epochs']))} |")
    lines += ["", "| BAIM strategy | FedAvg round reaching its final FD, per seed | FedAvg upload then, per seed |",
              "|---|---|---|"]
    for s, per in summary["fedavg_at_strategy_fd"].items():
        lines.append(f"| {s} | {', '.join('never' if a['round'] is None else str(a['round']) for a in per)} | "
                     f"{', '.join('-' if a['upload_bytes'] is None else str(a['upload_bytes']) + ' B' for a in per)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=None)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("runs/baim_seeds"))
    args = ap.parse_args()
    if args.seeds < 1:
        raise SystemExit("error: --seeds must be >= 1")
    t0 = time.perf_counter()
    with cf.ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
        futs = [pool.submit(_one, args.config, s, str(args.out / f"seed-{s}")) for s in range(args.seeds)]
        reports = [f.result() for f in futs]
    summary = summarize(reports)
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    summary["config"] = args.config
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(table(summary))
    print(f"\nwall {summary['wall_s']} s")


if __name__ == "__main__":
    main()
