"""Placement benchmarks: solver timings and the speed-up study of docs/placement.md.

Run: OMP_NUM_THREADS=1 python benchmarks/placement.py
1. Chain DP: a random 200-layer chain over 8 nodes (seed 0), median of 7 runs (cost model included).
2. MILP: ResNet-18's traced graph (69 layers) over 3 nodes with memory limits that bind.
3. Speed-up: VGG-16 and ResNet-18 (224x224, float32), mobile 10 GFLOP/s (source) and edge server
   1 TFLOP/s, one link of 1..100 Mbit/s with 5 ms latency; our plan vs all-mobile, all-server,
   Neurosurgeon (best single cut) and DADS (min cut); plus a three-node variant with an OTA hop.
Prints markdown tables; writes placement.json and the plots into --out (default runs/placement);
``--out benchmarks/results --copy-plots`` updates the tracked results and docs/img/placement_*.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import shutil
import subprocess
import time
from importlib.resources import files
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hil.split.plan import Problem  # noqa: E402
from hil.split.plot import plot_plan  # noqa: E402
from hil.split.profile import Layer, Profile  # noqa: E402
from hil.split.solvers import place, solve, solve_dp, solve_milp  # noqa: E402
from hil.split.synthetic import random_profile, random_topology  # noqa: E402
from hil.split.topology import Link, Node, Topology  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EX = files("hil.split.examples")
RATES_MBIT = (1, 2, 5, 10, 20, 50, 100)


def bench_dp() -> dict:
    rng = np.random.default_rng(0)
    base = random_profile(rng, 200, dag=False)
    # activations of 1 kB..1 MB (log-uniform) so that the optimum splits several times
    prof = Profile(tuple(Layer(l.name, l.flops * 10, float(10 ** rng.uniform(3, 6)), l.params_bytes, l.deps)
                         for l in base.layers), base.input_bytes, "chain200")
    topo = random_topology(rng, 8, full=True)
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        plan = solve_dp(Problem(prof, topo))  # a fresh Problem: the cost model is built every run
        times.append(time.perf_counter() - t0)
    return {"layers": 200, "nodes": 8, "median_s": statistics.median(times), "max_s": max(times),
            "latency_s": plan.latency_s, "cuts": plan.cuts, "nodes_used": len(set(plan.assignment.values()))}


def bench_milp() -> dict:
    prof = Profile.load(EX / "resnet18.json")
    topo = Topology(
        (Node("mobile", 1e10, mem_bytes=2e7, source=True), Node("edge", 2e11, mem_bytes=3e7), Node("cloud", 1e12)),
        (Link("mobile", "edge", ota=True, n_tx=2, sample_rate_hz=2e7, overhead=0.2, latency_s=1e-3),
         Link("edge", "cloud", bytes_per_s=1.25e7, latency_s=0.01)),
    )
    times, plan = [], None
    for _ in range(3):
        t0 = time.perf_counter()
        plan = solve_milp(Problem(prof, topo))
        times.append(time.perf_counter() - t0)
    free = solve_milp(Problem(prof, topo, respect_memory=False))
    used = {n: sum(1 for v in plan.assignment.values() if v == n) for n in topo.names}
    return {"layers": len(prof), "nodes": 3, "median_s": statistics.median(times), "optimal": plan.optimal,
            "latency_s": plan.latency_s, "latency_without_memory_limits_s": free.latency_s,
            "layers_per_node": used, "memory_bytes": dict(plan.memory_bytes)}


def two_node(rate_mbit: float) -> Topology:
    return Topology((Node("mobile", 1e10, source=True), Node("server", 1e12)),
                    (Link("mobile", "server", bytes_per_s=rate_mbit * 1e6 / 8, latency_s=0.005),))


def three_node(rate_mbit: float) -> Topology:
    """mobile -(OTA, 2x2 at 10 MS/s)- edge 100 GFLOP/s, 30 MB -(rate_mbit)- server 1 TFLOP/s."""
    return Topology((Node("mobile", 1e10, source=True), Node("edge", 1e11, mem_bytes=3e7), Node("server", 1e12)),
                    (Link("mobile", "edge", ota=True, n_tx=2, sample_rate_hz=1e7, overhead=0.25, latency_s=1e-3),
                     Link("edge", "server", bytes_per_s=rate_mbit * 1e6 / 8, latency_s=0.005)))


def speedups(make) -> dict:
    out = {}
    for model in ("vgg16", "resnet18"):
        prof = Profile.load(EX / f"{model}.json")
        rows = []
        for r in RATES_MBIT:
            rep = place(Problem(prof, make(r)))
            rows.append({"mbit_per_s": r, "latency_s": rep.plan.latency_s, "solver": rep.plan.solver,
                         "cuts": rep.plan.cuts,
                         "nodes_used": sorted(set(rep.plan.assignment.values())),
                         **{f"{k}_s": v.latency_s for k, v in rep.baselines.items()},
                         **{f"{k}_feasible": v.feasible for k, v in rep.baselines.items()},
                         **{f"speedup_{k}": v for k, v in rep.ratios.items()}})
        out[model] = rows
    return out


def table(rows: list[dict]) -> str:
    head = "| Mbit/s | ours ms | solver | transfers | all-mobile ms | all-server ms | Neurosurgeon ms | DADS ms | x all-mobile | x all-server | x Neurosurgeon | x DADS |"
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        def ms(k: str) -> str:
            return f"{r[k + '_s']*1e3:.1f}" + ("" if r[k + "_feasible"] else "*")

        lines.append(
            f"| {r['mbit_per_s']} | {r['latency_s']*1e3:.1f} | {r['solver']} | {r['cuts']} | {ms('all_source')} | "
            f"{ms('all_fastest')} | {ms('neurosurgeon')} | {ms('dads')} | "
            f"{r['speedup_all_source']:.2f} | {r['speedup_all_fastest']:.2f} | {r['speedup_neurosurgeon']:.3f} | "
            f"{r['speedup_dads']:.3f} |")
    return "\n".join(lines + ["", "(* = breaks a memory limit)"])


def plot(results: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, model in zip(axes, ("vgg16", "resnet18")):
        for setup, style in (("two_node", "-"), ("three_node", "--")):
            rows = results[setup][model]
            x = [r["mbit_per_s"] for r in rows]
            for k, (key, label) in enumerate((("speedup_all_source", "vs all-mobile"),
                                              ("speedup_all_fastest", "vs all-server"),
                                              ("speedup_neurosurgeon", "vs Neurosurgeon"))):
                ax.plot(x, [r[key] for r in rows], style, marker="o", ms=3, color=f"C{k}",
                        label=f"{label} ({'2 nodes' if setup == 'two_node' else '3 nodes, OTA hop, 30 MB edge'})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("mobile/edge-server link [Mbit/s]")
        ax.set_title(model)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("speed-up of our plan (latency ratio)")
    axes[1].legend(fontsize=6.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "placement", help="folder of placement.json and "
                    "the plots; benchmarks/results is the tracked one")
    ap.add_argument("--copy-plots", action="store_true", help="also copy the plots to docs/img/ (tracked)")
    args = ap.parse_args()
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout.split(":")[-1].strip()
    nproc = str(os.cpu_count())  # `nproc` would honour OMP_NUM_THREADS
    res = {"machine": cpu, "nproc": nproc, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    res["dp_200x8"] = bench_dp()
    print("DP 200 layers x 8 nodes:", res["dp_200x8"])
    res["milp_resnet18_3"] = bench_milp()
    print("MILP ResNet-18 x 3 nodes:", res["milp_resnet18_3"])
    res["two_node"] = speedups(two_node)
    res["three_node"] = speedups(three_node)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot(res, out / "placement_speedup.png")
    prof = Profile.load(EX / "resnet18.json")
    pr = Problem(prof, three_node(10))
    plot_plan(pr, solve(pr), out / "placement_plan_resnet18.png", title="ResNet-18, 3 nodes (OTA hop, 30 MB edge, 10 Mbit/s backhaul)")
    (out / "placement.json").write_text(json.dumps(res, indent=1))
    if args.copy_plots:
        img = ROOT / "docs" / "img"
        img.mkdir(parents=True, exist_ok=True)
        for name in ("placement_speedup.png", "placement_plan_resnet18.png"):
            shutil.copy(out / name, img / name)
    print(f"machine: {cpu}, nproc {nproc}, {res['date']}")
    for setup in ("two_node", "three_node"):
        for model in ("vgg16", "resnet18"):
            print(f"\n### {model}, {setup}\n")
            print(table(res[setup][model]))


if __name__ == "__main__":
    main()
