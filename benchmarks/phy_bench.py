"""PHY benchmark: the full `hil bench phy` run, plots copied into docs/img/ for docs/phy.md.

    python benchmarks/phy_bench.py [--quick] [--seed 0] [--trials 500] [--out runs/phy_bench]

Writes the run folder (report.json, report.md, config.json, PNGs, machine.json) and copies
phy_nmse.png and phy_constellation.png to docs/img/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

from hil.phy.bench import markdown_table, run_phy_bench, write_bench_report

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict:
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
            if line.startswith("Model name")
        )
    except (OSError, StopIteration):
        model = platform.processor()
    return {"cpu": model, "nproc": os.cpu_count(), "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "python": platform.python_version()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "phy_bench")
    ap.add_argument("--copy-plots", action="store_true", help="copy the plots to docs/img/ (tracked)")
    args = ap.parse_args()
    rep = run_phy_bench(quick=args.quick, seed=args.seed, n_trials=args.trials, progress=print)
    rep["machine"] = machine()
    write_bench_report(rep, args.out)
    (args.out / "machine.json").write_text(json.dumps(rep["machine"], indent=2))
    if args.copy_plots:
        img = ROOT / "docs" / "img"
        img.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.out / "phy_nmse.png", img / "phy_nmse.png")
        shutil.copy(args.out / "phy_constellation.png", img / "phy_constellation.png")
    full = json.loads((args.out / "report.json").read_text())
    print(markdown_table(full))
    print(json.dumps(rep["machine"]))


if __name__ == "__main__":
    main()
