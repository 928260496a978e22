"""In-process throughput of the channel models (one core, no sockets).

Runs ``model(x)`` (generate + apply) on bursts of ``--samples`` samples (default 2^20) per call,
``--repeat`` times after one warm-up call, and prints the median throughput in Msps (million
time samples per second, all antennas together), from wall time and from this process's CPU time
(the CPU-time figure is the useful one when other jobs share the cores: check the load average
printed in the header). The end-to-end server numbers are in
benchmarks/channel_throughput.py.

    python benchmarks/channel_models.py                 # table
    python benchmarks/channel_models.py --json out.json # also write the numbers
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from hil.channel import build_channel  # noqa: E402

FS = 30.72e6
CASES: list[tuple[str, dict]] = [
    ("1x1 AWGN (pool noise)", {"snr_db": 10}),
    ("1x1 AWGN (exact noise)", {"snr_db": 10, "noise": "exact"}),
    ("1x1 CFO", {"cfo_hz": 1000, "sample_rate_hz": FS}),
    ("1x1 AWGN + CFO", {"snr_db": 10, "cfo_hz": 1000, "sample_rate_hz": FS}),
    ("2x2 Rayleigh static", {"fading": "rayleigh", "n_tx": 2, "n_rx": 2}),
    ("2x2 Rayleigh Gauss-Markov (block 1024, rho 0.99)",
     {"fading": "rayleigh", "n_tx": 2, "n_rx": 2, "rho": 0.99, "block_samples": 1024}),
    ("2x2 Rayleigh Jakes (f_d 100 Hz @ 30.72 Msps)",
     {"fading": "rayleigh", "n_tx": 2, "n_rx": 2, "doppler_hz": 100, "sample_rate_hz": FS}),
    ("2x2 Rayleigh Jakes (f_d 100 Hz @ 1 Msps)",
     {"fading": "rayleigh", "n_tx": 2, "n_rx": 2, "doppler_hz": 100, "sample_rate_hz": 1e6}),
    ("2x2 GM Rayleigh + AWGN + CFO",
     {"fading": "rayleigh", "n_tx": 2, "n_rx": 2, "rho": 0.99, "block_samples": 1024,
      "snr_db": 10, "cfo_hz": 1000, "sample_rate_hz": FS}),
    ("2x2 Jakes Rayleigh + AWGN + CFO (30.72 Msps)",
     {"fading": "rayleigh", "n_tx": 2, "n_rx": 2, "doppler_hz": 100,
      "snr_db": 10, "cfo_hz": 1000, "sample_rate_hz": FS}),
    ("4x4 GM Rayleigh + AWGN + CFO",
     {"fading": "rayleigh", "n_tx": 4, "n_rx": 4, "rho": 0.99, "block_samples": 1024,
      "snr_db": 10, "cfo_hz": 1000, "sample_rate_hz": FS}),
    ("1x1 TDL-A 100 ns @ 30.72 Msps + AWGN",
     {"tdl": "TDL-A", "delay_spread_s": 100e-9, "sample_rate_hz": FS, "snr_db": 20}),
    ("2x2 TDL-C 300 ns @ 30.72 Msps, GM + AWGN",
     {"tdl": "TDL-C", "delay_spread_s": 300e-9, "sample_rate_hz": FS, "n_tx": 2, "n_rx": 2,
      "rho": 0.99, "block_samples": 4096, "snr_db": 20}),
    ("1x1 phase noise (Wiener)", {"phase_noise": {"linewidth_hz": 100}, "sample_rate_hz": FS}),
    ("1x1 fractional delay 3.3", {"delay_samples": 3.3}),
    ("1x1 SCO 20 ppm", {"sco_ppm": 20}),
    ("1x1 IQ imbalance", {"iq_imbalance": {"amplitude_db": 0.5, "phase_deg": 2}}),
    ("1x1 quantization 12 bits", {"quantization": 12}),
]


def measure(spec: dict, n: int, repeat: int) -> tuple[float, float]:
    ch = build_channel(spec, np.random.default_rng(0))
    r = np.random.default_rng(1)
    x = (0.2 * (r.standard_normal((ch.n_in, n)) + 1j * r.standard_normal((ch.n_in, n)))).astype(
        np.complex64
    )
    ch(x)  # warm-up (noise pool, tables)
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        ch(x)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return n / statistics.median(wall) / 1e6, n / statistics.median(cpu) / 1e6


def machine() -> str:
    try:
        cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        name = next(l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name"))
    except Exception:  # noqa: BLE001 - informational only
        name = platform.processor() or "unknown"
    return f"{name}, nproc {os.cpu_count()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=1 << 20, help="samples per call (default 2^20)")
    ap.add_argument("--repeat", type=int, default=7, help="timed calls per case (median reported)")
    ap.add_argument("--only", default=None, help="run only cases whose name contains this text")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    a = ap.parse_args()
    rows = []
    print(f"# {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"{a.samples} samples/call, median of {a.repeat}; load avg {os.getloadavg()[0]:.1f}")
    print(f"{'case':55s} {'Msps wall':>10s} {'Msps CPU':>10s}")
    for name, spec in CASES:
        if a.only and a.only not in name:
            continue
        msps, msps_cpu = measure(spec, a.samples, a.repeat)
        rows.append({"case": name, "spec": spec, "msps_wall": round(msps, 1),
                     "msps_cpu": round(msps_cpu, 1)})
        print(f"{name:55s} {msps:10.1f} {msps_cpu:10.1f}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": machine(), "samples": a.samples, "load_avg": os.getloadavg()[0],
                       "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                       "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
