"""Node-runtime benchmarks (``hil run``): what Ray adds to a training step, and what pipelining gives.

1. Overhead: the digits split (digits_mlp) over the ZMQ channel server, the same steps with
   ``--cluster none`` (one process) and ``--cluster local`` (a private Ray instance on 127.0.0.1, one
   actor process per node); median step time of each, in alternating rounds, and the median of the
   rounds' ratios (target: local <= 1.2 x none).
2. Pipelining: a two-stage split whose stages cost about the same (a wide MLP on the ideal transport,
   batch 1024, no batch statistics: Linear(64->W) + precoder on the edge, combiner to W + Linear(W->10)
   on the server; the report's busy seconds per node show the balance), throughput with
   ``--microbatches M`` against ``M = 1`` with ``--cluster local`` (target: >= 1.5 x). The same steps in
   one process (``--cluster none``, nothing overlaps) give the speed-up that smaller micro-batches bring
   by themselves (they fit the caches better); ``local``'s speed-up over ``none``'s is what the two
   actors working at once add.
3. Latency: the digits split placed on the three-node bench ``hil/split/examples/bench_offload.toml``
   (``hil run --bench``: device -> edge over the air, edge -> server digital), trained a few steps, then
   every test batch as one inference request; the placement engine's predicted latency per request,
   per stage and per link beside the measured medians, and their ratio (the cost model's error).

Run: ``python benchmarks/cluster.py [--steps 40] [--only overhead|pipelining|latency] [--out FILE.json]``.
Prints a markdown table; writes JSON only with ``--out``. The machine is shared: report one run's
ratios as they come, with the load average printed beside them.
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


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def overhead(steps: int, rounds: int) -> dict:
    from hil.cluster.run import run_split
    from hil.train.config import load_config

    cfg = load_config("digits_mlp").replace(ota={"transport": "zmq"}, train={"epochs": 100, "digital": False})
    out: dict = {"rounds": []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(rounds):  # none, local, none, local, ...: a drifting load hits both alike
            row = {}
            for mode in ("none", "local"):
                r = run_split(cfg, Path(tmp) / f"{mode}{k}", cluster=mode, max_steps=steps, write=False)
                row[mode] = r["step_seconds"]["median"]
            row["ratio"] = row["local"] / row["none"]
            out["rounds"].append(row)
    out["ratio_local_over_none"] = statistics.median(r["ratio"] for r in out["rounds"])
    for mode in ("none", "local"):
        out[mode] = {"median_step_s": statistics.median(r[mode] for r in out["rounds"])}
    return out


def pipelining(steps: int, width: int, microbatches: tuple[int, ...], batch: int = 1024) -> dict:
    from hil.cluster.run import run_split
    from hil.train.config import load_config

    cfg = load_config("digits_mlp").replace(
        model={"hidden": width, "cut_out": width, "normalize": False, "power": "sample"},
        ota={"transport": "ideal", "channel_uses": 4}, train={"epochs": 100, "digital": False, "batch_size": batch},
        data={"limit_train": 0})
    out: dict = {"width": width, "batch_size": batch}
    with tempfile.TemporaryDirectory() as tmp:
        for m in microbatches:
            row = {}
            for mode in ("local", "none"):
                r = run_split(cfg, Path(tmp) / f"{mode}{m}", cluster=mode, microbatches=m, max_steps=steps, write=False)
                row[mode] = {"median_step_s": r["step_seconds"]["median"], "busy_s": r["latency"]["busy_s"]}
            out[str(m)] = {"median_step_s": row["local"]["median_step_s"], "busy_s": row["local"]["busy_s"],
                           "none_median_step_s": row["none"]["median_step_s"]}
    base, base_none = out[str(microbatches[0])]["median_step_s"], out[str(microbatches[0])]["none_median_step_s"]
    out["speedup"] = {str(m): base / out[str(m)]["median_step_s"] for m in microbatches}
    out["speedup_none"] = {str(m): base_none / out[str(m)]["none_median_step_s"] for m in microbatches}
    out["overlap"] = {str(m): out["speedup"][str(m)] / out["speedup_none"][str(m)] for m in microbatches}
    return out


def latency(steps: int, transport: str) -> dict:
    from hil.cluster.run import run_split
    from hil.train.config import load_config

    bench = Path(__file__).resolve().parents[1] / "hil" / "split" / "examples" / "bench_offload.toml"
    cfg = load_config("digits_mlp").replace(ota={"transport": transport}, train={"epochs": 1, "digital": False})
    with tempfile.TemporaryDirectory() as tmp:
        r = run_split(cfg, Path(tmp) / "three", cluster="local", max_steps=steps, write=False, bench=bench)
    pred, meas = r["latency"]["predicted_s"], r["latency"]["measured_s"]
    rows = [("request", pred["request"], meas["request"])]
    rows += [(f"stage {k}", pred["stages"][k], v) for k, v in meas["stages"].items()]
    rows += [(f"link {k}", pred["links"][k], v) for k, v in meas["links"].items()]
    return {"bench": str(bench.name), "transport": transport, "stages": r["plan"]["stages"],
            "rows": [{"what": w, "predicted_s": p, "measured_median_s": m["median"], "measured_p95_s": m["p95"],
                      "n": m["n"], "predicted_over_measured": p / m["median"]} for w, p, m in rows]}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--steps", type=int, default=40, help="training steps per measurement (default 40)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating none/local rounds of the overhead "
                    "measurement; the ratio reported is the median of the rounds' ratios (default 3)")
    ap.add_argument("--width", type=int, default=4096, help="MLP width of the pipelining model (default 4096)")
    ap.add_argument("--batch", type=int, default=1024, help="batch of the pipelining model (default 1024)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here (default: print only)")
    ap.add_argument("--only", choices=("overhead", "pipelining", "latency"), default=None, help="run one part")
    ap.add_argument("--transport", default="zmq", help="transport of the latency part's over-the-air link "
                    "(default zmq: the channel server)")
    a = ap.parse_args(argv)
    res: dict = {"machine": f"{platform.node()} {os.cpu_count()} cores {platform.machine()}",
                 "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_before": _load()}
    if a.only in (None, "overhead"):
        res["overhead"] = overhead(a.steps, a.rounds)
        o = res["overhead"]
        print(f"| digits over zmq | none {o['none']['median_step_s'] * 1e3:.1f} ms | local "
              f"{o['local']['median_step_s'] * 1e3:.1f} ms | local/none {o['ratio_local_over_none']:.2f} (rounds: "
              + ", ".join(f"{r['ratio']:.2f}" for r in o["rounds"]) + ") |")
    if a.only in (None, "pipelining"):
        res["pipelining"] = p = pipelining(a.steps, a.width, (1, 2, 4), a.batch)
        print("| microbatches | local median step | speed-up | none median step | speed-up in one process | "
              "local/none speed-up (overlap) |")
        for m in ("1", "2", "4"):
            print(f"| {m} | {p[m]['median_step_s'] * 1e3:.1f} ms | {p['speedup'][m]:.2f} x | "
                  f"{p[m]['none_median_step_s'] * 1e3:.1f} ms | {p['speedup_none'][m]:.2f} x | {p['overlap'][m]:.2f} x |")
    if a.only in (None, "latency"):
        res["latency"] = q = latency(min(a.steps, 10), a.transport)
        print(f"| {q['bench']} over {q['transport']} | predicted | measured median | p95 | predicted/measured |")
        for row in q["rows"]:
            print(f"| {row['what']} | {row['predicted_s'] * 1e3:.3g} ms | {row['measured_median_s'] * 1e3:.3g} ms | "
                  f"{row['measured_p95_s'] * 1e3:.3g} ms | {row['predicted_over_measured']:.2f} |")
    res["load_after"] = _load()
    print(f"load average before {res['load_before']}, after {res['load_after']}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
