#!/usr/bin/env python
"""Benchmark: the full default BAIM run (hil/baim/configs/default.toml) with machine, date and wall time.

Usage: python benchmarks/baim.py [--out runs/baim_bench] [--config FILE] [--copy-plots]
``--copy-plots`` copies the PNGs to docs/img/baim_*.png for docs/baim.md.
Prints a JSON summary (the numbers quoted in docs/baim.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")
    except (OSError, subprocess.CalledProcessError):
        model = platform.processor() or "?"
    return f"{model}, nproc={os.cpu_count()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/baim_bench"))
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--copy-plots", action="store_true")
    args = ap.parse_args()

    import torch

    from hil.baim.config import load_baim_config
    from hil.baim.experiment import run_baim

    torch.set_num_threads(args.threads)
    cfg = load_baim_config(args.config)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    rep = run_baim(cfg, args.out, progress=lambda m: print("..", m, flush=True))
    summary = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "torch_threads": args.threads,
        "wall_s": round(time.perf_counter() - t0, 1),
        "cpu_s": round(time.process_time() - cpu0, 1),
        "final_fd": {k: round(v["final_fd"], 2) for k, v in rep["strategies"].items()},
        "fd_before_cloud_training": round(rep["strategies"][cfg.strategies[0]]["fd_per_epoch"][0], 2),
        "min_fd_over_epochs": {k: round(min(v["fd_per_epoch"]), 2) for k, v in rep["strategies"].items()},
        "upload_bytes": {k: v["upload_bytes"] for k, v in rep["strategies"].items()},
        "download_bytes": {k: v["download_bytes"] for k, v in rep["strategies"].items()},
        "cloud_flops_per_epoch": {k: v["cloud_flops_per_epoch"] for k, v in rep["strategies"].items()},
        "edge_flops_per_epoch_mean": {k: round(v["edge_flops_per_epoch_mean"]) for k, v in rep["strategies"].items()},
        "must_show": rep["must_show"],
        "real_fd_floor": round(rep["frechet"]["real_train_vs_test_fd"], 2),
        "classifier_test_acc": rep["frechet"]["classifier_test_acc"],
        "sizes": rep["deployment"]["sizes"],
        "placement": {s: {t: (p["plan"]["solver"], p["plan"]["optimal"], p["plan"]["latency_s"]) if p.get("placed")
                          else p["note"] for t, p in v.items()} for s, v in rep["placement"].items()},
    }
    print(json.dumps(summary, indent=1))
    (args.out / "bench_summary.json").write_text(json.dumps(summary, indent=1))
    if args.copy_plots:
        img = Path(__file__).resolve().parents[1] / "docs" / "img"
        img.mkdir(parents=True, exist_ok=True)
        for p in args.out.glob("baim_*.png"):
            shutil.copy(p, img / p.name)


if __name__ == "__main__":
    main()
