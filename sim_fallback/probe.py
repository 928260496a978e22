"""A simple channel sounder for ``hil sim probe``: known random QPSK per antenna, least squares.

This is a first look at a link, not the project's PHY (hil/phy does frames properly).

[Note: sounding burst]
The burst is ``R`` repetitions of a short block ``q`` (``Q`` samples, independent random QPSK per TX
antenna) followed by two copies of a long block ``p`` (``P`` samples). The receiver:

1. finds the coarse start and CFO with the Schmidl-Cox delay-and-correlate metric at lag ``Q``
   (unambiguous for ``|CFO| < 1 / (2 Q)`` cycles per sample),
2. removes the coarse CFO, refines the start by the cross-correlation with the known burst
   (summed over TX and RX antennas), and the CFO by delay-and-correlate at lag ``P`` over the two
   long copies,
3. removes the CFO and solves ``Y = H S + W`` by least squares: ``H = Y S^H (S S^H)^-1``
   ``[n_rx, n_tx]``; the residual gives the noise power per RX antenna and ``H S`` the signal power.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hil.errors import SyncError
from hil.radio.base import Radio


@dataclass(frozen=True)
class SoundingBurst:
    """The known burst: ``samples`` complex64 ``[n_tx, R*Q + 2*P]``."""

    samples: np.ndarray
    short_len: int
    short_reps: int
    long_len: int


@dataclass(frozen=True)
class ProbeResult:
    """What one sounding measured.

    Attributes:
        start_sample: index of the burst's first sample in the capture.
        cfo_cycles_per_sample: estimated carrier frequency offset (multiply by the sample rate for Hz).
        channel: complex128 ``[n_rx, n_tx]`` least-squares channel matrix (phase at the burst start).
        snr_db: float ``[n_rx]`` measured SNR per receive antenna, signal = ``|H s|^2``, noise = residual.
        noise_power: float ``[n_rx]`` residual power per receive antenna (full scale 1.0 units).
        signal_power: float ``[n_rx]``.
        tx_amplitude: amplitude of each transmitted QPSK sample.
    """

    start_sample: int
    cfo_cycles_per_sample: float
    channel: np.ndarray
    snr_db: np.ndarray
    noise_power: np.ndarray
    signal_power: np.ndarray
    tx_amplitude: float

    def to_dict(self, sample_rate_hz: float | None = None) -> dict:
        d = asdict(self)
        d["channel"] = {"re": self.channel.real.tolist(), "im": self.channel.imag.tolist()}
        for k in ("snr_db", "noise_power", "signal_power"):
            d[k] = [float(v) for v in np.asarray(d[k])]
        if sample_rate_hz:
            d["cfo_hz"] = self.cfo_cycles_per_sample * sample_rate_hz
        return d


def make_sounding_burst(n_tx: int, rng: np.random.Generator, *, short_len: int = 64, short_reps: int = 8,
                        long_len: int = 1024, amplitude: float = 0.5) -> SoundingBurst:
    """Random QPSK sounding burst, complex64 ``[n_tx, short_reps*short_len + 2*long_len]``, |x| = amplitude."""
    if n_tx < 1 or short_len < 8 or short_reps < 2 or long_len < 16:
        raise ValueError(f"bad sounding sizes: n_tx={n_tx}, short_len={short_len}, short_reps={short_reps}, "
                         f"long_len={long_len}")
    if not 0 < amplitude <= 1:
        raise ValueError(f"amplitude must be in (0, 1] (full scale 1.0), got {amplitude}")

    def qpsk(n: int) -> np.ndarray:
        b = rng.integers(0, 2, size=(n_tx, n, 2))
        return ((1 - 2 * b[..., 0]) + 1j * (1 - 2 * b[..., 1])) * (amplitude / np.sqrt(2))

    q, p = qpsk(short_len), qpsk(long_len)
    s = np.concatenate([np.tile(q, (1, short_reps)), p, p], axis=1).astype(np.complex64)
    return SoundingBurst(s, short_len, short_reps, long_len)


def _delay_correlate(r: np.ndarray, lag: int, window: int) -> np.ndarray:
    """``c[d] = sum_a sum_{k<window} conj(r[a, d+k]) r[a, d+k+lag]`` for every valid ``d``."""
    z = (np.conj(r[:, :-lag]) * r[:, lag:]).sum(axis=0)  # [M - lag]
    cs = np.concatenate([[0], np.cumsum(z)])
    return cs[window:] - cs[:-window]


def analyse(capture: np.ndarray, burst: SoundingBurst) -> ProbeResult:
    """Synchronise to ``burst`` in ``capture`` (complex ``[n_rx, M]``) and estimate the channel.

    Raises:
        SyncError: the capture is shorter than the burst, or no burst is found.
    """
    r = np.asarray(capture, dtype=np.complex128)
    s = burst.samples.astype(np.complex128)
    n_tx, L = s.shape
    M = r.shape[1]
    Q, R, P = burst.short_len, burst.short_reps, burst.long_len
    if M < L:
        raise SyncError(f"capture of {M} samples is shorter than the {L}-sample sounding burst")
    # 1. coarse start and CFO from the repeated short block
    w = (R - 1) * Q
    c = _delay_correlate(r, Q, w)[: M - L + 1]
    e = np.concatenate([[0], np.cumsum((np.abs(r) ** 2).sum(axis=0))])
    energy = e[Q + w: Q + w + c.size] - e[Q: Q + c.size]
    metric = np.abs(c) / np.maximum(energy, 1e-30)
    d0 = int(np.argmax(metric))
    if metric[d0] < 0.2:
        raise SyncError(f"no sounding burst found (best repetition metric {metric[d0]:.2f} < 0.2)")
    cfo = float(np.angle(c[d0]) / (2 * np.pi * Q))
    n = np.arange(M)
    rd = r * np.exp(-2j * np.pi * cfo * n)
    # 2. fine start: cross-correlation with the known burst around d0
    lo, hi = max(0, d0 - 2 * Q), min(M - L, d0 + 2 * Q)
    best, t0 = -1.0, d0
    for d in range(lo, hi + 1):
        g = rd[:, d: d + L] @ np.conj(s).T  # [n_rx, n_tx]
        v = float(np.sum(np.abs(g) ** 2))
        if v > best:
            best, t0 = v, d
    # fine CFO from the two long copies (the residual is far inside +-1/(2P))
    a = rd[:, t0 + R * Q: t0 + R * Q + P]
    b = rd[:, t0 + R * Q + P: t0 + R * Q + 2 * P]
    cfo += float(np.angle(np.sum(np.conj(a) * b)) / (2 * np.pi * P))
    y = r[:, t0: t0 + L] * np.exp(-2j * np.pi * cfo * (t0 + np.arange(L)))
    # 3. least squares
    gram = s @ np.conj(s).T  # [n_tx, n_tx]
    h = (y @ np.conj(s).T) @ np.linalg.inv(gram)  # [n_rx, n_tx]
    hs = h @ s
    res = y - hs
    noise = np.sum(np.abs(res) ** 2, axis=1) / (L - n_tx)  # unbiased: n_tx fitted coefficients per row
    sig = np.mean(np.abs(hs) ** 2, axis=1)
    snr = 10 * np.log10(np.maximum(sig, 1e-30) / np.maximum(noise, 1e-30))
    # report H with the phase at the burst start (the CFO phase at t0 removed above)
    amp = float(np.abs(s[0, 0]))
    return ProbeResult(start_sample=int(t0), cfo_cycles_per_sample=cfo, channel=h, snr_db=snr,
                       noise_power=noise, signal_power=sig, tx_amplitude=amp)


def probe(radio: Radio, rng: np.random.Generator, **burst_kw) -> ProbeResult:
    """Send one sounding burst through ``radio`` and analyse the capture."""
    burst = make_sounding_burst(radio.caps.n_tx, rng, **burst_kw)
    capture = radio.transceive(burst.samples)
    return analyse(capture, burst)


def run_probe(*, config: str | None = None, endpoint: str | None = None, tx_node: str | None = None,
              rx_node: str | None = None, bursts: int = 3, seed: int = 0, out: str | None = None,
              timeout_s: float = 10.0) -> dict:
    """Sound a link of a channel server and write a report folder (what ``hil sim probe`` runs).

    Args:
        config: a topology file: start a server on it for the probe (stopped afterwards).
        endpoint: the control endpoint of a running server (instead of ``config``).
            Neither: the shipped default topology (sim_fallback/configs/edge_server.toml).
        tx_node, rx_node: the wiring to sound (default: the first link, a -> b).
        bursts: sounding bursts to send.
        seed: seed of the sounding sequences.
        out: report folder (report.json, report.md, probe.png, server_info.json); None: no files.
        timeout_s: per-burst timeout.

    Returns:
        The report dict: ``{"tx", "rx", "sample_rate_hz", "bursts": [ProbeResult.to_dict() + true
        values when the server is in test mode], "mean_snr_db", ...}``.
    """
    import json
    from pathlib import Path

    from hil.radio.zmq import ZmqRadio
    from sim_fallback.launch import start_server
    from sim_fallback.topology import default_config_path

    if bursts < 1:
        raise ValueError(f"bursts must be >= 1, got {bursts}")
    if config is not None and endpoint is not None:
        raise ValueError("give --config (start a server) or --endpoint (use a running one), not both")
    srv = None
    if endpoint is None:
        srv = start_server(config or default_config_path(), log_level="WARNING")
        control: str | dict = srv.info
    else:
        control = endpoint
    rng = np.random.default_rng(seed)
    try:
        from hil.radio.zmq import control_request
        import zmq

        if isinstance(control, str):
            ctx = zmq.Context.instance()
            info = control_request(ctx, control, {"cmd": "info"}, timeout_s)
        else:
            info = control
        if tx_node is None or rx_node is None:
            first = next(iter(info["links"].values()), None)
            if first is None:
                raise ValueError("the server has no links to probe")
            tx_node = tx_node or first["src"]
            rx_node = rx_node or (first["dst"] if tx_node == first["src"] else info["nodes"][tx_node]["peers"][0])
        fs = float(info["sample_rate_hz"])
        results, captures = [], []
        with ZmqRadio(info, tx_node, rx_node, timeout_s=timeout_s) as radio:
            for _ in range(bursts):
                burst = make_sounding_burst(radio.caps.n_tx, rng)
                cap = radio.transceive(burst.samples)
                res = analyse(cap, burst)
                d = res.to_dict(fs)
                ev = radio.last_burst()
                if ev is not None and "start" in ev:
                    d["true_start_sample"] = ev["start"]
                results.append(d)
                captures.append((cap, res))
    finally:
        if srv is not None:
            srv.stop()
    snr = np.array([r["snr_db"] for r in results])
    report = {
        "tx": tx_node, "rx": rx_node, "sample_rate_hz": fs, "control": info["control"],
        "started_server": srv is not None, "config": str(config) if config else None, "seed": seed,
        "bursts": results,
        "mean_snr_db": float(10 * np.log10(np.mean(10 ** (snr / 10)))),
        "mean_cfo_hz": float(np.mean([r["cfo_hz"] for r in results])),
    }
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.json").write_text(json.dumps(report, indent=1))
        (folder / "server_info.json").write_text(json.dumps(info, indent=1))
        if config is not None or endpoint is None:
            from sim_fallback.topology import load_topology

            (folder / "topology.json").write_text(
                json.dumps(load_topology(config or default_config_path()).to_dict(), indent=1))
        (folder / "report.md").write_text(_report_md(report))
        _plot(captures, folder / "probe.png", fs)
        report["out"] = str(folder)
    return report


def _report_md(rep: dict) -> str:
    lines = [f"# Channel probe {rep['tx']} -> {rep['rx']}", "",
             f"Server control `{rep['control']}`, sample rate {rep['sample_rate_hz'] / 1e6:g} Msps, "
             f"{len(rep['bursts'])} sounding burst(s), seed {rep['seed']}.", "",
             "| burst | start (true) | CFO Hz | SNR dB per rx antenna |", "|---|---|---|---|"]
    for i, b in enumerate(rep["bursts"]):
        true = b.get("true_start_sample", "-")
        lines.append(f"| {i} | {b['start_sample']} ({true}) | {b['cfo_hz']:.1f} | "
                     + ", ".join(f"{v:.2f}" for v in b["snr_db"]) + " |")
    h = np.array(rep["bursts"][-1]["channel"]["re"]) + 1j * np.array(rep["bursts"][-1]["channel"]["im"])
    lines += ["", f"Mean SNR {rep['mean_snr_db']:.2f} dB, mean CFO {rep['mean_cfo_hz']:.1f} Hz.", "",
              "Channel matrix of the last burst (rows: rx antennas, columns: tx antennas):", "", "```"]
    lines += ["  ".join(f"{v.real:+.3f}{v.imag:+.3f}j" for v in row) for row in h]
    lines += ["```", "", "![capture](probe.png)", ""]
    return "\n".join(lines)


def _plot(captures: list, path, fs: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cap, res = captures[-1]
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.5))
    t = np.arange(cap.shape[1]) / fs * 1e6
    for a in range(cap.shape[0]):
        ax[0].plot(t, np.abs(cap[a]), lw=0.5, label=f"rx {a}")
    ax[0].axvline(res.start_sample / fs * 1e6, color="k", ls="--", label="detected start")
    ax[0].set_xlabel("time (us)")
    ax[0].set_ylabel("|y|")
    ax[0].set_title("last capture")
    ax[0].legend(fontsize=7)
    im = ax[1].imshow(np.abs(res.channel), cmap="viridis")
    ax[1].set_xticks(range(res.channel.shape[1]))
    ax[1].set_yticks(range(res.channel.shape[0]))
    ax[1].set_xlabel("tx antenna")
    ax[1].set_ylabel("rx antenna")
    ax[1].set_title("|H| (least squares)")
    fig.colorbar(im, ax=ax[1])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
