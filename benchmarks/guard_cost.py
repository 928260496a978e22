"""What the channel server's hostile-input guards cost per message, against its whole per-message path.

Usage:
    python benchmarks/guard_cost.py [--reps 200] [--json out.json]

End-to-end runs cannot resolve a 2 % difference on a shared 2-core machine (two runs of the same code
differ by up to 2x), so this measures in one process, on one thread, what the server does per
message. A real :class:`ChannelServer` (sockets bound on 127.0.0.1, ``pipeline = false`` so the model
runs inline in the timed call) gets real ZMQ messages (sent through an inproc PUSH/PULL pair and
received with ``copy=False``, as its loop receives them); its outputs go out on its rx sockets to
PULL readers that this script drains outside the timed part.

- **Whole path**: ``ChannelServer._guarded_message`` for every antenna's message of one stream column
  or one burst: guard, header parse, sample checks, pending-burst bookkeeping (burst mode), stacking
  and padding, the link's real channel model (``generate`` + ``apply``), queueing and the zero-copy
  sends; plus one ``_expire`` (the loop runs it once per turn).
- **Guard steps**, each called directly on the same messages: the per-message guard (the ``try``
  around the handler: ``_guarded_message`` minus the handler it wraps, timed with the handler
  replaced by a no-op on a second server), :func:`screen_samples` (NaN/Inf and saturation check),
  :func:`parse_header` (size and nesting-depth bounds, types and ranges; the whole function, JSON
  parse included), :class:`PendingBursts` ``add`` for every antenna plus ``expire`` (the whole
  bookkeeping, with the server's limits), and ``_expire`` (pending-burst expiry and held-output
  deadlines). Counting these whole functions as guard cost overstates it (``json.loads`` and the
  pairing of a burst's antennas were there before the guards): the ratio is an upper bound. The
  other guards are integer comparisons inline in the handler (message length, ``rx_samples`` caps,
  queued bytes) and are inside the whole-path time only.

Each repetition times the whole path once and then each guard step (averaged over ``--inner`` calls),
alternating, so slow phases of the machine hit both; reported: median and the 10-90 % range over the
repetitions, and median guard / median whole path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim_fallback.channel_server import (  # noqa: E402
    MAX_PENDING_PER_SENDER,
    MAX_PENDING_TOTAL,
    PENDING_TIMEOUT_S,
    ChannelServer,
    PendingBursts,
    parse_header,
    screen_samples,
)
from sim_fallback.topology import topology_from_dict, two_node_config  # noqa: E402

FS = 61.44e6
CHANNEL = {"fading": "rayleigh", "time": "gauss_markov", "rho": 0.999, "block_samples": 1024, "snr_db": 10.0,
           "cfo_hz": 1000.0}
#: (name, mode, samples per antenna message, antennas)
CASES = [
    ("stream, 2x2, 2^18-sample messages (benchmarks/channel_throughput.py)", "stream", 1 << 18, 2),
    ("stream, 2x2, 4096-sample messages (a GNU Radio push_sink's usual size)", "stream", 4096, 2),
    ("burst, 2x2, 6403-sample bursts with a header (ZmqRadio, PHY 32 x 64)", "burst", 6403, 2),
    ("burst, 1x1, 512-sample bursts with a header", "burst", 512, 1),
]


def real_frames(ctx: zmq.Context, parts: list[bytes | np.ndarray]) -> list[zmq.Frame]:
    """``parts`` sent as one multipart message through an inproc PUSH/PULL pair, received as the server
    receives (``recv_multipart(copy=False)``)."""
    ep = f"inproc://guard-cost-{os.urandom(4).hex()}"
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    pull.bind(ep)
    push.connect(ep)
    push.send_multipart(parts, copy=False)
    frames = pull.recv_multipart(copy=False)
    push.close(0)
    pull.close(0)
    return frames


def percentiles(v: list[float]) -> dict:
    q = np.percentile(np.asarray(v), [10, 50, 90])
    return {"p10": float(q[0]), "median": float(q[1]), "p90": float(q[2])}


def run_case(name: str, mode: str, n: int, n_ant: int, reps: int, inner: int) -> dict:
    cfg = two_node_config(CHANNEL, a="a", b="b", n_a=n_ant, n_b=n_ant, mode=mode, reciprocal=False,
                          sample_rate_hz=FS, pipeline=False, max_message_bytes=max(1 << 22, 16 * n))
    topo = topology_from_dict(cfg)
    ctx = zmq.Context(io_threads=1)
    srv = ChannelServer(topo, context=ctx)
    bare = ChannelServer(topo, context=ctx)  # the guard alone: its handler replaced by a no-op
    readers = []
    try:
        srv.bind()
        for ep in srv.info()["nodes"]["b"]["rx"]:
            s = ctx.socket(zmq.PULL)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(ep)
            readers.append(s)
        rt, rt_b = srv.nodes["a"], srv.nodes["b"]
        rng = np.random.default_rng(1)
        x = (0.3 * (rng.standard_normal((n_ant, n)) + 1j * rng.standard_normal((n_ant, n)))).astype(np.complex64)
        sender = os.urandom(6).hex()
        if mode == "stream":  # headerless, as GNU Radio sends
            msgs = [[real_frames(ctx, [x[i]]) for i in range(n_ant)]]
            headers = [b""]
        else:  # one message per antenna, [header, samples]; a new seq per burst
            headers = [json.dumps({"seq": k, "dst": "b", "sender": sender}).encode() for k in range(reps + 8)]
            msgs = [[real_frames(ctx, [h, x[i]]) for i in range(n_ant)] for h in headers]
        floats = [m[-1].buffer for m in msgs[0]]
        floats = [np.frombuffer(b, np.float32) for b in floats]

        def drain() -> None:
            for s in readers:
                got = 0
                while got < n_out_samples:
                    if not s.poll(10000):
                        raise TimeoutError("no output from the server within 10 s")
                    got += len(s.recv(copy=False).buffer) // 8

        d = rt.directions["b"]
        n_out_samples = n if mode == "stream" else d.lead + d.jitter + n + d.trail

        def whole(k: int) -> float:
            frames = msgs[k % len(msgs)]
            t = time.perf_counter_ns()
            for ant in range(n_ant):
                srv._guarded_message(rt, ant, frames[ant])
            srv._expire()
            dt = time.perf_counter_ns() - t
            drain()
            return dt / 1e3

        bare._handle_message = lambda rt, ant, frames: None  # type: ignore[method-assign]
        bare_rt = bare.nodes["a"]

        def try_guard() -> float:
            frames = msgs[0]
            t = time.perf_counter_ns()
            for _ in range(inner):
                for ant in range(n_ant):
                    bare._guarded_message(bare_rt, ant, frames[ant])
            t1 = time.perf_counter_ns()
            for _ in range(inner):
                for ant in range(n_ant):
                    bare._handle_message(bare_rt, ant, frames[ant])
            t2 = time.perf_counter_ns()
            return max(0.0, (t1 - t) - (t2 - t1)) / inner / 1e3

        def screen() -> float:
            t = time.perf_counter_ns()
            for _ in range(inner):
                for f in floats:
                    screen_samples(f)
            return (time.perf_counter_ns() - t) / inner / 1e3

        def header(k: int) -> float:
            raw = headers[k % len(headers)]
            t = time.perf_counter_ns()
            for _ in range(inner):
                for _ant in range(n_ant):
                    parse_header(raw)
            return (time.perf_counter_ns() - t) / inner / 1e3

        lim = srv.limits
        pend = PendingBursts(MAX_PENDING_PER_SENDER, lim["pending_bytes_per_sender"], MAX_PENDING_TOTAL,
                             lim["pending_bytes_total"], PENDING_TIMEOUT_S)
        seq = [0]

        def pending() -> float:
            t = time.perf_counter_ns()
            for _ in range(inner):
                seq[0] += 1
                now = time.monotonic()
                for ant in range(n_ant):
                    pend.add(("a", sender, seq[0]), n_ant, ant, (x[ant], {}), x[ant].nbytes, now)
                pend.expire(now)
            return (time.perf_counter_ns() - t) / inner / 1e3

        def expire() -> float:
            t = time.perf_counter_ns()
            for _ in range(inner):
                srv._expire()
            return (time.perf_counter_ns() - t) / inner / 1e3

        steps = {"per-message guard (try)": lambda k: try_guard(), "screen_samples": lambda k: screen(),
                 "_expire": lambda k: expire()}
        if mode == "burst":
            steps["parse_header"] = header
            steps["PendingBursts add + expire"] = lambda k: pending()
        for k in range(4):  # warm-up: kernel compiled/loaded, pools drawn, sockets connected
            whole(k)
            for f in steps.values():
                f(k)
        t_whole, t_steps = [], {s: [] for s in steps}
        for k in range(reps):
            t_whole.append(whole(4 + k))
            for s, f in steps.items():
                t_steps[s].append(f(4 + k))
        t_guard = [sum(t_steps[s][i] for s in steps) for i in range(reps)]
        assert srv.totals["rejected"] == 0 and srv.totals["model_errors"] == 0, srv.stats()
        assert rt_b.c["bursts_out"] == 4 + reps, rt_b.c
        w, g = percentiles(t_whole), percentiles(t_guard)
        return {"case": name, "mode": mode, "samples": n, "antennas": n_ant, "reps": reps,
                "whole_us": w, "guard_us": g, "steps_us": {s: percentiles(v) for s, v in t_steps.items()},
                "guard_share": g["median"] / w["median"]}
    finally:
        for s in readers:
            s.close(0)
        srv.close()
        bare.close()
        ctx.term()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=200, help="alternated repetitions per case (default 200)")
    p.add_argument("--inner", type=int, default=20, help="calls per guard-step timing (default 20)")
    p.add_argument("--cases", default="", help="comma-separated case numbers (1-based); default all")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    a = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    load0 = os.getloadavg()
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    sel = [int(c) - 1 for c in a.cases.split(",") if c.strip()] or list(range(len(CASES)))
    out = []
    for i in sel:
        r = run_case(*CASES[i], reps=a.reps, inner=a.inner)
        out.append(r)
        w, g = r["whole_us"], r["guard_us"]
        print(f"{r['case']}: whole path {w['median']:.1f} us (10-90 %: {w['p10']:.1f}-{w['p90']:.1f}), guard steps "
              f"{g['median']:.2f} us ({g['p10']:.2f}-{g['p90']:.2f}) = {100 * r['guard_share']:.2f} % "
              f"[" + ", ".join(f"{s} {v['median']:.2f}" for s, v in r["steps_us"].items()) + "]", flush=True)
    load1 = os.getloadavg()
    print(f"\n`{' '.join([Path(sys.executable).name] + sys.argv)}` on {os.cpu_count()} CPUs, {date}; "
          f"load average {load0[0]:.1f}, {load0[1]:.1f}, {load0[2]:.1f} before and "
          f"{load1[0]:.1f}, {load1[1]:.1f}, {load1[2]:.1f} after")
    if a.json:
        Path(a.json).write_text(json.dumps({"date_utc": date, "load_before": load0, "load_after": load1,
                                            "results": out}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
