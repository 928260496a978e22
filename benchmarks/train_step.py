"""Time per training step of the digits model: digital vs over the air (ideal, loopback+PHY, ZMQ+PHY).

    python benchmarks/train_step.py [--steps 40] [--batch 64] [--channel-uses 16] [--out docs/ota_train_step.json]  (default: runs/ota_train_step.json)

One step = forward (one frame), backward (reciprocity: a second frame over the reverse link), Adam
update. Prints a markdown table and writes JSON with the machine and date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from hil.ota.link import OTALink, calibrate_reciprocity  # noqa: E402
from hil.train.config import OTAConfig  # noqa: E402
from hil.data import load_digits  # noqa: E402
from hil.train.links import open_transport  # noqa: E402
from hil.train.models import build_model  # noqa: E402


def machine() -> dict:
    try:
        cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        name = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("Model name")), "?")
    except OSError:
        name = platform.processor()
    return {"cpu": name, "nproc": os.cpu_count(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch_threads": torch.get_num_threads()}


def time_steps(model, data, steps: int, batch: int, warmup: int = 3) -> float:
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    g = torch.Generator().manual_seed(0)
    model.train()
    times = []
    for i in range(steps + warmup):
        idx = torch.randint(0, len(data.x_train), (batch,), generator=g)
        t0 = time.perf_counter()
        loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--channel-uses", type=int, default=16)
    ap.add_argument("--out", default="runs/ota_train_step.json", help="JSON results; docs/ota_train_step.json is the tracked one")
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = load_digits()
    rows = []
    torch.manual_seed(0)
    rows.append(("digital", "-", time_steps(build_model("mlp", data.image_shape, 10, ota=False), data, a.steps, a.batch), 0))
    for transport in ("ideal", "loopback", "zmq"):
        for mode in ("reciprocity", "estimated"):
            cfg = OTAConfig(transport=transport, gradient_mode=mode, channel_uses=a.channel_uses, snr_db=20.0)
            t, closer = open_transport(cfg)
            try:
                cal = calibrate_reciprocity(t, np.random.default_rng(0)) if mode == "reciprocity" else None
                torch.manual_seed(0)
                m = build_model("mlp", data.image_shape, 10, ota=True, link=OTALink(t, mode, cal), channel_uses=a.channel_uses)
                f0 = t.frames
                s = time_steps(m, data, a.steps, a.batch)
                rows.append((transport, mode, s, (t.frames - f0) / (a.steps + 3)))
            finally:
                closer.close()
    print(f"| cut | gradient mode | ms per step (median of {a.steps}) | frames per step |")
    print("|---|---|---|---|")
    for tr, mode, s, f in rows:
        print(f"| {tr} | {mode} | {s * 1e3:.2f} | {f:.0f} |")
    out = {"machine": machine(), "batch": a.batch, "channel_uses": a.channel_uses, "steps": a.steps,
           "rows": [{"transport": tr, "gradient_mode": m, "seconds_per_step": s, "frames_per_step": f} for tr, m, s, f in rows]}
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as fh:
        json.dump(out, fh, indent=1)
    print(json.dumps(out["machine"]))


if __name__ == "__main__":
    main()
