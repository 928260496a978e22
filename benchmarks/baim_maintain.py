#!/usr/bin/env python
"""Benchmark: the BAIM big model after deployment (local fine-tuning, continual learning, few-shot, pruning).

Runs ``hil.baim.maintain.run_maintenance`` with the packaged hil/baim/configs/maintain.toml (or --config)
over its seeds (or --seeds) and prints the four tables of docs/baim.md ("After deployment") with the
machine, date and wall time. Writes report.json and report.md only with --out.

Usage: python benchmarks/baim_maintain.py [--config FILE] [--seeds 0,1,2] [--threads 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baim import machine  # noqa: E402  (benchmarks/baim.py: CPU model and core count)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=None, help="TOML with [baim] and [maintain] tables")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default: the config's)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", type=Path, default=None, help="write report.json and report.md here")
    args = ap.parse_args()

    import torch

    from hil.baim.maintain import load_maintain_config, render_maintenance_md, run_maintenance

    torch.set_num_threads(args.threads)
    over = {"seeds": [int(s) for s in args.seeds.split(",")]} if args.seeds else {}
    cfg, mcfg = load_maintain_config(args.config, **over)
    t0 = time.perf_counter()
    report = run_maintenance(cfg, mcfg, args.out, progress=lambda m: print(m, file=sys.stderr))
    print(f"<!-- {datetime.date.today()} | {machine()} | torch threads {args.threads} | "
          f"{time.perf_counter() - t0:.0f} s -->")
    print(render_maintenance_md(report))


if __name__ == "__main__":
    main()
