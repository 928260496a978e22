"""Round trip of one training burst through the channel server, per data plane and wait, and what an idle wait costs the decode.

    OMP_NUM_THREADS=1 python benchmarks/burst_round_trip.py [--bursts 200] [--out runs/burst_round_trip.json]

The burst is the training step's (benchmarks/train_step.py: 2x2, batch 64, K = 16, 20 dB), framed by
the PHY, on the channel server the training run starts. Part 1: the median ``ZmqRadio.transceive``
round trip over TCP and through shared memory (``data_plane``), with the client sleeping in the
wait (``busy_wait_s=0``) or polling first (the default), back to back and with a 5 ms pause before
each burst (what a training step's own work between its frames looks like to the server and the
client). The variants alternate burst by burst, so load changes hit them alike. Part 2: the fast
receiver's decode of the same captures, right after the previous decode, after a 2 ms or 10 ms
sleep, and after 2 ms of polling (see [Note: busy wait] in hil/radio/zmq.py). Prints markdown
tables and writes JSON with the machine, date and load.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from train_step import machine, write_results  # noqa: E402  (this directory)

from hil.radio.zmq import ZmqRadio  # noqa: E402
from hil.train.config import OTAConfig  # noqa: E402
from hil.train.links import open_transport  # noqa: E402

GAP_S = 0.005


def _pause(how: str, s: float) -> None:
    if how == "sleep":
        time.sleep(s)
    elif how == "poll":
        end = time.perf_counter() + s
        while time.perf_counter() < end:
            pass


def round_trips(info: dict, burst: np.ndarray, n: int) -> list[dict]:
    variants = list(itertools.product(("tcp", "shm"), (0.0, 0.005), (0.0, GAP_S)))
    # one radio per plane (a node's TCP stream has one reader); the busy wait is set per burst
    radios = {p: ZmqRadio(info, "edge", "server", data_plane=p) for p in ("tcp", "shm")}
    times: dict[tuple, list[float]] = {v: [] for v in variants}
    try:
        for r in radios.values():
            for _ in range(5):
                r.transceive(burst)
        for _ in range(n):
            for v in variants:
                r = radios[v[0]]
                r.busy_wait_s = v[1]
                _pause("sleep", v[2])
                t0 = time.perf_counter()
                r.transceive(burst)
                times[v].append(time.perf_counter() - t0)
    finally:
        for r in radios.values():
            r.close()
    return [{"data_plane": p, "busy_wait_s": b, "pause_s": g, "median_ms": float(np.median(times[(p, b, g)]) * 1e3),
             "p90_ms": float(np.percentile(times[(p, b, g)], 90) * 1e3)} for p, b, g in variants]


def decode_after_pause(link, caps: list[np.ndarray], reps: int) -> list[dict]:
    variants = [("none", 0.0), ("sleep", 0.002), ("sleep", 0.010), ("poll", 0.002)]
    times: dict[tuple, list[float]] = {v: [] for v in variants}
    for c in caps[:3]:
        link.receiver.receive(c)
    for _ in range(reps):
        for v in variants:
            for c in caps:
                _pause(*v)
                t0 = time.perf_counter()
                link.receiver.receive(c)
                times[v].append(time.perf_counter() - t0)
    return [{"pause": how, "pause_s": s, "decode_median_ms": float(np.median(times[(how, s)]) * 1e3)}
            for how, s in variants]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bursts", type=int, default=200, help="round trips per variant")
    ap.add_argument("--out", default="runs/burst_round_trip.json")
    a = ap.parse_args()
    load0 = os.getloadavg()
    cfg = OTAConfig(transport="zmq", gradient_mode="estimated", channel_uses=16, snr_db=20.0)
    t, closer = open_transport(cfg)
    try:
        link = next(x for x in t.links if x is not None)
        rng = np.random.default_rng(0)
        sym = np.exp(2j * np.pi * rng.random((64, cfg.n_tx, 16))).astype(np.complex64) / np.sqrt(2)
        burst, _ = link.transmitter.build(sym, seq=0)
        rt = round_trips(link.radio.info, burst, a.bursts)
        caps = [link.radio.transceive(burst) for _ in range(16)]
        dec = decode_after_pause(link, caps, max(2, a.bursts // 40))
    finally:
        closer.close()
    load = os.getloadavg()
    print(f"Round trip of a {burst.shape[1]}-sample 2x2 burst (median / p90 of {a.bursts}, ms):\n")
    print("| data plane | busy wait | back to back | after a 5 ms pause |")
    print("|---|---|---|---|")
    for p, b in itertools.product(("tcp", "shm"), (0.0, 0.005)):
        row = {r["pause_s"]: r for r in rt if r["data_plane"] == p and r["busy_wait_s"] == b}
        print(f"| {p} | {b * 1e3:.0f} ms | " + " | ".join(f"{row[g]['median_ms']:.3f} / {row[g]['p90_ms']:.3f}"
                                                       for g in (0.0, GAP_S)) + " |")
    print(f"\nFast receiver decode of the same {len(caps)} captures (median, ms), after:\n")
    print("| " + " | ".join(f"{d['pause']} {d['pause_s'] * 1e3:.0f} ms" for d in dec) + " |")
    print("|" + "---|" * len(dec))
    print("| " + " | ".join(f"{d['decode_median_ms']:.3f}" for d in dec) + " |")
    out = {"machine": {**machine(), "loadavg_start": list(load0), "loadavg_end": list(load)},
           "burst_samples": int(burst.shape[1]), "bursts": a.bursts, "round_trip": rt, "decode": dec}
    write_results(out, a.out)


if __name__ == "__main__":
    main()
