#!/usr/bin/env python3
"""A tone on each antenna through the channel server's 2x2 GNU Radio link; the spectrum, or the SNR.

Run with the Python that has GNU Radio 3.10 (often /usr/bin/python3), against the shipped topology:

    hil sim serve --config sim_fallback/configs/gnuradio_2x2.toml            # ports 5550..5559
    /usr/bin/python3 examples/gnuradio/tone_2x2.py                           # QT GUI spectrum
    /usr/bin/python3 examples/gnuradio/tone_2x2.py --headless                # measure SNR and power

The flowgraph: two signal sources (tones at ``--f0`` and ``--f1``) -> zeromq.push_sink (binds the
server's node ``gr_tx`` tx ports, port_base + 2 and + 4; the server connects) ... 2x2 channel ...
zeromq.pull_source (connects to node ``gr_rx``'s rx ports, port_base + 7 and + 9) -> a QT frequency
sink, or (``--headless``) a vector sink whose samples are fitted with the two known tones: per receive
antenna, the least-squares fit is the signal and the residual is the noise, so SNR = fit power /
residual power. No throttle block: the server paces the streams (``pace = true`` in the topology).
``--json`` prints the measurement as one JSON line. Only GNU Radio and numpy are needed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from gnuradio import analog, blocks, gr, zeromq


def endpoints(host: str, port_base: int) -> dict:
    """The gnuradio_2x2.toml ports (docs/zmq.md, "Port numbers"): gr_tx tx0/tx1 and gr_rx rx0/rx1."""
    return {"tx": [f"tcp://{host}:{port_base + 2}", f"tcp://{host}:{port_base + 4}"],
            "rx": [f"tcp://{host}:{port_base + 7}", f"tcp://{host}:{port_base + 9}"]}


class Tone2x2(gr.top_block):
    """Two tones out to the server, two antenna streams back (to a QT sink or a vector sink)."""

    def __init__(self, host: str, port_base: int, samp_rate: float, f0: float, f1: float, amplitude: float,
                 gui: bool):
        super().__init__("tone through a 2x2 link")
        ep = endpoints(host, port_base)
        self.sources = [analog.sig_source_c(samp_rate, analog.GR_COS_WAVE, f, amplitude, 0) for f in (f0, f1)]
        # zeromq sinks bind (GNU Radio 3.10 has no option); the server connects (tx_role = "connect")
        self.push = [zeromq.push_sink(gr.sizeof_gr_complex, 1, e, 100, False, -1) for e in ep["tx"]]
        self.pull = [zeromq.pull_source(gr.sizeof_gr_complex, 1, e, 100, False, -1) for e in ep["rx"]]
        for s, p in zip(self.sources, self.push):
            self.connect(s, p)
        if gui:
            from gnuradio import qtgui
            from gnuradio.fft import window

            self.freq = qtgui.freq_sink_c(2048, window.WIN_BLACKMAN_hARRIS, 0, samp_rate,
                                          "gr_rx: both receive antennas", 2, None)
            self.freq.set_line_label(0, "rx0")
            self.freq.set_line_label(1, "rx1")
            for i, p in enumerate(self.pull):
                self.connect(p, (self.freq, i))
        else:
            self.sinks = [blocks.vector_sink_c() for _ in self.pull]
            for p, k in zip(self.pull, self.sinks):
                self.connect(p, k)


def tone_snr(y: np.ndarray, freqs_norm: list[float]) -> tuple[float, float]:
    """(signal power, noise power) of ``y``: least-squares fit of tones at ``freqs_norm`` (cycles/sample)."""
    n = np.arange(y.size)
    a = np.stack([np.exp(2j * np.pi * f * n) for f in freqs_norm], axis=1)
    coef, *_ = np.linalg.lstsq(a, y.astype(np.complex128), rcond=None)
    fit = a @ coef
    return float(np.mean(np.abs(fit) ** 2)), float(np.mean(np.abs(y - fit) ** 2))


def measure(tb: Tone2x2, samples: int, skip: int, timeout_s: float) -> list[np.ndarray]:
    """Run until every vector sink holds ``skip + samples`` samples, stop, return the last ``samples``.

    [Note: zeromq source + head]
    A zeromq source never reports "done" (it waits for the next message forever), so a flowgraph
    ``pull_source -> head -> sink`` run with ``tb.run()`` may never return: once the head has its items,
    the source keeps polling its socket. Start the flowgraph, watch the sink, and stop it yourself.
    """
    tb.start()
    deadline = time.monotonic() + timeout_s
    try:
        while min(len(k.data()) for k in tb.sinks) < skip + samples:
            if time.monotonic() > deadline:
                got = [len(k.data()) for k in tb.sinks]
                raise SystemExit(f"error: received {got} of {skip + samples} samples per antenna in {timeout_s:.0f} s; "
                                 "is `hil sim serve --config sim_fallback/configs/gnuradio_2x2.toml` running with "
                                 "the same --port-base?")
            time.sleep(0.02)
    finally:
        tb.stop()
        tb.wait()
    return [np.asarray(k.data()[skip:skip + samples], np.complex64) for k in tb.sinks]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port-base", type=int, default=5550, help="the server's port_base (default 5550)")
    p.add_argument("--host", default="127.0.0.1", help="the server's host (default 127.0.0.1)")
    p.add_argument("--samp-rate", type=float, default=1e6, help="sample rate, Hz (the topology's sample_rate_hz)")
    p.add_argument("--f0", type=float, default=100e3, help="tone of tx antenna 0, Hz")
    p.add_argument("--f1", type=float, default=-150e3, help="tone of tx antenna 1, Hz")
    p.add_argument("--amplitude", type=float, default=0.5, help="tone amplitude (full scale 1.0)")
    p.add_argument("--headless", action="store_true", help="no GUI: measure SNR and power per receive antenna")
    p.add_argument("--samples", type=int, default=1 << 16, help="samples measured per antenna (headless)")
    p.add_argument("--skip", type=int, default=4096, help="samples skipped first (headless)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the samples (headless)")
    p.add_argument("--json", action="store_true", help="print the measurement as one JSON line (headless)")
    a = p.parse_args(argv)
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if not a.headless and not display:
        print("no display (DISPLAY/WAYLAND_DISPLAY unset): measuring instead (--headless)", file=sys.stderr)
        a.headless = True
    tb = Tone2x2(a.host, a.port_base, a.samp_rate, a.f0, a.f1, a.amplitude, gui=not a.headless)
    if not a.headless:
        from PyQt5 import Qt
        import sip

        app = Qt.QApplication(sys.argv)
        widget = sip.wrapinstance(tb.freq.qwidget(), Qt.QWidget)
        widget.setWindowTitle("hil channel server: 2x2 tone link (gr_rx)")
        widget.show()
        tb.start()
        app.exec_()
        tb.stop()
        tb.wait()
        return 0
    t0 = time.monotonic()
    ys = measure(tb, a.samples, a.skip, a.timeout)
    wall = time.monotonic() - t0
    freqs = [a.f0 / a.samp_rate, a.f1 / a.samp_rate]
    out = {"samples": a.samples, "wall_s": wall, "rx": []}
    for i, y in enumerate(ys):
        ps, pn = tone_snr(y, freqs)
        out["rx"].append({"antenna": i, "snr_db": 10 * np.log10(ps / pn), "signal_power": ps,
                          "noise_power": pn, "power_dbfs": 10 * np.log10(ps + pn)})
    if a.json:
        print(json.dumps(out))
    else:
        for r in out["rx"]:
            print(f"rx{r['antenna']}: SNR {r['snr_db']:.2f} dB, power {r['power_dbfs']:.2f} dBFS "
                  f"(signal {r['signal_power']:.4g}, noise {r['noise_power']:.4g}) over {a.samples} samples")
        print(f"{a.skip + a.samples} samples per antenna in {wall:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
