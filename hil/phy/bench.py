"""The PHY benchmark: detection, false alarms, timing, CFO, channel-estimate NMSE against theory, EVM.

Used by ``hil bench phy`` and ``benchmarks/phy_bench.py``; the tests run a short version.

[Note: benchmark truth]
Every trial builds a fresh channel (``hil.channel.build_channel``): 2x2 Rayleigh (a new H per
trial), AWGN at ``snr_db`` per receive antenna measured on the received burst (``snr_reference =
"rx"``; ``snr_reference="tx"``, the SNR averaged over the fading, is available with
``--snr-reference tx``), a CFO drawn uniformly in +-``max_cfo_hz`` with a random initial phase,
a fractional delay drawn in [0, 3) samples, and Wiener phase noise at a Pluto-like level
(``PLUTO_PHASE_NOISE``). The radio keeps the channel coefficients of the burst, so the truth is
exact: frame start = lead + delay, and the channel the receiver should estimate is
``H exp(j(phi_cfo(n_ref) + phi_pn(n_ref)))``, the fading matrix turned by the CFO and phase-noise
phase at the receiver's reference sample (the pilot-block centre, see [Note: CFO and phase
references] in hil.phy.receiver). The theoretical LS NMSE is ``E[sigma_e^2] / E[|h|^2]`` with
``sigma_e^2 = (N0 / sps) / (n_tx * pilot_len * a^2)`` (noise variance per symbol over the pilot
energy per antenna), N0 the true noise power of the AWGN stage.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from hil._io import atomic_write_json, atomic_write_text
from hil.channel.config import build_channel
from hil.channel.fading import FlatFading
from hil.channel.impairments import CarrierFrequencyOffset, PhaseNoise
from hil.channel.random import complex_normal
from hil.errors import SyncError
from hil.phy.config import PhyConfig
from hil.phy.frame import FrameLayout, FrameTransmitter
from hil.phy.receiver import FrameReceiver
from hil.radio.base import Radio, RadioCaps, as_samples

log = logging.getLogger(__name__)

#: Pluto-like LO phase noise (AD9361 at 2.4 GHz: about -90 dBc/Hz at 10 kHz, two free-running LOs)
PLUTO_PHASE_NOISE = {"psd_dbc_hz": -87.0, "psd_offset_hz": 1e4}
SNRS_DB = (-5, 0, 5, 10, 20, 30)


class CoeffRadio(Radio):
    """Like LoopbackRadio (lead/trail silence around the burst) but keeps the channel coefficients."""

    def __init__(self, channel, lead_samples: int = 64, trail_samples: int = 64):
        self.channel = channel
        self.lead = lead_samples
        self.trail = trail_samples
        self.coeffs: list | None = None

    @property
    def caps(self) -> RadioCaps:
        return RadioCaps(n_tx=self.channel.n_in, n_rx=self.channel.n_out)

    def transceive(self, tx_burst: np.ndarray, rx_samples: int | None = None) -> np.ndarray:
        x = as_samples(tx_burst, self.channel.n_in, "tx_burst")
        n = x.shape[1] + self.lead + self.trail
        padded = np.zeros((x.shape[0], n), np.complex64)
        padded[:, self.lead : self.lead + x.shape[1]] = x
        self.coeffs = self.channel.generate(n)
        return np.asarray(self.channel.apply(padded, self.coeffs), np.complex64)

    def close(self) -> None:
        pass


def bench_channel_spec(snr_db: float, rng: np.random.Generator, *, cfo: bool, phase_noise: bool,
                 max_cfo_hz: float = 100e3, n_tx: int = 2, n_rx: int = 2, snr_reference: str = "rx") -> dict:
    """The benchmark channel of one trial (see [Note: benchmark truth])."""
    spec = {
        "n_tx": n_tx, "n_rx": n_rx, "fading": "rayleigh", "snr_db": float(snr_db),
        "snr_reference": snr_reference, "noise": "exact",
        "delay_samples": float(rng.uniform(0.0, 3.0)),
    }
    if cfo:
        spec["cfo_hz"] = float(rng.uniform(-max_cfo_hz, max_cfo_hz))
        spec["cfo_phase_rad"] = float(rng.uniform(0, 2 * np.pi))
    if phase_noise:
        spec["phase_noise"] = dict(PLUTO_PHASE_NOISE)
    return spec


def _truth(radio: CoeffRadio, rx: FrameReceiver, timing: float) -> np.ndarray:
    ch = radio.channel
    n_ref = rx.reference_sample(timing)
    h = None
    phase = 0.0
    for stage, c in zip(ch.stages, radio.coeffs):
        if isinstance(stage, FlatFading):
            h = np.asarray(c.mats[0, 0], np.complex128)
        elif isinstance(stage, CarrierFrequencyOffset):
            phase += c + 2 * np.pi * stage.cfo_hz / stage.sample_rate_hz * n_ref
        elif isinstance(stage, PhaseNoise):
            phase += float(np.interp(n_ref, np.arange(len(c)), c))
    return h * np.exp(1j * phase)


@dataclasses.dataclass
class Trial:
    detected: bool
    reason: str = ""
    timing_err: float = math.nan
    cfo_err_hz: float = math.nan
    err_ls: float = math.nan  # sum |H_ls - H|^2
    err_lmmse: float = math.nan
    h_power: float = math.nan  # sum |H|^2
    theory_err: float = math.nan  # n_rx n_tx sigma_e^2
    evm_num: float = math.nan  # sum |s_hat - s|^2 (ZF)
    evm_pred: float = math.nan  # predicted sum
    evm_den: float = math.nan  # sum |s|^2
    snr_est_db: float = math.nan


def run_trial(cfg: PhyConfig, spec: dict, rng: np.random.Generator, batch: int = 4, uses: int = 32) -> Trial:
    """One frame through a fresh channel; all the measurements of [Note: benchmark truth]."""
    ch = build_channel(spec, rng)
    radio = CoeffRadio(ch)
    tx, rx = _transmitter(cfg), _receiver(cfg)
    s = complex_normal(rng, (batch, cfg.n_tx, uses), dtype=np.complex64)
    burst, info = tx.build(s, seq=int(rng.integers(0, 1 << 16)))
    cap = radio.transceive(burst)
    try:
        res = rx.receive(cap, expect_seq=info.header.seq, expect_shape=(batch, uses))
    except SyncError as e:
        return Trial(False, reason=str(e).split(":")[0])
    true_start = radio.lead + spec.get("delay_samples", 0.0)
    h = _truth(radio, rx, res.timing)
    awgn = ch.stages[-1]
    n0 = float(np.mean(awgn._last_n0))
    a = cfg.amplitude
    sig_e = (n0 / cfg.sps) / (cfg.n_tx * cfg.pilot_len * a * a)
    hh = res.channel_estimate.astype(np.complex128)
    pinv = np.linalg.pinv(hh)
    s_hat = np.einsum("ts,bsk->btk", pinv, res.payload)
    rho = max(float(np.mean(np.abs(res.channel_estimate_ls) ** 2)) - res.estimate_error_var, 1e-12)
    e_var = res.estimate_error_var * (rho / (rho + res.estimate_error_var) if cfg.estimator == "lmmse" else 1.0)
    # error covariance after ZF: pinv (diag(noise_var_rx) + n_tx e_var P_s I) pinv^H
    cov = np.diag(res.noise_var_rx + cfg.n_tx * e_var * float(np.mean(np.abs(s) ** 2)))
    pred = float(np.real(np.trace(pinv @ cov @ pinv.conj().T)))
    return Trial(
        True,
        timing_err=res.timing - true_start,
        cfo_err_hz=res.cfo_hz - spec.get("cfo_hz", 0.0),
        err_ls=float(np.sum(np.abs(res.channel_estimate_ls - h) ** 2)),
        err_lmmse=float(np.sum(np.abs(res.channel_estimate_lmmse - h) ** 2)),
        h_power=float(np.sum(np.abs(h) ** 2)),
        theory_err=cfg.n_rx * cfg.n_tx * sig_e,
        evm_num=float(np.sum(np.abs(s_hat - s) ** 2)),
        evm_pred=pred * batch * uses,
        evm_den=float(np.sum(np.abs(s) ** 2)),
        snr_est_db=res.snr_db,
    )


_RX_CACHE: dict = {}
_TX_CACHE: dict = {}


def _transmitter(cfg: PhyConfig) -> FrameTransmitter:
    if cfg not in _TX_CACHE:
        _TX_CACHE[cfg] = FrameTransmitter(cfg)
    return _TX_CACHE[cfg]


def _receiver(cfg: PhyConfig) -> FrameReceiver:
    if cfg not in _RX_CACHE:
        _RX_CACHE[cfg] = FrameReceiver(cfg)
    return _RX_CACHE[cfg]


def _db(x: float) -> float:
    return float(10 * np.log10(x)) if x > 0 else float("-inf")


def clopper_pearson(k: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper-Pearson (exact) interval of a proportion k/n; (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    ci = binomtest(k, n).proportion_ci(confidence_level=conf, method="exact")
    return float(ci.low), float(ci.high)


def summarise(trials: list[Trial], snr_db: float) -> dict:
    n = len(trials)
    ok = [t for t in trials if t.detected]
    k = len(ok)
    out = {"snr_db": snr_db, "trials": n, "detected": k, "pd": k / n if n else math.nan,
           "pd_ci95": clopper_pearson(k, n), "misses": {}}
    for t in trials:
        if not t.detected:
            out["misses"][t.reason] = out["misses"].get(t.reason, 0) + 1
    if not ok:
        return out
    te = np.array([t.timing_err for t in ok])
    ce = np.array([t.cfo_err_hz for t in ok])
    hp = sum(t.h_power for t in ok)
    out.update({
        "timing_err_rms_samples": float(np.sqrt(np.mean(te**2))),
        "timing_err_max_samples": float(np.max(np.abs(te))),
        "cfo_rmse_hz": float(np.sqrt(np.mean(ce**2))),
        "nmse_ls_db": _db(sum(t.err_ls for t in ok) / hp),
        "nmse_lmmse_db": _db(sum(t.err_lmmse for t in ok) / hp),
        "nmse_ls_theory_db": _db(sum(t.theory_err for t in ok) / hp),
        "evm_db": _db(sum(t.evm_num for t in ok) / sum(t.evm_den for t in ok)),
        "evm_predicted_db": _db(sum(t.evm_pred for t in ok) / sum(t.evm_den for t in ok)),
        # per-trial ratio measured/predicted, averaged: every trial weighs the same (ZF on a 2x2
        # Rayleigh channel has a heavy-tailed noise gain, which dominates the plain sums)
        "evm_minus_predicted_db": _db(float(np.mean([t.evm_num / t.evm_pred for t in ok]))),
        "snr_est_db_mean": float(np.mean([t.snr_est_db for t in ok])),
    })
    out["nmse_ls_minus_theory_db"] = out["nmse_ls_db"] - out["nmse_ls_theory_db"]
    out["lmmse_gain_db"] = out["nmse_ls_db"] - out["nmse_lmmse_db"]
    return out


def false_alarms(cfg: PhyConfig, n: int, rng: np.random.Generator, capture_samples: int) -> dict:
    """Noise-only captures (complex white Gaussian, random power): how many yield a detection."""
    rx = _receiver(cfg)
    hits, peaks = 0, []
    for _ in range(n):
        p = 10 ** rng.uniform(-6, 0)
        x = complex_normal(rng, (cfg.n_rx, capture_samples), var=p, dtype=np.complex64)
        pos = rx.candidates(x)
        stat, _ = rx.statistic(x, pos)
        thr = rx.threshold(capture_samples - rx.nw + 1)
        peaks.append(float(stat.max() / thr))
        hits += bool(stat.max() > thr)
    return {"captures": n, "false_alarms": hits, "rate": hits / n, "rate_ci95": clopper_pearson(hits, n),
            "p_fa_design": cfg.p_fa, "max_peak_over_threshold": float(max(peaks)),
            "capture_samples": capture_samples}


def run_phy_bench(quick: bool = False, seed: int = 0, snrs=SNRS_DB, n_trials: int | None = None,
                  n_noise: int | None = None, n_clean: int | None = None, snr_reference: str = "rx",
                  progress=None) -> dict:
    """Run the whole benchmark; returns the report dict (see docs/phy.md for the meaning).

    Args:
        quick: short version (tests): few trials.
        seed: seed of the one Generator everything draws from.
        snrs: SNR points (dB per receive antenna).
        n_trials: trials per SNR point for the impaired sweep (default 500, quick 40); the clean
            sweep runs a third of that.
        n_noise: noise-only captures for the false-alarm rate (default 4000, quick 100).
        n_clean: trials per SNR point of the clean sweep (default n_trials // 3, at least 20).
        snr_reference: "rx" (SNR of each received burst) or "tx" (average over the fading).
        progress: optional callable(str) for progress messages.
    """
    rng = np.random.default_rng(seed)
    n_trials = n_trials or (40 if quick else 500)
    n_clean = n_clean or max(20, n_trials // 3)
    n_noise = n_noise or (100 if quick else 4000)
    cfg = PhyConfig(n_tx=2, n_rx=2, mode="flat")
    t_start = time.perf_counter()
    say = progress or (lambda m: None)
    impaired, clean = [], []
    for k, snr in enumerate(snrs, 1):
        say(f"SNR point {k}/{len(snrs)}: {snr} dB, {n_trials} impaired trials")
        tr = [run_trial(cfg, bench_channel_spec(snr, rng, cfo=True, phase_noise=True, snr_reference=snr_reference), rng)
              for _ in range(n_trials)]
        impaired.append(summarise(tr, snr))
        say(f"SNR point {k}/{len(snrs)}: {snr} dB, {n_clean} clean trials")
        tr = [run_trial(cfg, bench_channel_spec(snr, rng, cfo=False, phase_noise=False, snr_reference=snr_reference), rng)
              for _ in range(n_clean)]
        clean.append(summarise(tr, snr))
    cap_len = FrameTransmitter(cfg).build(np.zeros((4, 2, 32), np.complex64))[1].n_samples + 128
    say(f"noise only: {n_noise} captures")
    fa = false_alarms(cfg, n_noise, rng, cap_len)
    return {
        "config": cfg.to_dict(),
        "seed": seed,
        "quick": quick,
        "snr_reference": snr_reference,
        "channel": {"fading": "rayleigh 2x2, new H per trial", "cfo_hz": "uniform +-100e3",
                    "delay_samples": "uniform [0, 3)", "phase_noise": PLUTO_PHASE_NOISE,
                    "payload": "B=4 vectors x K=32 channel uses, complex Gaussian symbols"},
        "impaired": impaired,
        "clean": clean,
        "false_alarm": fa,
        "elapsed_s": time.perf_counter() - t_start,
    }


# One receiver-side impairment at a time (the table in docs/phy.md "Limits"; benchmarks/phy_impairments.py).
IMPAIRMENTS = {
    "none": {},
    "sco 20 ppm": {"sco_ppm": 20},
    "iq 0.3 dB / 2 deg": {"iq_imbalance": {"amplitude_db": 0.3, "phase_deg": 2}},
    "dc (0.003, -0.002)": {"dc_offset": [0.003, -0.002]},
    "cfo 90 kHz": {"cfo_hz": 9e4},
    "phase noise -87 dBc/Hz@10k": {"phase_noise": PLUTO_PHASE_NOISE},
}


def impairment_excess_db(extra: dict, mode: str, snr_db: float = 30.0, frames: int = 10, seed: int = 5) -> float:
    """Payload error over its prediction in dB, 2x2 Rayleigh with ``extra`` channel impairments.

    ``10 log10(mean(err / pred))`` over ``frames`` bursts of 8 x 64 complex Gaussian uses, where err
    is the mean ``|payload - H_est s|^2`` and pred = noise_var + n_tx * estimate_error_var * E|s|^2.
    0 dB = the impairment is fully handled; positive = error the receiver leaves. One Generator
    seeded ``seed`` draws the channel and the symbols.
    """
    from hil.phy.link import PhyLink
    from hil.radio.loopback import LoopbackRadio

    rng = np.random.default_rng(seed)
    spec = {"n_tx": 2, "n_rx": 2, "fading": "rayleigh", "snr_db": snr_db, "snr_reference": "rx", **extra}
    link = PhyLink(LoopbackRadio(build_channel(spec, rng)), PhyConfig(n_tx=2, n_rx=2, mode=mode))
    ratios = []
    for _ in range(frames):
        s = complex_normal(rng, (8, 2, 64), dtype=np.complex64)
        res = link.transceive(s)
        if res.subcarrier is None:
            expect = np.einsum("rt,btk->brk", res.channel_estimate, s)
        else:
            expect = np.einsum("bkrt,btk->brk", res.channel_estimate[res.subcarrier], s)
        err = float(np.mean(np.abs(res.payload - expect) ** 2))
        pred = res.noise_var + 2 * res.estimate_error_var * float(np.mean(np.abs(s) ** 2))
        ratios.append(err / pred)
    return _db(float(np.mean(ratios)))


def check(report: dict) -> dict[str, bool]:
    """The PHY's acceptance checks (docs/phy.md) on a report."""
    imp = {p["snr_db"]: p for p in report["impaired"]}
    cln = {p["snr_db"]: p for p in report["clean"]}
    out = {
        "pd>=0.999 at SNR>=0": all(p["pd"] >= 0.999 for s, p in imp.items() if s >= 0),
        "false alarms <= 1e-3": report["false_alarm"]["rate"] <= 1e-3,
        "LS NMSE within 1 dB of theory 0..30 dB (clean)": all(
            abs(p.get("nmse_ls_minus_theory_db", 99)) <= 1.0 for s, p in cln.items() if 0 <= s <= 30),
        "LMMSE better than LS at 0 dB": imp.get(0, {}).get("lmmse_gain_db", -1) > 0
        and cln.get(0, {}).get("lmmse_gain_db", -1) > 0,
        "EVM within 1 dB of prediction (clean)": all(
            abs(p.get("evm_minus_predicted_db", 99)) <= 1.0 for p in cln.values() if p["snr_db"] >= 0),
    }
    return out


def write_bench_report(report: dict, out_dir: Path) -> None:
    """report.json, report.md, config.json and the NMSE plot into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = dict(report)
    report["checks"] = check(report)
    atomic_write_json(out_dir / "config.json", report["config"])
    plot_nmse(report, out_dir / "phy_nmse.png")
    report["constellation"] = plot_constellations(out_dir / "phy_constellation.png", seed=report["seed"])
    atomic_write_text(out_dir / "report.md", markdown_table(report))
    atomic_write_json(out_dir / "report.json", report)  # last: its presence marks a finished run


def markdown_table(report: dict) -> str:
    lines = [f"# PHY benchmark (seed {report['seed']}, {report['config']['mode']}, 2x2 Rayleigh, "
             f"SNR reference {report['snr_reference']})", ""]
    for name in ("impaired", "clean"):
        lines += [f"## {name}: " + ("CFO +-100 kHz, fractional delay, Pluto-like phase noise"
                                    if name == "impaired" else "fractional delay only (no CFO, no phase noise)"), "",
                  "| SNR dB | trials | Pd | timing rms (samples) | CFO RMSE (Hz) | NMSE LS | NMSE LMMSE | LS theory | EVM | EVM predicted | EVM/pred (per trial) | SNR est |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for p in report[name]:
            f = lambda k, fmt="{:.2f}": fmt.format(p[k]) if k in p else "-"  # noqa: E731
            lines.append(
                f"| {p['snr_db']} | {p['trials']} | {p['pd']:.4f} | {f('timing_err_rms_samples', '{:.3f}')} | "
                f"{f('cfo_rmse_hz', '{:.1f}')} | {f('nmse_ls_db')} | {f('nmse_lmmse_db')} | {f('nmse_ls_theory_db')} | "
                f"{f('evm_db')} | {f('evm_predicted_db')} | {f('evm_minus_predicted_db')} | {f('snr_est_db_mean')} |")
        lines.append("")
    fa = report["false_alarm"]
    lines += [f"False alarms: {fa['false_alarms']} in {fa['captures']} noise-only captures of "
              f"{fa['capture_samples']} samples (design p_fa {fa['p_fa_design']:g} per capture; 95% CI "
              f"{fa['rate_ci95'][0]:.2g}..{fa['rate_ci95'][1]:.2g}).", ""]
    if "checks" in report:
        lines += ["## Checks", ""] + [f"- {'PASS' if v else 'FAIL'}: {k}" for k, v in report["checks"].items()]
    lines.append(f"\nElapsed {report['elapsed_s']:.1f} s.")
    return "\n".join(lines) + "\n"


def plot_nmse(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, style in (("clean", "-"), ("impaired", "--")):
        pts = [p for p in report[name] if "nmse_ls_db" in p]
        s = [p["snr_db"] for p in pts]
        ax.plot(s, [p["nmse_ls_db"] for p in pts], "o" + style, label=f"LS ({name})")
        ax.plot(s, [p["nmse_lmmse_db"] for p in pts], "s" + style, label=f"LMMSE ({name})")
        ax2.plot(s, [p["nmse_ls_db"] - p["nmse_ls_theory_db"] for p in pts], "o" + style, label=f"LS ({name})")
        ax2.plot(s, [p["nmse_lmmse_db"] - p["nmse_ls_theory_db"] for p in pts], "s" + style, label=f"LMMSE ({name})")
    pts = [p for p in report["clean"] if "nmse_ls_theory_db" in p]
    ax.plot([p["snr_db"] for p in pts], [p["nmse_ls_theory_db"] for p in pts], "k:", lw=2, label="LS theory")
    ax2.axhline(0, color="k", ls=":", lw=2, label="LS theory")
    ax2.axhspan(-1, 1, color="g", alpha=0.08, label="+-1 dB")
    ax.set_xlabel("SNR per receive antenna (dB)")
    ax.set_ylabel("channel estimate NMSE (dB)")
    ax.set_title("2x2 Rayleigh: channel-estimate NMSE vs SNR", fontsize=10)
    ax2.set_xlabel("SNR per receive antenna (dB)")
    ax2.set_ylabel("NMSE - LS theory (dB)")
    ax2.set_title("difference from theory (impaired: CFO + phase noise floor)", fontsize=10)
    for a_ in (ax, ax2):
        a_.grid(True, alpha=0.3)
        a_.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_constellations(path: Path, seed: int = 0, snr_db: float = 25.0, cfo_hz: float = 30e3) -> dict:
    """QPSK through one channel with CFO and phase noise: payload before and after CFO correction.

    Left: the matched-filter outputs at the payload symbol instants of the raw capture (timing
    found, no CFO correction), divided by the channel estimate. Middle: CFO corrected, no phase
    tracking. Right: what :meth:`FrameReceiver.receive` returns (CFO corrected, phase tracked),
    divided by the channel estimate. Returns the EVM of each panel (dB).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    cfg = PhyConfig(n_tx=1, n_rx=1, mode="single")
    spec = {"n_tx": 1, "n_rx": 1, "fading": "rayleigh", "snr_db": snr_db, "snr_reference": "rx",
            "cfo_hz": cfo_hz, "delay_samples": 0.4, "phase_noise": dict(PLUTO_PHASE_NOISE)}
    radio = CoeffRadio(build_channel(spec, rng))
    tx, rx = FrameTransmitter(cfg), FrameReceiver(cfg)
    qpsk = np.exp(1j * np.pi / 4 * (2 * rng.integers(0, 4, (8, 1, 64)) + 1)).astype(np.complex64)
    burst, info = tx.build(qpsk)
    cap = radio.transceive(burst)
    res = rx.receive(cap)
    lay = FrameLayout(cfg, 8, 64)
    data_pos, _ = lay.payload_positions()
    h = complex(res.channel_estimate[0, 0])
    raw = rx.pulse.matched(cap, res.timing + rx.pulse.half + lay.payload_start * cfg.sps, lay.n_payload_symbols)
    n_ref = rx.reference_sample(res.timing)
    nidx = np.arange(cap.shape[1])
    xc = cap * np.exp(-2j * np.pi * res.cfo_hz / cfg.sample_rate_hz * (nidx - n_ref))
    cfo_only = rx.pulse.matched(xc, res.timing + rx.pulse.half + lay.payload_start * cfg.sps, lay.n_payload_symbols)
    # the raw panel keeps the phase of the pilots so the rotation across the payload is visible
    raw = raw * np.exp(2j * np.pi * res.cfo_hz / cfg.sample_rate_hz
                       * (res.timing + rx.pulse.half + lay.payload_start * cfg.sps - n_ref))
    panels = {
        "before CFO correction": raw[0, data_pos] / (h * res.tx_scale),
        "CFO corrected": cfo_only[0, data_pos] / (h * res.tx_scale),
        "CFO corrected + phase tracked": res.payload[:, 0, :].reshape(-1) / h,
    }
    ref = qpsk[:, 0, :].reshape(-1)
    evm = {k: _db(float(np.mean(np.abs(v - ref) ** 2))) for k, v in panels.items()}
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.9))
    for ax, (name, v) in zip(axes, panels.items()):
        ax.plot(v.real, v.imag, ".", ms=3, alpha=0.6)
        ax.plot(ref.real, ref.imag, "r+", ms=10)
        ax.set_title(f"{name}\nEVM {evm[name]:.1f} dB", fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlim(-2, 2)
        ax.set_ylim(-2, 2)
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"1x1 Rayleigh, {snr_db:.0f} dB, CFO {cfo_hz / 1e3:.0f} kHz at 1 MS/s, Pluto-like phase noise "
                 f"(estimated CFO {res.cfo_hz / 1e3:.3f} kHz)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"evm_db": evm, "cfo_hz": cfo_hz, "cfo_est_hz": res.cfo_hz, "snr_db": snr_db}
