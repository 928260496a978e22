"""End-to-end throughput of the ZMQ channel server: client -> server (channel) -> client, in Msps.

Usage:
    python benchmarks/channel_throughput.py [--seconds 3] [--chunk 262144] [--cases 1,2] [--transport tcp|ipc]
                                            [--json out.json] [--no-gnuradio]

For each case a channel server process serves a two-node topology in stream mode; the client pushes
cf32 chunks of ``--chunk`` samples per antenna on every TX antenna stream (one PUSH socket per antenna,
zero-copy sends) from a sender thread and pulls the channel output from every RX antenna stream. The
rate is samples per antenna per second over the timed part (after a warm-up), i.e. the sample rate the
link sustains. Per case it also reports the server's CPU (cores used, Msps per server CPU-second,
minor page faults per chunk) and how its model thread spent the run (share of the wall time in the
model, share of that on a CPU, Msps per model-thread CPU-second), from /proc and the server's stats.
Also reported: the rate of the channel model alone in this process (generate + apply)
and, when ``/usr/bin/python3`` can import gnuradio, GNU Radio's ``channels.channel_model`` (AWGN + CFO)
and ``channels.fading_model`` (single-antenna Rayleigh) in a flowgraph ``vector_source -> head(N) ->
block -> null_sink`` timed in the same run, with the ratios.

Targets: 2x2 time-varying Rayleigh + AWGN + CFO >= 30 Msps and >= 4x GR fading_model;
1x1 AWGN + CFO >= 61.44 Msps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hil.radio.launch import start_server  # noqa: E402
from sim_fallback.topology import two_node_config  # noqa: E402

FS = 61.44e6  # nominal sample rate given to the channel specs (Pluto's top rate)
CASES = [
    ("1x1 AWGN + CFO", 1, {"fading": "none", "snr_db": 20.0, "cfo_hz": 1000.0}),
    ("2x2 time-varying Rayleigh (Gauss-Markov per 1024 samples) + AWGN + CFO", 2,
     {"fading": "rayleigh", "time": "gauss_markov", "rho": 0.999, "block_samples": 1024, "snr_db": 10.0,
      "cfo_hz": 1000.0}),
    ("4x4 time-varying Rayleigh (Gauss-Markov per 1024 samples) + AWGN + CFO", 4,
     {"fading": "rayleigh", "time": "gauss_markov", "rho": 0.999, "block_samples": 1024, "snr_db": 10.0,
      "cfo_hz": 1000.0}),
    ("2x2 TDL-A (30 ns delay spread, Gauss-Markov) + AWGN + CFO", 2,
     {"tdl": "TDL-A", "delay_spread_s": 30e-9, "time": "gauss_markov", "rho": 0.999, "block_samples": 1024,
      "snr_db": 10.0, "cfo_hz": 1000.0}),
    ("2x2 Rayleigh, continuous Doppler (Jakes, 100 Hz) + AWGN + CFO", 2,
     {"fading": "rayleigh", "doppler_hz": 100.0, "snr_db": 10.0, "cfo_hz": 1000.0}),
]

GR_SCRIPT = r"""
import json, sys, time
import numpy as np
from gnuradio import gr, blocks, channels
N = int(sys.argv[1])
data = (np.random.default_rng(0).standard_normal(1 << 16) * 0.3 + 0j).astype(np.complex64).tolist()
def rate(make):
    best = 0.0
    for _ in range(2):
        tb = gr.top_block()
        src = blocks.vector_source_c(data, True)
        head = blocks.head(gr.sizeof_gr_complex, N)
        blk = make()
        sink = blocks.null_sink(gr.sizeof_gr_complex)
        tb.connect(src, head, blk, sink)
        t = time.perf_counter(); tb.run(); dt = time.perf_counter() - t
        best = max(best, N / dt / 1e6)
    return best
out = {
  "gr_version": gr.version(),
  "channel_model_awgn_cfo": rate(lambda: channels.channel_model(noise_voltage=0.1, frequency_offset=1000 / 61.44e6,
                                                               epsilon=1.0, taps=[1.0 + 0j], noise_seed=0)),
  "fading_model_rayleigh": rate(lambda: channels.fading_model(8, 100 / 61.44e6, False, 4.0, 0)),
  "copy_baseline": rate(lambda: blocks.copy(gr.sizeof_gr_complex)),
}
print(json.dumps(out))
"""


def gnuradio_available() -> bool:
    try:
        r = subprocess.run(["/usr/bin/python3", "-c", "import gnuradio.channels, gnuradio.blocks"],
                           capture_output=True, timeout=60)
        return r.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def time_gnuradio(n: int) -> dict:
    r = subprocess.run(["/usr/bin/python3", "-c", GR_SCRIPT, str(n)], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"GNU Radio benchmark failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used so far (Linux /proc)."""
    return proc_stat(pid)[0]


def proc_stat(pid: int) -> tuple[float, int]:
    """(CPU seconds, minor page faults) a process has used so far, all threads (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[7])


def model_rate(n_ant: int, spec: dict, chunk: int, seconds: float) -> tuple[float, float]:
    """generate + apply of the channel model alone, in this process: (Msps per wall second, Msps per CPU second)."""
    from hil.channel import build_channel

    rng = np.random.default_rng(0)
    m = build_channel({"n_tx": n_ant, "n_rx": n_ant, "sample_rate_hz": FS, **spec}, rng)
    x = (rng.standard_normal((n_ant, chunk)) * 0.3 + 0j).astype(np.complex64)
    m.apply(x, m.generate(chunk))
    done, t0, c0 = 0, time.perf_counter(), time.thread_time()
    while time.perf_counter() - t0 < seconds:
        m.apply(x, m.generate(chunk))
        done += chunk
    return done / (time.perf_counter() - t0) / 1e6, done / (time.thread_time() - c0) / 1e6


def stream_signal(n_ant: int, chunk: int) -> np.ndarray:
    """The clients' input: complex Gaussian, 0.3 RMS per part, seed 1, complex64 ``[n_ant, chunk]``."""
    rng = np.random.default_rng(1)
    return (rng.standard_normal((n_ant, chunk)) * 0.3 + 1j * rng.standard_normal((n_ant, chunk)) * 0.3
            ).astype(np.complex64)


def link_sockets(ctx: zmq.Context, srv, sndhwm: int | None = None, rcvhwm: int | None = None) -> tuple[list, list]:
    """A client's ZMQ sockets on a running two-node server: a PUSH connected to every TX stream of node
    "a", a PULL to every RX stream of node "b" (linger 0; high-water marks when given)."""
    tx, rx = [], []
    for eps, kind, opt, hwm, out in ((srv.nodes["a"]["tx"], zmq.PUSH, zmq.SNDHWM, sndhwm, tx),
                                     (srv.nodes["b"]["rx"], zmq.PULL, zmq.RCVHWM, rcvhwm, rx)):
        for ep in eps:
            s = ctx.socket(kind)
            if hwm is not None:
                s.setsockopt(opt, hwm)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(ep)
            out.append(s)
    return tx, rx


class TcpStream:
    """A client of a running stream-mode server over ZMQ: one PUSH socket per TX antenna of node "a"
    (zero-copy sends from a sender thread), one PULL per RX antenna of node "b"."""

    def __init__(self, ctx: zmq.Context, srv, n_ant: int, chunk: int):
        self.srv, self.chunk, self.n_ant = srv, chunk, n_ant
        self.tx, self.rx = link_sockets(ctx, srv, sndhwm=4, rcvhwm=8)
        x = stream_signal(n_ant, chunk)
        self.rows = [x[i] for i in range(n_ant)]

    def send(self, k: int) -> None:
        for _ in range(k):
            for s, r in zip(self.tx, self.rows):
                s.send(r, copy=False)

    def run(self, k: int) -> float:
        """Push ``k`` chunks per antenna (sender thread) and read every output; returns the seconds."""
        th = threading.Thread(target=self.send, args=(k,), daemon=True)
        t0 = time.perf_counter()
        th.start()
        # read antennas interleaved so no socket's queue stalls the server
        got = [0] * self.n_ant
        while min(got) < k * self.chunk:
            for i, s in enumerate(self.rx):
                while got[i] < k * self.chunk:
                    try:
                        f = s.recv(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    got[i] += len(f.buffer) // 8
            if min(got) < k * self.chunk:
                if not zmq.select(self.rx, [], [], 30.0)[0]:
                    raise TimeoutError("no output from the server within 30 s")
        dt = time.perf_counter() - t0
        th.join()
        return dt


class ShmStream:
    """A client of a running server through the same-host shared-memory data plane (hil.radio.shm):
    copies its chunk into a free input slot (what a producer writing its samples there would cost at
    most), rings the doorbell and takes the outputs in order; ``slots`` chunks in flight."""

    def __init__(self, ctx: zmq.Context, srv, n_ant: int, chunk: int, slots: int = 4):
        from hil.radio.shm import ShmClient

        self.chunk, self.slots = chunk, slots
        self.c = ShmClient(ctx, srv.control, "a", "b", slot_samples=chunk, slots=slots)
        self.x = stream_signal(n_ant, chunk)

    def run(self, k: int) -> float:
        """``k`` chunks through the link; returns the seconds."""
        c, chunk, slots = self.c, self.chunk, self.slots
        t0 = time.perf_counter()
        inflight = 0
        for i in range(k):
            if inflight == slots:
                j, y = c.result()
                if y is None:
                    raise RuntimeError("the server rejected a chunk")
                inflight -= 1
            else:
                j = i
            np.copyto(c.input_slot(j, chunk), self.x)
            c.submit(j, chunk)
            inflight += 1
        for _ in range(inflight):
            c.result()
        return time.perf_counter() - t0

    def close(self) -> None:
        self.c.close()


def sized_run(run, chunk: int, seconds: float, warm: int) -> int:
    """Warm a session up (``warm`` chunks twice: connections, pools, first model calls) and return
    how many chunks take about ``seconds`` at the rate of the second warm-up."""
    run(warm)
    rough = warm * chunk / run(warm)
    return max(2 * warm, int(rough * seconds / chunk))


def end_to_end(n_ant: int, spec: dict, chunk: int, seconds: float, transport: str = "tcp") -> dict:
    """Stream chunks through a server process; returns Msps per antenna and details."""
    cfg = two_node_config(spec, a="a", b="b", n_a=n_ant, n_b=n_ant, mode="stream", reciprocal=False,
                          sample_rate_hz=FS, max_message_bytes=max(1 << 27, 16 * chunk), hwm=8,
                          transport=transport)
    srv = start_server(cfg, log_level="WARNING")
    ctx = zmq.Context(io_threads=1)
    try:
        cl = TcpStream(ctx, srv, n_ant, chunk)
        k = sized_run(cl.run, chunk, seconds, 4)
        from hil.radio.zmq import control_request

        lk0 = control_request(ctx, srv.control, {"cmd": "stats"}, 10.0)["links"]["a->b"]
        (srv_cpu0, flt0), cli0 = proc_stat(srv.proc.pid), os.times()
        dt = cl.run(k)
        (srv_cpu, flt), cli1 = proc_stat(srv.proc.pid), os.times()
        srv_cpu, flt = srv_cpu - srv_cpu0, flt - flt0
        cli_cpu = cli1.user + cli1.system - cli0.user - cli0.system
        st = control_request(ctx, srv.control, {"cmd": "stats"}, 10.0)
        model_s = st["links"]["a->b"]["model_s"] - lk0["model_s"]
        model_cpu_s = st["links"]["a->b"]["model_cpu_s"] - lk0["model_cpu_s"]
        return {"msps": k * chunk / dt / 1e6, "seconds": dt, "chunks": k, "chunk": chunk,
                "server_model_share": model_s / max(dt, 1e-9),
                # CPU time of the thread running the model / its wall time in the model: < 1 when it
                # waited (GIL, other processes on the cores)
                "server_model_on_cpu": model_cpu_s / max(model_s, 1e-9),
                "server_model_msps_per_cpu_s": k * chunk / max(model_cpu_s, 1e-9) / 1e6, "rejected": st["rejected"], "dropped": st["dropped"],
                "server_cpu_cores": srv_cpu / dt, "server_minor_faults_per_chunk": flt / k, "client_cpu_cores": cli_cpu / dt,
                "server_msps_per_cpu_s": k * chunk / max(srv_cpu, 1e-9) / 1e6,
                "client_msps_per_cpu_s": k * chunk / max(cli_cpu, 1e-9) / 1e6}
    finally:
        ctx.destroy(0)
        srv.stop()


def end_to_end_shm(n_ant: int, spec: dict, chunk: int, seconds: float, slots: int = 4) -> dict:
    """The same link through the same-host shared-memory data plane (hil.radio.shm): Msps per antenna
    (see :class:`ShmStream`)."""
    cfg = two_node_config(spec, a="a", b="b", n_a=n_ant, n_b=n_ant, mode="stream", reciprocal=False,
                          sample_rate_hz=FS, max_message_bytes=max(1 << 27, 16 * chunk), hwm=8)
    srv = start_server(cfg, log_level="WARNING")
    ctx = zmq.Context(io_threads=1)
    c = None
    try:
        c = ShmStream(ctx, srv, n_ant, chunk, slots)
        k = sized_run(c.run, chunk, seconds, 2 * slots)
        srv_cpu0 = proc_stat(srv.proc.pid)[0]
        dt = c.run(k)
        srv_cpu = proc_stat(srv.proc.pid)[0] - srv_cpu0
        return {"msps": k * chunk / dt / 1e6, "server_cpu_cores": srv_cpu / dt,
                "server_msps_per_cpu_s": k * chunk / max(srv_cpu, 1e-9) / 1e6}
    finally:
        if c is not None:
            c.close()
        ctx.destroy(0)
        srv.stop()


def machine() -> dict:
    model = ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {"cpu": model, "nproc": os.cpu_count(), "load_avg_1_5_15": list(os.getloadavg()),
            "python": platform.python_version(), "numpy": np.__version__, "pyzmq": zmq.__version__,
            "libzmq": zmq.zmq_version(), "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per case (default 3)")
    p.add_argument("--chunk", type=int, default=1 << 18, help="samples per antenna per message (default 2^18)")
    p.add_argument("--transport", default="tcp", choices=["tcp", "ipc"], help="ZMQ transport of the data streams")
    p.add_argument("--cases", default="", help="comma-separated case numbers (1-based) to run; default all")
    p.add_argument("--gr-samples", type=int, default=20_000_000, help="samples per GNU Radio flowgraph run")
    p.add_argument("--no-gnuradio", action="store_true", help="skip the GNU Radio comparison")
    p.add_argument("--no-shm", action="store_true", help="skip the same-host shared-memory data plane")
    p.add_argument("--no-tcp", action="store_true", help="skip the TCP (ZMQ streams) data plane")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    a = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mach = machine()
    print(f"machine: {mach['cpu']}, {mach['nproc']} CPUs, load avg {mach['load_avg_1_5_15']}, {mach['date_utc']}")
    sel = [int(c) - 1 for c in a.cases.split(",") if c.strip()] or list(range(len(CASES)))
    results = []
    for i in sel:
        name, n, spec = CASES[i]
        alone, alone_cpu = model_rate(n, spec, a.chunk, min(a.seconds, 2.0))
        r = {"case": name, "antennas": n, "spec": spec, "model_alone_msps": alone,
             "model_alone_msps_per_cpu_s": alone_cpu}
        if not a.no_shm:
            sh = end_to_end_shm(n, spec, a.chunk, a.seconds)
            r.update(shm_msps=sh["msps"], shm_server_cpu_cores=sh["server_cpu_cores"],
                     shm_server_msps_per_cpu_s=sh["server_msps_per_cpu_s"], shm_vs_model_alone=sh["msps"] / alone)
            print(f"{name[:60]:60s} shared memory {sh['msps']:6.1f} Msps = {sh['msps'] / alone:.2f}x the model "
                  f"alone ({alone:.1f} Msps; server {sh['server_cpu_cores']:.2f} cores, "
                  f"{sh['server_msps_per_cpu_s']:.1f} Msps per server CPU-s)", flush=True)
        results.append(r)
        if a.no_tcp:
            continue
        e2e = end_to_end(n, spec, a.chunk, a.seconds, a.transport)
        r.update(end_to_end_msps=e2e["msps"], **{k: v for k, v in e2e.items() if k != "msps"})
        print(f"{name[:60]:60s} end to end {e2e['msps']:6.1f} Msps (server got {e2e['server_cpu_cores']:.2f} cores, "
              f"{e2e['server_msps_per_cpu_s']:.1f} Msps per server CPU-s; client {e2e['client_cpu_cores']:.2f} cores); "
              f"model alone {alone:.1f} Msps ({alone_cpu:.1f} per CPU-s); server in the model "
              f"{100 * e2e['server_model_share']:.0f}% of the time, on a CPU {100 * e2e['server_model_on_cpu']:.0f}% "
              f"of that ({e2e['server_model_msps_per_cpu_s']:.1f} Msps per model-thread CPU-s)", flush=True)
    gr = None
    if not a.no_gnuradio and gnuradio_available():
        gr = time_gnuradio(a.gr_samples)
        print(f"GNU Radio {gr['gr_version']}: channel_model (AWGN+CFO) {gr['channel_model_awgn_cfo']:.1f} Msps, "
              f"fading_model (Rayleigh, 1 antenna) {gr['fading_model_rayleigh']:.1f} Msps, "
              f"copy {gr['copy_baseline']:.1f} Msps")
        for r in results:
            if "end_to_end_msps" not in r:
                continue
            r["vs_gr_fading_model"] = r["end_to_end_msps"] / gr["fading_model_rayleigh"]
            r["vs_gr_channel_model"] = r["end_to_end_msps"] / gr["channel_model_awgn_cfo"]
            print(f"  {r['case'][:60]:60s} {r['vs_gr_fading_model']:6.1f}x fading_model, "
                  f"{r['vs_gr_channel_model']:6.1f}x channel_model")
    elif not a.no_gnuradio:
        print("GNU Radio: /usr/bin/python3 cannot import gnuradio; comparison skipped")
    mach["load_avg_after"] = list(os.getloadavg())
    out = {"machine": mach, "results": results, "gnuradio": gr,
           "command": " ".join([Path(sys.executable).name] + sys.argv)}
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    print()
    print(markdown(out))
    return 0


def markdown(out: dict) -> str:
    """The results as the markdown table of docs/performance.md."""
    m, gr = out["machine"], out["gnuradio"]
    lines = [f"`{out['command']}` on {m['cpu']}, {m['nproc']} CPUs, {m['date_utc']}; load average (1/5/15 min) "
             f"{', '.join(f'{v:.1f}' for v in m['load_avg_1_5_15'])} before and "
             f"{', '.join(f'{v:.1f}' for v in m['load_avg_after'])} after the run.", ""]
    if any("shm_msps" in r for r in out["results"]):
        lines += ["| case | same host, shared memory (Msps) | / model alone | server CPU cores used | "
                  "per server CPU-second (Msps) | TCP end to end (Msps) | model alone (Msps; per CPU-s) |",
                  "|---|---|---|---|---|---|---|"]
        for r in out["results"]:
            tcp = f"{r['end_to_end_msps']:.1f}" if "end_to_end_msps" in r else "-"
            lines.append(f"| {r['case']} | {r['shm_msps']:.1f} | {r['shm_vs_model_alone']:.2f}x | "
                         f"{r['shm_server_cpu_cores']:.2f} | {r['shm_server_msps_per_cpu_s']:.1f} | {tcp} | "
                         f"{r['model_alone_msps']:.1f}; {r['model_alone_msps_per_cpu_s']:.1f} |")
        lines += ["", "TCP (ZMQ streams, GNU Radio's path):", ""]
    lines += ["| case | end to end (Msps) | server CPU cores used | end to end per server CPU-second (Msps) | "
              "channel model alone (Msps; per CPU-s) | server's model thread: busy, on CPU, Msps per its CPU-s | "
              "vs GR fading_model | vs GR channel_model |",
              "|---|---|---|---|---|---|---|---|"]
    for r in out["results"]:
        if "end_to_end_msps" not in r:
            continue
        vf = f"{r['vs_gr_fading_model']:.1f}x" if "vs_gr_fading_model" in r else "-"
        vc = f"{r['vs_gr_channel_model']:.1f}x" if "vs_gr_channel_model" in r else "-"
        mt = (f"{100 * r['server_model_share']:.0f}%, {100 * r['server_model_on_cpu']:.0f}%, "
              f"{r['server_model_msps_per_cpu_s']:.1f}") if "server_model_on_cpu" in r else "-"
        lines.append(f"| {r['case']} | {r['end_to_end_msps']:.1f} | {r['server_cpu_cores']:.2f} | "
                     f"{r['server_msps_per_cpu_s']:.1f} | {r['model_alone_msps']:.1f}; "
                     f"{r['model_alone_msps_per_cpu_s']:.1f} | {mt} | {vf} | {vc} |")
    if gr:
        lines += ["", f"GNU Radio {gr['gr_version']} in the same run (flowgraph vector_source -> head -> block -> "
                  f"null_sink): `channels.channel_model` (AWGN + CFO) {gr['channel_model_awgn_cfo']:.1f} Msps, "
                  f"`channels.fading_model` (8 sinusoids, Rayleigh, 1 antenna) {gr['fading_model_rayleigh']:.1f} Msps, "
                  f"`blocks.copy` {gr['copy_baseline']:.1f} Msps."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
