"""PHY processing speed: transmitter build and receiver decode time per burst (single thread).

    OMP_NUM_THREADS=1 python benchmarks/phy_speed.py [--reps 20]

Prints a markdown table for docs/performance.md: per mode, antennas and B x K, the burst length and
its air time at 1 MS/s, the build time, the receive time of the reference receiver
(``hil.phy.FrameReceiver``) and of the fast one (``hil.phy.fast.FastReceiver``) on the same
captures in the same run, the fast receiver on a batch of 16 captures (``receive_batch``, per
burst; in this thread, and with ``workers=2`` threads: the CPU column then sums both threads), and
the real-time factors (air time / receive time; > 1: faster than the air). Times are
the median over ``--reps`` rounds (each round decodes the same 16 captures). Channel: Rayleigh,
20 dB, CFO 50 kHz, delay 1.4 samples.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from hil.channel.config import build_channel  # noqa: E402
from hil.channel.random import complex_normal  # noqa: E402
from hil.phy import FrameReceiver, FrameTransmitter, PhyConfig  # noqa: E402
from hil.phy.fast import FastReceiver  # noqa: E402
from hil.radio.loopback import LoopbackRadio  # noqa: E402

BATCH = 16


def _median_time(fn, reps: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this process (seconds) of ``fn()`` over ``reps`` calls."""
    wall, cpu = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return float(np.median(wall)), float(np.median(cpu))


def main(reps: int = 20) -> None:
    rng = np.random.default_rng(0)
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    print("Times in ms per burst, wall / CPU of this process (the CPU time is what the decode costs; the wall "
          "time adds the waits of a shared machine). Real time x = air time / wall time (> 1: faster than the air).")
    print()
    print("| mode | antennas | B x K | burst samples | air ms at 1 MS/s | build | receive, reference | "
          f"receive, fast | speed-up (CPU) | fast, batch of {BATCH} | batch, 2 threads | real time x (fast) | "
          f"real time x (batch) | real time x (batch, 2 threads) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for mode, n in (("single", 1), ("flat", 2), ("ofdm", 2)):
        cfg = PhyConfig(n_tx=n, n_rx=n, mode=mode)
        tx, ref, fast = FrameTransmitter(cfg), FrameReceiver(cfg), FastReceiver(cfg)
        spec = {"n_tx": n, "n_rx": n, "fading": "rayleigh", "snr_db": 20.0, "cfo_hz": 5e4, "delay_samples": 1.4}
        radio = LoopbackRadio(build_channel(spec, rng))
        for b, k in ((4, 32), (32, 64), (128, 128)):
            s = complex_normal(rng, (b, n, k), dtype=np.complex64)
            t_build = _median_time(lambda: tx.build(s), reps)
            burst, _ = tx.build(s)
            caps = [radio.transceive(burst) for _ in range(BATCH)]
            r = max(3, reps // 4)  # rounds of BATCH captures
            t_ref = [v / BATCH for v in _median_time(lambda: [ref.receive(c) for c in caps], r)]
            t_fast = [v / BATCH for v in _median_time(lambda: [fast.receive(c) for c in caps], r)]
            t_batch = [v / BATCH for v in _median_time(lambda: fast.receive_batch(caps), r)]
            t_b2 = [v / BATCH for v in _median_time(lambda: fast.receive_batch(caps, workers=2), r)]
            air = burst.shape[1] / cfg.sample_rate_hz

            def ms(t):
                return f"{t[0] * 1e3:.2f} / {t[1] * 1e3:.2f}"
            print(f"| {mode} | {n}x{n} | {b} x {k} | {burst.shape[1]} | {air * 1e3:.1f} | {ms(t_build)} | "
                  f"{ms(t_ref)} | {ms(t_fast)} | {t_ref[1] / t_fast[1]:.2f} | {ms(t_batch)} | {ms(t_b2)} | "
                  f"{air / t_fast[0]:.2f} | {air / t_batch[0]:.2f} | {air / t_b2[0]:.2f} |", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=20, help="timing rounds per case (build); receive uses reps // 4 rounds of 16")
    main(ap.parse_args().reps)
