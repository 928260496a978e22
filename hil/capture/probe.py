"""``hil sim probe``: sound a link of the channel server with the capture sounder and report what it saw.

The probe has no synchroniser or estimator of its own, and no sounder either: each burst is one
:meth:`hil.capture.sounder.PhySounder.sound` (one ``hil.phy`` frame; :data:`PROBE_PHY` makes it longer
than a capture's), and what it reports is what the PHY receiver estimated, with the per-sample SNR of
[Note: sounding numbers] in ``hil/capture/sounder.py``: ``start_sample`` (the frame's first sample in
the capture), ``timing`` (its fraction), ``cfo_cycles_per_sample`` (``cfo_hz / fs``), ``channel`` (the
LS channel matrix), ``noise_power``/``signal_power``/``snr_db`` per receive antenna, per sample (the
channel server's ``snr_reference = "rx"``), and ``phy_snr_db`` (the PHY's per-symbol SNR, mean over
antennas, ``10 log10(sps)`` dB higher).

:data:`PROBE_PHY` makes the pilot block (``pilot_len`` symbols per antenna) and the quiet interval
long so one burst is precise (about 4000 noise samples and 2048 pilot symbols per burst), and sends
at the PHY's default back-off (12 dB below full scale).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hil.capture.sounder import PhySounder, Sounding
from hil.errors import SyncError
from hil.radio.base import Radio

#: PhyConfig fields of the probe's frame, over the sounder's defaults (``hil.capture.sounder.SOUNDER_PHY``).
PROBE_PHY = {"pilot_len": 1024, "quiet_len": 2048, "backoff_db": 12.0}


@dataclass(frozen=True)
class ProbeResult:
    """What one sounding measured, as the probe reports it (see the module docstring).

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

    @classmethod
    def from_sounding(cls, s: Sounding, sample_rate_hz: float, tx_amplitude: float) -> "ProbeResult":
        """The probe's view of a flat :class:`Sounding` (one that found its frame)."""
        return cls(start_sample=s.frame_start, timing=s.timing, cfo_cycles_per_sample=s.cfo_hz / sample_rate_hz,
                   channel=np.asarray(s.estimate[0], np.complex128), snr_db=s.snr_db_rx, noise_power=s.noise_var_rx,
                   signal_power=s.signal_power_rx, tx_amplitude=tx_amplitude, phy_snr_db=s.phy_snr_db)

    def to_dict(self, sample_rate_hz: float | None = None) -> dict:
        d = asdict(self)
        d["channel"] = {"re": self.channel.real.tolist(), "im": self.channel.imag.tolist()}
        for k in ("snr_db", "noise_power", "signal_power"):
            d[k] = [float(v) for v in np.asarray(d[k])]
        if sample_rate_hz:
            d["cfo_hz"] = self.cfo_cycles_per_sample * sample_rate_hz
        return d


def probe_sounder(radio: Radio, rng: np.random.Generator, sample_rate_hz: float = 1e6, **phy) -> PhySounder:
    """The probe's sounder: :class:`PhySounder` with :data:`PROBE_PHY` (``phy`` overrides it)."""
    return PhySounder(radio, rng, sample_rate_hz=sample_rate_hz, **{**PROBE_PHY, **phy})


def probe_once(sounder: PhySounder) -> tuple[ProbeResult, np.ndarray]:
    """One burst: ``(ProbeResult, capture complex64 [n_rx, m])``. Raises SyncError if the frame is lost."""
    s = sounder.sound()
    if s.estimate is None:
        raise SyncError(s.error)
    return ProbeResult.from_sounding(s, sounder.cfg.sample_rate_hz, sounder.cfg.amplitude), s.capture


def probe(radio: Radio, rng: np.random.Generator, sample_rate_hz: float = 1e6, **phy) -> ProbeResult:
    """Send one probe frame through ``radio`` and return what the PHY measured."""
    return probe_once(probe_sounder(radio, rng, sample_rate_hz, **phy))[0]


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
        sounder = probe_sounder(radio, rng, fs)
        for _ in range(bursts):
            res, cap = probe_once(sounder)
            d = res.to_dict(fs)
            ev = radio.last_burst()
            if ev is not None and "start" in ev:
                d["true_start_sample"] = ev["start"]
            results.append(d)
            captures.append((cap, res))
    snr = np.array([r["snr_db"] for r in results])
    spec = (info.get("links", {}).get(f"{tx_node}->{rx_node}") or {}).get("channel") or {}
    report = {
        "tx": tx_node, "rx": rx_node, "sample_rate_hz": fs, "control": info["control"],
        "started_server": started, "config": str(config) if config else None, "seed": seed,
        "bursts": results,
        "mean_snr_db": float(10 * np.log10(np.mean(10 ** (snr / 10)))),
        "mean_cfo_hz": float(np.mean([r["cfo_hz"] for r in results])),
        # what the server was told (the link's channel spec from its info reply): the configured SNR is
        # averaged over the fading, so one draw's measured SNR differs by that draw's power gain
        "configured_snr_db": spec.get("snr_db"), "configured_cfo_hz": spec.get("cfo_hz"), "channel": spec,
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


def _cfg(v, unit: str) -> str:
    return "not set" if v is None else f"{float(v):g} {unit}"


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
    lines += ["", f"Mean SNR {rep['mean_snr_db']:.2f} dB (configured {_cfg(rep.get('configured_snr_db'), 'dB')}, "
              "averaged over the fading: one channel draw differs by its power gain), "
              f"mean CFO {rep['mean_cfo_hz']:.1f} Hz (configured {_cfg(rep.get('configured_cfo_hz'), 'Hz')}).", "",
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
