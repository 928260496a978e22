"""Time per training step of the digits model: digital vs over the air (ideal, loopback+PHY, ZMQ+PHY).

    python benchmarks/train_step.py [--steps 40] [--batch 64] [--channel-uses 16] [--out docs/ota_train_step.json]  (default: runs/ota_train_step.json)

One step = forward (one frame), backward (reciprocity: a second frame over the reverse link), Adam
update. The PHY rows run twice in the same process, with the reference receiver
(``hil.phy.FrameReceiver``) and with the fast one (``hil.phy.fast.FastReceiver``, PhyLink's
default), and split the step into phases, averaged per step: ``build`` (transmitter), ``server``
(the radio: loopback channel in process, or the ZMQ round trip through the channel server),
``receive`` (the PHY receiver) and ``autograd`` (the rest: model forward/backward, Adam, the OTA
layer's own work), plus the median CPU time of this process per step (the channel server's CPU
is not in it). Then one test-set evaluation over ZMQ + PHY, one forward pass per batch vs the
double-buffered stream (``CutModel.forward_many``). Prints a markdown table and writes JSON with the
machine, date and load.
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

from hil.data import load_digits  # noqa: E402
from hil.ota.link import OTALink, calibrate_reciprocity  # noqa: E402
from hil.phy import FrameReceiver  # noqa: E402
from hil.train.config import OTAConfig  # noqa: E402
from hil.train.links import open_transport  # noqa: E402
from hil.train.models import build_model  # noqa: E402

PHASES = ("build", "server", "receive")


def machine() -> dict:
    try:
        cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        name = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("Model name")), "?")
    except OSError:
        name = platform.processor()
    return {"cpu": name, "nproc": os.cpu_count(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch_threads": torch.get_num_threads()}


def write_results(out: dict, path: str) -> None:
    """Write a benchmark's results (with ``out["machine"]``) as JSON to ``path`` and print the machine line."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as fh:
        json.dump(out, fh, indent=1)
    print(json.dumps(out["machine"]))


def _phase_seconds(links) -> dict:
    out = dict.fromkeys(PHASES, 0.0)
    for link in links:
        if link is not None:
            out["build"] += link.seconds["build"]
            out["server"] += link.seconds["radio"]
            out["receive"] += link.seconds["receive"]
    return out


def time_steps(model, data, steps: int, batch: int, links=(), warmup: int = 3) -> tuple[float, dict]:
    """Median step time and the mean per-step phases (seconds) over ``steps`` steps after ``warmup``,
    with ``"cpu"``: the median CPU time of this process per step."""
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    g = torch.Generator().manual_seed(0)
    model.train()
    times, cpu = [], []
    phases = dict.fromkeys((*PHASES, "autograd"), 0.0)
    for i in range(steps + warmup):
        idx = torch.randint(0, len(data.x_train), (batch,), generator=g)
        p0 = _phase_seconds(links)
        t0, c0 = time.perf_counter(), time.process_time()
        loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
            cpu.append(time.process_time() - c0)
            p1 = _phase_seconds(links)
            link_time = 0.0
            for k in PHASES:
                phases[k] += (p1[k] - p0[k]) / steps
                link_time += p1[k] - p0[k]
            phases["autograd"] += (dt - link_time) / steps
    phases["cpu"] = float(np.median(cpu))  # this process only (not the channel server's)
    return float(np.median(times)), phases


def time_evaluation(data, channel_uses: int, batch: int, reps: int = 7) -> dict:
    """Wall time of one test-set evaluation over ZMQ + PHY (fast receiver, estimated mode): one forward
    pass per batch vs the double-buffered stream of ``CutModel.forward_many``, alternating, median."""
    cfg = OTAConfig(transport="zmq", gradient_mode="estimated", channel_uses=channel_uses, snr_db=20.0)
    t, closer = open_transport(cfg)
    try:
        torch.manual_seed(0)
        m = build_model("mlp", data.image_shape, 10, ota=True, link=OTALink(t, "estimated"),
                        channel_uses=channel_uses).eval()
        xs = [data.x_test[i : i + batch] for i in range(0, len(data.x_test), batch)]
        times: dict[str, list[float]] = {"sequential": [], "pipelined": []}
        with torch.no_grad():
            for _ in range(reps + 1):  # the first round warms up
                for mode in times:
                    t0 = time.perf_counter()
                    _ = [m(x) for x in xs] if mode == "sequential" else m.forward_many(xs)
                    times[mode].append(time.perf_counter() - t0)
    finally:
        closer.close()
    return {"frames": len(xs), "reps": reps, "sequential_s": float(np.median(times["sequential"][1:])),
            "pipelined_s": float(np.median(times["pipelined"][1:]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--channel-uses", type=int, default=16)
    ap.add_argument("--out", default="runs/ota_train_step.json", help="JSON results; docs/ota_train_step.json is the tracked one")
    a = ap.parse_args()
    torch.set_num_threads(1)
    load0 = os.getloadavg()
    data = load_digits()
    rows = []
    torch.manual_seed(0)
    s, ph = time_steps(build_model("mlp", data.image_shape, 10, ota=False), data, a.steps, a.batch)
    rows.append(("digital", "-", "-", s, 0, ph))
    for transport in ("ideal", "loopback", "zmq"):
        for mode in ("reciprocity", "estimated"):
            for receiver in (("-",) if transport == "ideal" else ("reference", "fast")):
                cfg = OTAConfig(transport=transport, gradient_mode=mode, channel_uses=a.channel_uses, snr_db=20.0)
                t, closer = open_transport(cfg)
                try:
                    links = getattr(t, "links", ())
                    if receiver == "reference":
                        for link in links:
                            if link is not None:
                                link.receiver = FrameReceiver(link.cfg)
                    cal = calibrate_reciprocity(t, np.random.default_rng(0)) if mode == "reciprocity" else None
                    torch.manual_seed(0)
                    m = build_model("mlp", data.image_shape, 10, ota=True, link=OTALink(t, mode, cal), channel_uses=a.channel_uses)
                    f0 = t.frames
                    s, ph = time_steps(m, data, a.steps, a.batch, links)
                    rows.append((transport, mode, receiver, s, (t.frames - f0) / (a.steps + 3), ph))
                finally:
                    closer.close()
    ev = time_evaluation(data, a.channel_uses, a.batch)
    load = os.getloadavg()
    print(f"| cut | gradient mode | receiver | ms per step (median of {a.steps}) | CPU ms per step (this process) | "
          "frames per step | build | server | receive | autograd (ms per step, mean) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for tr, mode, rcv, s, f, ph in rows:
        phs = " | ".join(f"{ph[k] * 1e3:.2f}" for k in (*PHASES, "autograd"))
        print(f"| {tr} | {mode} | {rcv} | {s * 1e3:.2f} | {ph['cpu'] * 1e3:.2f} | {f:.0f} | {phs} |")
    print()
    print(f"Test-set evaluation over ZMQ + PHY ({ev['frames']} frames of batch {a.batch}), median of {ev['reps']}: "
          f"one pass per batch {ev['sequential_s'] * 1e3:.1f} ms, double-buffered stream (CutModel.forward_many) "
          f"{ev['pipelined_s'] * 1e3:.1f} ms")
    out = {"machine": {**machine(), "loadavg_start": list(load0), "loadavg_end": list(load)}, "batch": a.batch, "channel_uses": a.channel_uses,
           "steps": a.steps, "evaluation": ev,
           "rows": [{"transport": tr, "gradient_mode": m, "receiver": r, "seconds_per_step": s, "frames_per_step": f,
                     "phase_seconds_per_step": ph} for tr, m, r, s, f, ph in rows]}
    write_results(out, a.out)


if __name__ == "__main__":
    main()
