"""The error of the host-calibrated latency prediction of a deployed JMSNAS front point.

Run: python benchmarks/nas_deploy_error.py --front runs/nas-bench [--points 0,2,3,5] [--runs 3]
     [--clusters none,local] [--out benchmarks/results/nas_deploy_error.json]

For each front point, runtime and run: ``deploy_point`` (a few training steps only: the latency of a
request does not depend on the weights), then the median latency of ``--requests`` one-image requests
against the prediction re-evaluated with this host's measured layer times, hop costs and call costs
(hil.cluster.nas [Note: predicted on this host]), and against the front's bench prediction. Prints the
ratios measured / predicted with their median and worst per runtime; writes them as JSON with the machine,
date and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from hil.cluster.nas import deploy_point
from hil.split.nasbench import load_front_point


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--front", required=True, help="a `hil nas --bench ... --out DIR` folder")
    ap.add_argument("--points", default="0,2,3,5")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clusters", default="none,local")
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--steps", type=int, default=5, help="training steps per deployment")
    ap.add_argument("--out", default=None, help="JSON with every run (default: print only)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for k in (int(p) for p in a.points.split(",")):
            fp = load_front_point(a.front, k)
            for cluster in a.clusters.split(","):
                for run in range(a.runs):
                    rep = deploy_point(fp, Path(tmp) / f"{k}-{cluster}-{run}", cluster=cluster, max_epochs=1,
                                       max_steps=a.steps, requests=a.requests)
                    lat = rep["latency"]
                    h = lat["host"]
                    rows.append({"point": k, "key": rep["key"], "cluster": cluster, "run": run,
                                 "measured_median_s": lat["measured_s"]["median"], "host_predicted_s": h["predicted_s"],
                                 "host_compute_s": h["compute_s"], "host_comm_s": h["comm_s"], "host_calls_s": h["calls_s"],
                                 "measured_compute_s": lat["measured_compute_s"], "bench_predicted_s": lat["predicted_s"],
                                 "ratio_host": lat["measured_over_host_predicted"],
                                 "ratio_bench": lat["measured_over_predicted"], "loadavg_1m": os.getloadavg()[0]})
                    r = rows[-1]
                    print(f"point {k} {rep['key']} {cluster} run {run}: measured {r['measured_median_s'] * 1e3:.3f} ms, "
                          f"host-predicted {r['host_predicted_s'] * 1e3:.3f} ms (compute {r['host_compute_s'] * 1e3:.3f}, "
                          f"hops {r['host_comm_s'] * 1e3:.3f}, calls {r['host_calls_s'] * 1e3:.3f}), ratio "
                          f"{r['ratio_host']:.3f}; bench-predicted {r['bench_predicted_s'] * 1e3:.3f} ms, ratio "
                          f"{r['ratio_bench']:.3f}", flush=True)
    summary = {}
    for cluster in a.clusters.split(","):
        rs = [r["ratio_host"] for r in rows if r["cluster"] == cluster]
        rb = [r["ratio_bench"] for r in rows if r["cluster"] == cluster]
        summary[cluster] = {"n": len(rs), "median": statistics.median(rs), "min": min(rs), "max": max(rs),
                            "bench_median": statistics.median(rb), "bench_min": min(rb), "bench_max": max(rb)}
        s = summary[cluster]
        print(f"{cluster}: measured / host-predicted median {s['median']:.3f}, range [{s['min']:.3f}, {s['max']:.3f}] "
              f"(n = {s['n']}); measured / bench-predicted median {s['bench_median']:.3f}, range "
              f"[{s['bench_min']:.3f}, {s['bench_max']:.3f}]")
    doc = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "loadavg_start": load0,
           "loadavg_end": os.getloadavg(), "front": a.front, "requests": a.requests, "rows": rows, "summary": summary}
    if a.out:
        Path(a.out).write_text(json.dumps(doc, indent=1))
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
