"""Payload error over its prediction, one receiver-side impairment at a time (30 dB, 2x2 Rayleigh).

    python benchmarks/phy_impairments.py [--snr 30] [--frames 10] [--seed 5]

For each impairment and mode: 10 log10(mean(err / pred)) over the frames (see
``hil.phy.bench.impairment_excess_db``). 0 dB means the impairment is fully handled; positive values
are error the receiver leaves. The table in docs/phy.md comes from this script.
"""

from __future__ import annotations

import argparse

from hil.phy.bench import IMPAIRMENTS, impairment_excess_db


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snr", type=float, default=30.0)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    print("| impairment | flat (dB) | ofdm (dB) |\n|---|---|---|")
    for name, extra in IMPAIRMENTS.items():
        row = [
            f"{impairment_excess_db(extra, mode, args.snr, args.frames, args.seed):+.1f}"
            for mode in ("flat", "ofdm")
        ]
        print(f"| {name} | {row[0]} | {row[1]} |")


if __name__ == "__main__":
    main()
