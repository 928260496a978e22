"""``hil sim probe``: sound a link of the channel server through the project PHY (``hil.phy.PhyLink``).

The probe has no synchroniser or estimator of its own: each burst is one ``PhyLink.transceive`` of
a small payload (:data:`PROBE_PHY` sets the frame), and what it reports is what the PHY receiver
estimated (detection over +-``max_cfo_hz``, fractional timing, CFO, LS channel matrix, noise power
per receive antenna from the frame's quiet interval). See [Note: probe numbers from the PHY].

[Note: probe numbers from the PHY]
- ``start_sample``: the PHY's ``RxResult.timing`` (fractional index of the frame's first sample in
  the capture; the RRC pulse delay is inside the frame, the burst's first sample is the frame's
  first sample) minus :data:`TIMING_OFFSET_SAMPLES` (0), rounded. ``timing`` keeps the fraction.
- ``cfo_cycles_per_sample`` = ``RxResult.cfo_hz / fs``.
- ``channel``: ``RxResult.channel_estimate`` with ``estimator="ls"`` (unbiased; phase referred to
  the centre of the pilot block, i.e. after the CFO rotation up to there).
- ``noise_power[r]``: noise power per sample at receive antenna ``r`` (full scale 1.0 units):
  ``RxResult.noise_power * noise_var_rx[r] / noise_var`` (the PHY's per-antenna split).
- ``signal_power[r] = a^2 sum_t max(|H[r, t]|^2 - e_r, 0)`` with ``a^2`` the PHY's average power per
  transmit antenna and sample (``PhyConfig.avg_power``; the RRC pulse has energy ``sps``, so a
  sample carries the symbol power) and ``e_r`` the LS error variance of row ``r``
  (``RxResult.estimate_error_var`` split like the noise): the per-antenna form of the PHY's own
  ``snr_db``.
- ``snr_db[r] = signal_power[r] / noise_power[r]``: the SNR *per sample* at antenna ``r``, the
  channel server's definition (``snr_reference="rx"``). The PHY's ``RxResult.snr_db`` is per symbol
  after the matched filter (the mean over antennas), ``10 log10(sps)`` dB higher; it is kept as
  ``phy_snr_db``.
:data:`PROBE_PHY` makes the pilot block (``pilot_len`` symbols per antenna) and the quiet interval
long so the estimates are precise (about 4000 noise samples and 2048 pilot symbols per burst).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hil.channel.random import complex_normal
from hil.radio.base import Radio
from hil.radio.tap import TapRadio

#: PhyConfig fields of the probe's frame (``n_tx``/``n_rx``/``sample_rate_hz`` come from the link).
PROBE_PHY = {"mode": "flat", "estimator": "ls", "pilot_len": 1024, "quiet_len": 2048}
#: samples between the PHY's frame timing and the burst's first sample (the frame starts the burst).
TIMING_OFFSET_SAMPLES = 0.0
#: payload symbols per antenna of a probe frame (the payload is not the point).
PROBE_CHANNEL_USES = 8


@dataclass(frozen=True)
class ProbeResult:
    """What one sounding measured (see [Note: probe numbers from the PHY]).

    Attributes:
        start_sample: index of the burst's first sample in the capture.
        timing: the PHY's fractional frame timing, samples.
        cfo_cycles_per_sample: estimated carrier frequency offset (multiply by the sample rate for Hz).
        channel: complex128 ``[n_rx, n_tx]`` LS channel matrix from the PHY.
        snr_db: float ``[n_rx]`` SNR per sample per receive antenna.
        noise_power: float ``[n_rx]`` noise power per sample per receive antenna (full scale 1.0 units).
        signal_power: float ``[n_rx]`` received signal power per sample per antenna.
        tx_amplitude: RMS amplitude of each transmit antenna's known samples (``sqrt(avg_power)``).
        phy_snr_db: the PHY's ``RxResult.snr_db`` (per symbol, mean over receive antennas).
    """

    start_sample: int
    timing: float
    cfo_cycles_per_sample: float
    channel: np.ndarray
    snr_db: np.ndarray
    noise_power: np.ndarray
    signal_power: np.ndarray
    tx_amplitude: float
    phy_snr_db: float

    def to_dict(self, sample_rate_hz: float | None = None) -> dict:
        d = asdict(self)
        d["channel"] = {"re": self.channel.real.tolist(), "im": self.channel.imag.tolist()}
        for k in ("snr_db", "noise_power", "signal_power"):
            d[k] = [float(v) for v in np.asarray(d[k])]
        if sample_rate_hz:
            d["cfo_hz"] = self.cfo_cycles_per_sample * sample_rate_hz
        return d


class Prober:
    """Sounds ``radio`` with PHY frames (``hil.phy.PhyLink`` with :data:`PROBE_PHY`).

    Args:
        radio: the link to sound.
        rng: generator of the payload symbols.
        sample_rate_hz: the link's sample rate (CFO in Hz; the CFO search is +-min(120 kHz, 0.12 fs)).
        **phy: overrides of :data:`PROBE_PHY` (``hil.phy.PhyConfig`` fields).
    """

    def __init__(self, radio: Radio, rng: np.random.Generator, sample_rate_hz: float = 1e6, **phy):
        from hil.phy import PhyConfig, PhyLink

        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: expected a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
        self.rng = rng
        self.tap = TapRadio(radio, close_inner=False)  # the caller owns the radio
        fs = float(sample_rate_hz)
        kw = {**PROBE_PHY, "max_cfo_hz": min(120e3, 0.12 * fs), **phy}
        self.cfg = PhyConfig(n_tx=radio.caps.n_tx, n_rx=radio.caps.n_rx, sample_rate_hz=fs, **kw)
        self.link = PhyLink(self.tap, self.cfg)

    def probe(self) -> tuple[ProbeResult, np.ndarray]:
        """One burst: ``(ProbeResult, capture complex64 [n_rx, m])``. Raises SyncError if the frame is lost."""
        cfg = self.cfg
        shape = (1, cfg.n_tx, PROBE_CHANNEL_USES)
        sym = complex_normal(self.rng, shape)
        res = self.link.transceive(sym.astype(np.complex64))
        split = np.asarray(res.noise_var_rx, float) / max(float(res.noise_var), 1e-300)  # per-antenna share
        noise = float(res.noise_power) * split  # [n_rx]
        err = float(res.estimate_error_var) * split  # [n_rx]
        h = np.asarray(res.channel_estimate, np.complex128)  # [n_rx, n_tx]
        sig = cfg.avg_power * np.sum(np.maximum(np.abs(h) ** 2 - err[:, None], 0.0), axis=1)
        snr = 10 * np.log10(np.maximum(sig, 1e-30) / np.maximum(noise, 1e-30))
        timing = float(res.timing)
        out = ProbeResult(start_sample=round(timing - TIMING_OFFSET_SAMPLES), timing=timing,
                          cfo_cycles_per_sample=float(res.cfo_hz) / cfg.sample_rate_hz, channel=h, snr_db=snr,
                          noise_power=noise, signal_power=sig, tx_amplitude=cfg.amplitude,
                          phy_snr_db=float(res.snr_db))
        return out, self.tap.last_capture


def probe(radio: Radio, rng: np.random.Generator, sample_rate_hz: float = 1e6, **phy) -> ProbeResult:
    """Send one PHY sounding frame through ``radio`` and return what the PHY measured."""
    return Prober(radio, rng, sample_rate_hz, **phy).probe()[0]


def run_probe(*, config: str | None = None, endpoint: str | None = None, tx_node: str | None = None,
              rx_node: str | None = None, bursts: int = 3, seed: int = 0, out: str | None = None,
              timeout_s: float = 10.0) -> dict:
    """Sound a link of a channel server and write a report folder (what ``hil sim probe`` runs).

    Args:
        config: a topology file: start a server on it for the probe (stopped afterwards).
        endpoint: the control endpoint of a running server (instead of ``config``).
            Neither: the shipped default topology (:func:`hil.radio.launch.default_topology_path`).
        tx_node, rx_node: the wiring to sound (default: the opener's, see [Note: default wiring] in
            ``hil/radio/open.py``: the first link, a -> b).
        bursts: sounding bursts to send.
        seed: seed of the probe frames' random payload.
        out: report folder (report.json, report.md, probe.png, server_info.json); None: no files.
        timeout_s: per-burst timeout.

    Returns:
        The report dict: ``{"tx", "rx", "sample_rate_hz", "bursts": [ProbeResult.to_dict() + true
        values when the server is in test mode], "mean_snr_db", ...}``.
    """
    import json
    from pathlib import Path

    from hil.radio.launch import default_topology_path
    from hil.radio.open import RadioSpec, open_radio

    if bursts < 1:
        raise ValueError(f"bursts must be >= 1, got {bursts}")
    if config is not None and endpoint is not None:
        raise ValueError("give --config (start a server) or --endpoint (use a running one), not both")
    started = endpoint is None
    spec = RadioSpec("zmq", endpoint=endpoint, server_config=None if endpoint else (config or default_topology_path()),
                     tx_node=tx_node, rx_node=rx_node, timeout_s=timeout_s)
    rng = np.random.default_rng(seed)
    results, captures = [], []
    with open_radio(spec) as opened:
        radio, info = opened.radio, opened.server
        topology = opened.started[0].config if opened.started else None
        tx_node, rx_node = radio.tx_node, radio.rx_node
        fs = float(info["sample_rate_hz"])
        prober = Prober(radio, rng, fs)
        for _ in range(bursts):
            res, cap = prober.probe()
            d = res.to_dict(fs)
            ev = radio.last_burst()
            if ev is not None and "start" in ev:
                d["true_start_sample"] = ev["start"]
            results.append(d)
            captures.append((cap, res))
    snr = np.array([r["snr_db"] for r in results])
    report = {
        "tx": tx_node, "rx": rx_node, "sample_rate_hz": fs, "control": info["control"],
        "started_server": started, "config": str(config) if config else None, "seed": seed,
        "bursts": results,
        "mean_snr_db": float(10 * np.log10(np.mean(10 ** (snr / 10)))),
        "mean_cfo_hz": float(np.mean([r["cfo_hz"] for r in results])),
    }
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.json").write_text(json.dumps(report, indent=1))
        (folder / "server_info.json").write_text(json.dumps(info, indent=1))
        if topology is not None:
            (folder / "topology.json").write_text(json.dumps(topology, indent=1))
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
    ax[0].axvline(res.start_sample / fs * 1e6, color="k", ls="--", label="PHY frame timing")
    ax[0].set_xlabel("time (us)")
    ax[0].set_ylabel("|y|")
    ax[0].set_title("last capture")
    ax[0].legend(fontsize=7)
    im = ax[1].imshow(np.abs(res.channel), cmap="viridis")
    ax[1].set_xticks(range(res.channel.shape[1]))
    ax[1].set_yticks(range(res.channel.shape[0]))
    ax[1].set_xlabel("tx antenna")
    ax[1].set_ylabel("rx antenna")
    ax[1].set_title("|H| (PHY, least squares)")
    fig.colorbar(im, ax=ax[1])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
