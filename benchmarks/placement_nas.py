"""JMSNAS vs "search first, split after" vs "fixed model, best split" on the packaged NAS topology.

Run: OMP_NUM_THREADS=1 python benchmarks/placement_nas.py [--out runs/placement_nas] [--quick]
Writes a report folder (report.json, report.md, pareto.png, chosen_plan.png) and copies the plots to
docs/img/placement_pareto.png and docs/img/placement_nas_plan.png. Training results are cached in
~/.cache/hil/jmsnas (by architecture hash), so a second run is fast.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from importlib.resources import files
from pathlib import Path

import torch

from hil.split.nas import NASConfig, candidate_problem, run_jmsnas
from hil.split.report import write_nas_report
from hil.split.topology import Topology

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(ROOT / "runs" / "placement_nas"))
    ap.add_argument("--quick", action="store_true", help="population 4, 2 generations, 2 betas")
    ap.add_argument("--copy-plots", action="store_true", help="copy the plots to docs/img/ (tracked)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    topo_path = str(files("hil.split.examples") / "nas_topology.json")
    topo = Topology.load(topo_path)
    cfg = NASConfig(population=4, generations=2, betas=(0.05, 0.5)) if args.quick else NASConfig()
    t0 = time.time()
    res = run_jmsnas(cfg, topo, progress=print)
    out = write_nas_report(Path(args.out), cfg, topo_path, res, candidate_problem(cfg, topo, res.chosen.arch))
    if args.copy_plots:
        img = ROOT / "docs" / "img"
        img.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "pareto.png", img / "placement_pareto.png")
        shutil.copy(out / "chosen_plan.png", img / "placement_nas_plan.png")
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout.strip()
    print(f"machine: {cpu}; wall {time.time() - t0:.0f} s; {res.trained} trainings")
    print((out / "report.md").read_text())


if __name__ == "__main__":
    main()
