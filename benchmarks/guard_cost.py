"""What the channel server's hostile-input guards cost: end to end (guards on vs bypassed), and per message.

Usage:
    python benchmarks/guard_cost.py [--part both|end-to-end|in-process] [--e2e-reps 7] [--seconds 1.0]
                                    [--aa] [--reps 200] [--json out.json]

**End to end** (``--part end-to-end``): for each case two channel-server processes serve the same
topology, one as shipped ("guarded") and one with its guard steps bypassed ("bypassed": this script
run as ``--serve-unguarded``, a monkeypatch that exists only here, see :func:`bypass_guards`); one
client per server (TCP stream, TCP bursts with a header as ZmqRadio sends them, or the shared-memory
data plane) pushes the same input for about ``--seconds``, alternating between the two servers
(guarded first in even repetitions, bypassed first in odd ones) for ``--e2e-reps`` repetitions, so
the machine's slow and fast phases hit both. Reported per case: the rate of each (median and the
10-90 % range), the guard cost as the median over repetitions of ``rate(bypassed) / rate(guarded)
- 1`` (wall clock) with its 10-90 % range, and the CPU-time cost ``cpu(guarded) / cpu(bypassed) - 1``
of the server process per sample, summed over all repetitions and per pair (median, 10-90 %), from
``/proc/PID/task/*/schedstat`` (nanoseconds; the steadier measure on a shared machine). ``--aa``
runs the same comparison between two guarded servers: its spread is the noise floor of the run.
What "bypassed" removes: the NaN/Inf and saturation screen (``screen_samples``; with the fused kernel the integer maximum stays inside its
input copy, see the in-process "kernel input pass" step), the header's size/depth bounds and type
checks (``parse_header`` becomes ``json.loads``), the ``try`` around each message, and pending-burst
expiry; the integer comparisons inline in the handler stay.

**In process** (``--part in-process``): end-to-end runs on a shared 2-core machine swing by more
than the effect, so this also measures in one process, on one thread, what the server does per
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
  the server's header step (``_parse_header``: :func:`parse_header`'s size and nesting-depth bounds,
  types and ranges, JSON parse included, then ``dst`` and ``rx_samples`` checks; parsed once per
  burst, the other antennas' identical bytes come from the node's cache), :class:`PendingBursts`
  ``add`` for every antenna plus ``expire`` (the whole bookkeeping, with the server's limits), and
  ``_expire`` (pending-burst expiry and held-output deadlines). Counting these whole functions as guard cost overstates it (``json.loads`` and the
  pairing of a burst's antennas were there before the guards): the ratio is an upper bound. The
  other guards are integer comparisons inline in the handler (message length, ``rx_samples`` caps,
  queued bytes) and are inside the whole-path time only.

Each repetition times the whole path once and then each guard step (averaged over ``--inner`` calls),
alternating, so slow phases of the machine hit both; reported: median and the 10-90 % range over the
repetitions, and median guard / median whole path. "Guards alone" subtracts, repetition by
repetition, what the end-to-end "bypassed" server still does of these steps: the header step with
``parse_header`` = ``json.loads`` and ``PendingBursts.add`` without ``expire``.

**Kernel input pass** (with ``--part in-process``, numba only): the fused kernel's input copy with the
screen's integer maximum, the same copy without it, and the separate screen pass it replaces, on 2x2
and 1x1 chunks, alternated; the fastest repetition is the intrinsic cost (medians of large chunks
swing with the memory traffic of other processes).
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
sys.path.insert(1, str(Path(__file__).resolve().parent))

from channel_throughput import ShmStream, TcpStream, link_sockets, sized_run, stream_signal  # noqa: E402
from hil.channel.fast import available as fast_available  # noqa: E402
from hil.radio.launch import start_server  # noqa: E402
from sim_fallback.channel_server import (  # noqa: E402
    MAX_PENDING_PER_SENDER,
    MAX_PENDING_TOTAL,
    PENDING_TIMEOUT_S,
    ChannelServer,
    PendingBursts,
    screen_samples,
)
from sim_fallback.topology import topology_from_dict, two_node_config  # noqa: E402
import sim_fallback.channel_server as cs  # noqa: E402

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

        hframes = [[m[0] for m in msg] for msg in msgs] if mode == "burst" else []

        def header(k: int, bypassed: bool = False) -> float:
            # the server's header step as the whole path runs it: a new burst's header parsed and
            # checked on its first antenna, the same bytes on the others taken from the node's cache;
            # bypassed: with parse_header = json.loads, as the end-to-end "bypassed" server runs it
            real = cs.parse_header
            if bypassed:
                cs.parse_header = json.loads
            try:
                t = time.perf_counter_ns()
                for i in range(inner):
                    fr = hframes[(k + i) % len(hframes)]
                    rt.last_header = (None, None)
                    for ant in range(n_ant):
                        srv._parse_header(rt, ant, fr[ant])
                return (time.perf_counter_ns() - t) / inner / 1e3
            finally:
                cs.parse_header = real

        lim = srv.limits
        pend = PendingBursts(MAX_PENDING_PER_SENDER, lim["pending_bytes_per_sender"], MAX_PENDING_TOTAL,
                             lim["pending_bytes_total"], PENDING_TIMEOUT_S)
        seq = [0]

        def pending(expire: bool = True) -> float:
            t = time.perf_counter_ns()
            for _ in range(inner):
                seq[0] += 1
                now = time.monotonic()
                for ant in range(n_ant):
                    pend.add(("a", sender, seq[0]), n_ant, ant, (x[ant], {}), x[ant].nbytes, now)
                if expire:
                    pend.expire(now)
            return (time.perf_counter_ns() - t) / inner / 1e3

        def expire() -> float:
            t = time.perf_counter_ns()
            for _ in range(inner):
                srv._expire()
            return (time.perf_counter_ns() - t) / inner / 1e3

        steps = {"per-message guard (try)": lambda k: try_guard(), "screen_samples": lambda k: screen(),
                 "_expire": lambda k: expire()}
        # what the end-to-end "bypassed" server still does of these steps (subtracted for "guards alone")
        kept = {}
        if mode == "burst":
            steps["header (parse_header + checks)"] = header
            steps["PendingBursts add + expire"] = lambda k: pending()
            kept["header with json.loads only"] = lambda k: header(k, bypassed=True)
            kept["PendingBursts add only"] = lambda k: pending(expire=False)
        for k in range(4):  # warm-up: kernel compiled/loaded, pools drawn, sockets connected
            whole(k)
            for f in (*steps.values(), *kept.values()):
                f(k)
        t_whole, t_steps, t_kept = [], {s: [] for s in steps}, {s: [] for s in kept}
        for k in range(reps):
            t_whole.append(whole(4 + k))
            for s, f in steps.items():
                t_steps[s].append(f(4 + k))
            for s, f in kept.items():
                t_kept[s].append(f(4 + k))
        t_guard = [sum(t_steps[s][i] for s in steps) for i in range(reps)]
        t_alone = [t_guard[i] - sum(t_kept[s][i] for s in kept) for i in range(reps)]
        assert srv.totals["rejected"] == 0 and srv.totals["model_errors"] == 0, srv.stats()
        assert rt_b.c["bursts_out"] == 4 + reps, rt_b.c
        w, g, ga = percentiles(t_whole), percentiles(t_guard), percentiles(t_alone)
        return {"case": name, "mode": mode, "samples": n, "antennas": n_ant, "reps": reps,
                "whole_us": w, "guard_us": g, "steps_us": {s: percentiles(v) for s, v in t_steps.items()},
                "kept_us": {s: percentiles(v) for s, v in t_kept.items()}, "guard_alone_us": ga,
                "guard_share": g["median"] / w["median"], "guard_alone_share": ga["median"] / w["median"]}
    finally:
        for s in readers:
            s.close(0)
        srv.close()
        bare.close()
        ctx.term()


def pre_guard_screen(f: np.ndarray, bits: int | None = None) -> tuple[int, bool]:
    """The input check the channel server had before the hostile-input guards (its first version): the
    NaN/Inf test by one BLAS sum of squares, no saturation check."""
    with np.errstate(over="ignore", invalid="ignore"):
        if not np.isfinite(np.dot(f, f)) and not np.isfinite(f).all():
            return int(np.count_nonzero(~np.isfinite(f))), False
    return 0, False


def bypass_guards(baseline: str = "none") -> None:
    """Benchmark only: the channel-server module with its guard steps bypassed, for the end-to-end
    comparison's "bypassed" server (never a user-facing switch). Inputs stay valid in this benchmark,
    so nothing here changes what the server computes, only what it checks. ``baseline="pre-guard"``
    keeps the NaN/Inf check the server had before the guards (:func:`pre_guard_screen`), so the
    comparison measures what the guards added; ``"none"`` removes every input check."""
    cs.screen_samples = pre_guard_screen if baseline == "pre-guard" else (lambda f, bits=None: (0, False))
    cs.parse_header = json.loads  # no size/depth bounds, no type checks (the JSON parse stays)
    cs.ChannelServer._guarded_message = lambda self, rt, ant, frames: self._handle_message(rt, ant, frames)
    cs.PendingBursts.expire = lambda self, now: 0  # no pending-burst expiry


def serve_unguarded(argv: list[str]) -> int:
    """``--serve-unguarded[=pre-guard] --config FILE --log-level L``: the channel server with :func:`bypass_guards`."""
    bypass_guards(argv.pop(0) if argv and argv[0] in ("none", "pre-guard") else "none")
    from sim_fallback.__main__ import main as serve

    return serve(argv)


def task_cpu_ns(pid: int) -> int:
    """CPU nanoseconds used so far by every thread of process ``pid`` (/proc/PID/task/*/schedstat)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):  # a thread that just ended
            pass
    return total


class TcpBursts:
    """Bursts as ZmqRadio sends them: per TX antenna of node "a" ``[JSON header, cf32 samples]`` with a
    new ``seq`` per burst (the same header bytes on every antenna); ``window`` bursts in flight; each
    burst's output (one message per RX antenna of node "b") read before the next is sent."""

    def __init__(self, ctx: zmq.Context, srv, n_ant: int, n: int, window: int = 4):
        self.window = window
        self.tx, self.rx = link_sockets(ctx, srv)
        x = stream_signal(n_ant, n)
        self.rows = [x[i] for i in range(n_ant)]
        self.sender, self.seq = os.urandom(6).hex(), 0

    def _send(self) -> None:
        hdr = json.dumps({"seq": self.seq, "dst": "b", "sender": self.sender}).encode()
        self.seq += 1
        for s, row in zip(self.tx, self.rows):
            s.send_multipart([hdr, row], copy=row.nbytes < 65536)

    def run(self, k: int) -> float:
        t0 = time.perf_counter()
        sent = 0
        while sent < min(self.window, k):
            self._send()
            sent += 1
        for _ in range(k):
            for s in self.rx:
                if not s.poll(30000):
                    raise TimeoutError("no burst output from the server within 30 s")
                s.recv(copy=False)
            if sent < k:
                self._send()
                sent += 1
        return time.perf_counter() - t0


GM2 = CHANNEL
AWGN1 = {"fading": "none", "snr_db": 20.0, "cfo_hz": 1000.0}
#: (name, data plane, mode, samples per antenna message/chunk, antennas, channel)
E2E_CASES = [
    ("TCP stream 1x1 AWGN + CFO, 2^18-sample messages", "tcp", "stream", 1 << 18, 1, AWGN1),
    ("TCP stream 2x2 Gauss-Markov Rayleigh, 2^18-sample messages", "tcp", "stream", 1 << 18, 2, GM2),
    ("TCP stream 2x2 Gauss-Markov Rayleigh, 4096-sample messages", "tcp", "stream", 4096, 2, GM2),
    ("TCP bursts 1x1 AWGN + CFO, 512 samples + header", "tcp", "burst", 512, 1, AWGN1),
    ("TCP bursts 2x2 Gauss-Markov Rayleigh, 6403 samples + header", "tcp", "burst", 6403, 2, GM2),
    ("shared memory 1x1 AWGN + CFO, 2^18-sample chunks", "shm", "stream", 1 << 18, 1, AWGN1),
    ("shared memory 2x2 Gauss-Markov Rayleigh, 2^18-sample chunks", "shm", "stream", 1 << 18, 2, GM2),
    ("shared memory 2x2 Gauss-Markov Rayleigh, 6403-sample chunks", "shm", "stream", 6403, 2, GM2),
]


def e2e_case(name: str, plane: str, mode: str, n: int, n_ant: int, spec: dict, reps: int, seconds: float,
             aa: bool = False, baseline: str = "none") -> dict:
    """One end-to-end case; ``aa``: the "bypassed" server is a second guarded one (an A/A control:
    the spread of a comparison with no difference, i.e. the noise floor of this machine now)."""
    cfg = two_node_config(spec, a="a", b="b", n_a=n_ant, n_b=n_ant, mode=mode, reciprocal=False,
                          sample_rate_hz=FS, hwm=8, max_message_bytes=max(1 << 27, 16 * n))
    # (as benchmarks/channel_throughput.py: a stream antenna may run 4 max_message_bytes ahead of the
    # other before the server drops its oldest messages; a smaller limit drops 2^18-sample chunks)
    servers, clients = {}, {}
    ctx = zmq.Context(io_threads=1)
    try:
        servers["guarded"] = start_server(cfg, log_level="WARNING")
        servers["bypassed"] = start_server(cfg, log_level="WARNING", command=None if aa else [
            sys.executable, str(Path(__file__).resolve()), "--serve-unguarded", baseline])
        for which, srv in servers.items():
            if plane == "shm":
                clients[which] = ShmStream(ctx, srv, n_ant, n)
            elif mode == "stream":
                clients[which] = TcpStream(ctx, srv, n_ant, n)
            else:
                clients[which] = TcpBursts(ctx, srv, n_ant, n)
        warm = 8 if n >= 1 << 16 else 64
        k = sized_run(clients["guarded"].run, n, seconds, warm)
        clients["bypassed"].run(warm)
        clients["bypassed"].run(warm)
        rate = {w: [] for w in servers}
        cpu = {w: [] for w in servers}
        for r in range(reps):
            for which in (("guarded", "bypassed") if r % 2 == 0 else ("bypassed", "guarded")):
                pid = servers[which].proc.pid
                c0 = task_cpu_ns(pid)
                try:
                    dt = clients[which].run(k)
                except TimeoutError as e:
                    srv = servers[which]
                    raise RuntimeError(f"{name}: the {which} server (exit code {srv.proc.poll()}) stalled: {e}; "
                                       f"its log:\n{srv.log_text()[-3000:]}") from e
                cpu[which].append(task_cpu_ns(pid) - c0)
                rate[which].append(k * n / dt / 1e6)
        cost = [u / g - 1 for g, u in zip(rate["guarded"], rate["bypassed"])]
        cpu_cost = [g / max(u, 1) - 1 for g, u in zip(cpu["guarded"], cpu["bypassed"])]
        from hil.radio.zmq import control_request

        for which, srv in servers.items():
            st = control_request(ctx, srv.control, {"cmd": "stats"}, 10.0)
            if st["rejected"] or st["model_errors"] or st["dropped"]:
                raise RuntimeError(f"{which} server rejected/dropped input: {st}")
        return {"case": name + (" [A/A control: both servers guarded]" if aa else ""), "plane": plane, "mode": mode,
                "samples": n, "antennas": n_ant, "reps": reps, "aa_control": aa,
                "messages_per_run": k, "msps": {w: percentiles(v) for w, v in rate.items()},
                "wall_cost": percentiles(cost), "cpu_cost_pairs": percentiles(cpu_cost),
                "cpu_ns_per_sample": {w: sum(cpu[w]) / (reps * k * n) for w in servers},
                "cpu_cost": sum(cpu["guarded"]) / max(sum(cpu["bypassed"]), 1) - 1}
    finally:
        for c in clients.values():
            if hasattr(c, "close"):
                c.close()
        ctx.destroy(0)
        for srv in servers.values():
            srv.stop()


def kernel_input_pass(n_ant: int, n: int, reps: int, inner: int) -> dict:
    """The fused kernel's input copy with the screen's integer maximum (``hil.channel.fast._load``)
    against the same copy without it (``screen=False``) and the separate screen pass it replaces
    (``screen_bits``), alternated: what the folded screen costs a shared-memory chunk."""
    from hil.channel import fast

    x = stream_signal(n_ant, n)
    hist = np.zeros((n_ant, 0), np.complex64).view(np.uint32)
    xre = np.empty((n_ant, n), np.float32).view(np.uint32)
    xim = np.empty((n_ant, n), np.float32).view(np.uint32)
    xu = x.view(np.uint32)
    f = x.reshape(-1).view(np.float32)
    a, b, c = [], [], []
    for r in range(reps + 2):
        for screen, acc in ((True, a), (False, b), (None, c)):
            t = time.perf_counter_ns()
            for _ in range(inner):
                if screen is None:  # the separate pass the fold replaces (what the TCP path runs per message)
                    fast.screen_bits(f)
                else:
                    fast._load(xu, hist, xre, xim, screen)
            acc.append((time.perf_counter_ns() - t) / inner / 1e3)
    a, b, c = a[2:], b[2:], c[2:]  # compile / cache load
    return {"antennas": n_ant, "samples": n, "with_max_us": percentiles(a), "copy_only_us": percentiles(b),
            "max_cost_us": percentiles([u - v for u, v in zip(a, b)]), "with_max_min_us": min(a),
            "copy_only_min_us": min(b), "separate_screen_us": percentiles(c), "separate_screen_min_us": min(c)}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-unguarded":
        return serve_unguarded(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", default="both", choices=["both", "end-to-end", "in-process"],
                   help="what to measure (default both: end to end, then in process)")
    p.add_argument("--e2e-reps", type=int, default=7, help="alternated guarded/bypassed runs per end-to-end case (default 7)")
    p.add_argument("--seconds", type=float, default=1.0, help="seconds per end-to-end run (default 1)")
    p.add_argument("--e2e-cases", default="", help="comma-separated end-to-end case numbers (1-based); default all")
    p.add_argument("--aa", action="store_true", help="A/A control: compare two guarded servers (the noise floor)")
    p.add_argument("--baseline", default="none", choices=["none", "pre-guard"],
                   help="end to end: what the bypassed server still checks: none (no input check at all, the "
                   "default) or pre-guard (the NaN/Inf check the server had before the guards: the guards' added cost)")
    p.add_argument("--reps", type=int, default=200, help="alternated repetitions per in-process case (default 200)")
    p.add_argument("--inner", type=int, default=20, help="calls per guard-step timing (default 20)")
    p.add_argument("--cases", default="", help="comma-separated in-process case numbers (1-based); default all")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--serve-unguarded", action="store_true",
                   help="(internal, first argument only) run the channel server with its guard steps bypassed: "
                   "the end-to-end baseline, never for use")
    a = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    load0 = os.getloadavg()
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    e2e, out, kin = [], [], []
    if a.part in ("both", "end-to-end"):
        sel = [int(c) - 1 for c in a.e2e_cases.split(",") if c.strip()] or list(range(len(E2E_CASES)))
        for i in sel:
            r = e2e_case(*E2E_CASES[i], reps=a.e2e_reps, seconds=a.seconds, aa=a.aa, baseline=a.baseline)
            e2e.append(r)
            g, u, w, c = r["msps"]["guarded"], r["msps"]["bypassed"], r["wall_cost"], r["cpu_cost_pairs"]
            print(f"{r['case']}: guarded {g['median']:.2f} Msps ({g['p10']:.2f}-{g['p90']:.2f}), "
                  f"{'2nd guarded' if a.aa else 'bypassed'} {u['median']:.2f} ({u['p10']:.2f}-{u['p90']:.2f}); "
                  f"guard cost, wall clock: median {100 * w['median']:+.2f} % (10-90 %: {100 * w['p10']:+.2f} to "
                  f"{100 * w['p90']:+.2f} %); server CPU per sample: all runs {100 * r['cpu_cost']:+.2f} %, per pair "
                  f"median {100 * c['median']:+.2f} % (10-90 %: {100 * c['p10']:+.2f} to {100 * c['p90']:+.2f} %)",
                  flush=True)
    if a.part in ("both", "in-process"):
        sel = [int(c) - 1 for c in a.cases.split(",") if c.strip()] or list(range(len(CASES)))
        for i in sel:
            r = run_case(*CASES[i], reps=a.reps, inner=a.inner)
            out.append(r)
            w, g = r["whole_us"], r["guard_us"]
            print(f"{r['case']}: whole path {w['median']:.1f} us (10-90 %: {w['p10']:.1f}-{w['p90']:.1f}), guard steps "
                  f"{g['median']:.2f} us ({g['p10']:.2f}-{g['p90']:.2f}) = {100 * r['guard_share']:.2f} % "
                  f"[" + ", ".join(f"{s} {v['median']:.2f}" for s, v in r["steps_us"].items()) + "]; "
                  "less what the bypassed server keeps [" + ", ".join(f"{s} {v['median']:.2f}" for s, v in
                                                                       r["kept_us"].items()) + "]: "
                  f"guards alone {r['guard_alone_us']['median']:.2f} us = {100 * r['guard_alone_share']:.2f} %",
                  flush=True)
        if fast_available():
            for n_ant, n in ((2, 1 << 18), (2, 6403), (1, 1 << 18)):
                r = kernel_input_pass(n_ant, n, max(5, a.reps // 10), a.inner)
                kin.append(r)
                print(f"fused kernel input pass, {n_ant} x {n} samples: copy + maximum "
                      f"{r['with_max_us']['median']:.2f} us, copy alone {r['copy_only_us']['median']:.2f} us, "
                      f"the maximum {r['max_cost_us']['median']:+.2f} us (10-90 %: {r['max_cost_us']['p10']:+.2f} "
                      f"to {r['max_cost_us']['p90']:+.2f}); fastest of the repetitions: {r['with_max_min_us']:.2f} "
                      f"and {r['copy_only_min_us']:.2f} us; a separate screen pass {r['separate_screen_us']['median']:.2f} "
                      f"us (fastest {r['separate_screen_min_us']:.2f})", flush=True)
    load1 = os.getloadavg()
    print(f"\n`{' '.join([Path(sys.executable).name] + sys.argv)}` on {os.cpu_count()} CPUs, {date}; "
          f"load average {load0[0]:.1f}, {load0[1]:.1f}, {load0[2]:.1f} before and "
          f"{load1[0]:.1f}, {load1[1]:.1f}, {load1[2]:.1f} after")
    if a.json:
        Path(a.json).write_text(json.dumps({"date_utc": date, "load_before": load0, "load_after": load1,
                                            "command": " ".join([Path(sys.executable).name] + sys.argv),
                                            "end_to_end": e2e, "in_process": out, "kernel_input_pass": kin},
                                           indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
