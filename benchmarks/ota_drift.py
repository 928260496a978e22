"""Why reciprocity training collapses on a drifting channel: docs/ota.md, "Time-varying channel".

    python benchmarks/ota_drift.py [--rho 0.99] [--seeds 1,2,3] [--epochs 20] [--out docs/ota_drift.json]  (default: runs/ota_drift.json)

Trains the digits MLP of benchmarks/ota_sweeps.py over the in-process ``ideal`` transport (Gauss-Markov
``rho`` per burst, 20 dB, 2x2, K = 16) with each gradient mode, and (for reciprocity) logs per step the
cosine between the echoed gradient and the exact ``H^H g_y`` of the forward burst. After training it
evaluates the folded network over the final channel rotated by a common phase (0, pi/2, pi). Also runs
reciprocity with a learning-rate floor (cosine decay to ``--lr-floor`` instead of 0), reciprocity with the
reverse burst in the forward burst's channel block (``same_block``), and both modes with the receiver
holding the channel (``OTALink(hold_channel=True)``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from hil.ota.link import OTALink, calibrate_reciprocity, watch_echo_cosine  # noqa: E402
from hil.train import loop  # noqa: E402
from hil.train.config import from_dict  # noqa: E402
from hil.data import load_digits  # noqa: E402
from hil.train.links import open_transport  # noqa: E402
from hil.train.models import unsplit  # noqa: E402
from hil.train.run import _build  # noqa: E402


def run(mode: str, rho: float, seed: int, epochs: int, lr_floor: float, data, hold: bool = False,
        transport: str = "ideal", same_block: bool = False) -> dict:
    """One training run; ``same_block``: the reverse burst does not advance the (ideal) channel, i.e. the
    echo crosses exactly the forward burst's channel (the best possible ordering)."""
    cfg = from_dict({"model": {"kind": "mlp", "hidden": 32, "cut_out": 32},
                     "ota": {"n_tx": 2, "n_rx": 2, "transport": transport, "gradient_mode": mode, "snr_db": 20.0,
                             "rho": rho, "channel_uses": 16, "channel_seed": seed, "hold_channel": hold},
                     "train": {"epochs": epochs, "batch_size": 128, "lr": 0.01, "seed": 0}})
    t, closer = open_transport(cfg.ota)
    cos: list[float] = []
    if same_block:
        if transport != "ideal":
            raise ValueError("same_block needs the ideal transport")
        t.reverse_advances = False
    try:
        link = OTALink(t, mode, calibrate_reciprocity(t, np.random.default_rng(0)) if mode == "reciprocity" else None, hold_channel=hold)
        watch_echo_cosine(link, t, cos.append)  # cos(echo, exact H^H g) on the ideal transport
        torch.manual_seed(0)
        model = _build(cfg, data, True, link)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR
        if lr_floor > 0:
            loop.torch.optim.lr_scheduler.CosineAnnealingLR = lambda opt, T_max: sched(opt, T_max, eta_min=lr_floor)
        try:
            hist = loop.train_model(model, data, epochs, 128, 0.01, 0)
        finally:
            loop.torch.optim.lr_scheduler.CosineAnnealingLR = sched
        h = link.reference if hold else t.true_channel()
        with torch.no_grad():
            twin = [100 * float((unsplit(model, h * np.exp(1j * p))(data.x_test).argmax(1) == data.y_test).float().mean())
                    for p in (0.0, np.pi / 2, np.pi)]
    finally:
        closer.close()
    return {"mode": mode, "rho": rho, "seed": seed, "lr_floor": lr_floor, "hold_channel": hold, "transport": transport,
            "same_block": same_block,
            "test": [r.test_accuracy for r in hist], "train": [r.train_accuracy for r in hist],
            "final": hist[-1].test_accuracy, "min_train_after5": min((r.train_accuracy for r in hist[5:]), default=None),
            "min_test_after5": min((r.test_accuracy for r in hist[5:]), default=None),
            "cos_min": min(cos) if cos else None, "cos_mean": float(np.mean(cos)) if cos else None,
            "twin_phase_0_90_180": twin}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rho", type=float, default=0.99)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr-floor", type=float, default=0.003)
    ap.add_argument("--transport", default="ideal", help="ideal or loopback (loopback: no exact mode)")
    ap.add_argument("--out", default="runs/ota_drift.json", help="JSON results; docs/ota_drift.json is the tracked one")
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = load_digits()
    rows = []
    for seed in (int(s) for s in a.seeds.split(",")):
        for mode, floor, hold, same in (("reciprocity", 0.0, False, False), ("estimated", 0.0, False, False),
                                        ("exact", 0.0, False, False), ("reciprocity", a.lr_floor, False, False),
                                        ("reciprocity", 0.0, False, True), ("reciprocity", 0.0, True, False),
                                        ("estimated", 0.0, True, False)):
            if (mode == "exact" or same) and a.transport != "ideal":
                continue
            r = run(mode, a.rho, seed, a.epochs, floor, data, hold, a.transport, same)
            rows.append(r)
            cs = "" if r["cos_min"] is None else f" cos(echo, exact) min {r['cos_min']:.2f} mean {r['cos_mean']:.3f}"
            print(f"seed {seed} {a.transport} {mode:11s} floor {floor:g} hold {hold:d} same-block {same:d}: final {r['final']:.1f} %, epochs 6+: min train {r['min_train_after5']:.1f} %, "
                  f"min test {r['min_test_after5']:.1f} %;{cs}; twin at phase 0/90/180 deg: "
                  + "/".join(f"{v:.1f}" for v in r["twin_phase_0_90_180"]), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"rho": a.rho, "epochs": a.epochs, "rows": rows}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
