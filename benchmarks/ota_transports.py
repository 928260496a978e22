#!/usr/bin/env python
"""The same training at the same configured SNR on ``ideal``, ``loopback`` and ``zmq``: OTA-digital gaps over seeds.

Usage: OMP_NUM_THREADS=1 python benchmarks/ota_transports.py [--seeds 5] [--epochs 5] [--snr-db 10] [--out runs/ota_transports]
The packaged demo config (digits MLP, one 2x2 over-the-air layer, reciprocity gradients, quasi-static
Rayleigh) with ``--epochs``; per transport ``hil.train.seeds.run_seeds`` over ``--seeds`` seeds (train
seed and channel draw vary), two at a time. Prints the markdown table of docs/ota.md and writes
``out/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--snr-db", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--transports", default="ideal,loopback,zmq")
    ap.add_argument("--out", type=Path, default=Path("runs/ota_transports"))
    args = ap.parse_args()

    from hil.train.config import load_config
    from hil.train.seeds import run_seeds

    base = load_config("demo").replace(train={"epochs": args.epochs}, ota={"snr_db": args.snr_db})
    rows, summary = [], {}
    for t in args.transports.split(","):
        t0 = time.perf_counter()
        rep = run_seeds(base.replace(ota={"transport": t}), args.out / t, args.seeds, workers=args.workers)
        g, m = rep["gap_points"], rep["measured_avg_snr_db"]
        summary[t] = {"gap_points": g, "ota": rep["accuracy"]["ota"], "digital": rep["accuracy"]["digital"],
                      "measured_snr_db": rep["measured_snr_db"], "measured_avg_snr_db": m,
                      "wall_s": round(time.perf_counter() - t0, 1)}
        lo, hi = g["ci95"]
        rows.append(f"| {t} | {', '.join(f'{v:+.2f}' for v in g['per_seed'])} | {g['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}] | "
                    f"{sum(rep['accuracy']['ota']) / len(rep['seeds']):.2f} | {sum(rep['accuracy']['digital']) / len(rep['seeds']):.2f} | "
                    f"{rep['measured_snr_db']['mean']:.2f} | {m['mean']:.2f} |")
        print(rows[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\n{args.seeds} seeds, {args.epochs} epochs, configured SNR {args.snr_db} dB\n")
    print("| transport | gap per seed (points) | mean gap [95 % interval] | OTA mean (%) | digital mean (%) | "
          "measured SNR (dB) | measured average SNR (dB) |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
