"""PHY processing speed: transmitter build and receiver decode time per burst (single thread).

    python benchmarks/phy_speed.py

Prints a markdown table (mode, n_tx x n_rx, B x K, samples, build ms, receive ms, channel uses/s of
receiver processing) for docs/performance.md. Channel: 2x2 Rayleigh, 20 dB, CFO 50 kHz, delay 1.4.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hil.channel.config import build_channel
from hil.channel.random import complex_normal
from hil.phy import FrameReceiver, FrameTransmitter, PhyConfig
from hil.radio.loopback import LoopbackRadio


def main(reps: int = 20) -> None:
    rng = np.random.default_rng(0)
    print("| mode | antennas | B x K | burst samples | build (ms) | receive (ms) | channel uses/s (receive) |")
    print("|---|---|---|---|---|---|---|")
    for mode, n in (("single", 1), ("flat", 2), ("ofdm", 2)):
        cfg = PhyConfig(n_tx=n, n_rx=n, mode=mode)
        tx, rx = FrameTransmitter(cfg), FrameReceiver(cfg)
        spec = {"n_tx": n, "n_rx": n, "fading": "rayleigh", "snr_db": 20.0, "cfo_hz": 5e4, "delay_samples": 1.4}
        radio = LoopbackRadio(build_channel(spec, rng))
        for b, k in ((4, 32), (32, 64), (128, 128)):
            s = complex_normal(rng, (b, n, k), dtype=np.complex64)
            t = time.perf_counter()
            for _ in range(reps):
                burst, _ = tx.build(s)
            t_build = (time.perf_counter() - t) / reps
            caps = [radio.transceive(burst) for _ in range(reps)]
            t = time.perf_counter()
            for c in caps:
                rx.receive(c)
            t_rx = (time.perf_counter() - t) / reps
            print(f"| {mode} | {n}x{n} | {b} x {k} | {burst.shape[1]} | {t_build * 1e3:.1f} | {t_rx * 1e3:.1f} | "
                  f"{b * k / t_rx:,.0f} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=20, help="bursts timed per case")
    main(ap.parse_args().reps)
