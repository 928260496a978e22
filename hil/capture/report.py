"""Reports of a capture directory: report.json, report.md and plots, and the ``inspect`` summary.

Plots (matplotlib Agg, PNG): ``h_time.png`` |H| of every antenna pair over time; ``h_freq.png`` |H|
over frequency (over subcarriers and time for a multicarrier sounder, over the LO steps for the flat
one); ``snr_time.png`` per-frame SNR; ``cfo_time.png`` CFO drift; ``pdp.png`` the power-delay profile.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from hil._io import atomic_write_json, atomic_write_text, json_safe
from hil.capture.sigmf_io import Recording, list_recordings, load_recording, validate_recording
from hil.capture.stats import ChannelStats, power_delay_profile, recording_stats

log = logging.getLogger(__name__)


def _stats_dict(st: ChannelStats) -> dict:
    """A ChannelStats as a dict; an infinite coherence time (R stays >= 0.5 over the whole recording)
    is also flagged, because strict JSON (hil._io.json_safe) writes it as null like an undefined one."""
    d = st.to_dict()
    d["coherence_time_beyond_recording"] = bool(math.isinf(st.coherence_time_s))
    return d


def recording_summary(rec: Recording) -> dict:
    """Numbers of one recording: sizes, validation-independent statistics (all frames, per LO step)."""
    g = rec.global_info
    d: dict = {
        "name": rec.name,
        "meta": rec.meta_path.name,
        "n_rx": rec.n_rx,
        "n_tx": rec.n_tx,
        "sample_rate_hz": rec.sample_rate_hz,
        "frames": rec.n_frames,
        "estimate_shape": list(rec.estimates.shape),
        "captures": len(rec.captures),
        "complete": g.get("hil:complete", True),
        "stopped": g.get("hil:stopped"),
        "lo_hz": sorted({c["core:frequency"] for c in rec.captures if c.get("core:frequency") is not None}),
    }
    if rec.n_frames >= 3:
        d["stats"] = _stats_dict(recording_stats(rec))
        steps = np.unique(rec.frames.lo_step)
        if len(steps) > 1:
            per = {}
            for s in steps:
                sel = rec.frames.lo_step == s
                if sel.sum() >= 3:
                    sub = _subset(rec, sel)
                    per[int(s)] = _stats_dict(recording_stats(sub))
            d["stats_per_lo_step"] = per
    return d


def _subset(rec: Recording, sel: np.ndarray) -> Recording:
    from dataclasses import replace

    from hil.capture.sigmf_io import FrameTable

    fr = FrameTable(**{k: v[sel] for k, v in asdict(rec.frames).items()})
    return replace(rec, estimates=rec.estimates[sel], frames=fr)


def plot_recording(rec: Recording, out_dir: Path, prefix: str = "") -> list[Path]:
    """Write the five plots of one recording into ``out_dir``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    fr, h = rec.frames, rec.estimates  # h [F, n_sc, n_rx, n_tx]
    t = fr.t_s if np.all(np.isfinite(fr.t_s)) else fr.slot.astype(float)
    xlabel = "time since start (s)" if np.all(np.isfinite(fr.t_s)) else "slot"
    paths = []

    def save(fig, name):
        p = out_dir / f"{prefix}{name}"
        fig.subplots_adjust(left=0.11, right=0.97, bottom=0.16, top=0.9)  # tight_layout draws twice: slow
        fig.savefig(p, dpi=80)
        plt.close(fig)
        paths.append(p)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for r in range(rec.n_rx):
        for tx in range(rec.n_tx):
            ax.plot(t, 20 * np.log10(np.abs(h[:, 0, r, tx]) + 1e-12), lw=0.8, label=f"rx{r}<-tx{tx}")
    ax.set(xlabel=xlabel, ylabel="|H| (dB)", title=f"{rec.name}: |H| over time")
    ax.legend(fontsize=7, ncol=2)
    save(fig, "h_time.png")

    fig, ax = plt.subplots(figsize=(7, 3.5))
    if h.shape[1] > 1:
        img = 20 * np.log10(np.abs(np.fft.fftshift(h[:, :, 0, 0], axes=1)) + 1e-12)
        im = ax.imshow(img.T, aspect="auto", origin="lower",
                       extent=[t[0], t[-1], -h.shape[1] // 2, h.shape[1] - h.shape[1] // 2])
        fig.colorbar(im, ax=ax, label="|H| (dB)")
        ax.set(xlabel=xlabel, ylabel="subcarrier", title=f"{rec.name}: |H| rx0<-tx0 over time and frequency")
    else:
        los = np.unique(fr.lo_hz)
        for r in range(rec.n_rx):
            for tx in range(rec.n_tx):
                m = [10 * np.log10(np.mean(np.abs(h[fr.lo_hz == lo, 0, r, tx]) ** 2) + 1e-24) for lo in los]
                ax.plot(los / 1e6, m, "o-", label=f"rx{r}<-tx{tx}")
        ax.set(xlabel="LO (MHz)", ylabel="mean |H|^2 (dB)", title=f"{rec.name}: channel gain over frequency")
        ax.legend(fontsize=7, ncol=2)
    save(fig, "h_freq.png")

    fig, ax = plt.subplots(figsize=(7, 3.0))
    ax.plot(t, fr.snr_db, ".", ms=2)
    ax.set(xlabel=xlabel, ylabel="SNR (dB)", title=f"{rec.name}: per-frame SNR")
    save(fig, "snr_time.png")

    fig, ax = plt.subplots(figsize=(7, 3.0))
    ax.plot(t, fr.cfo_hz, ".", ms=2)
    ax.set(xlabel=xlabel, ylabel="CFO (Hz)", title=f"{rec.name}: CFO drift")
    save(fig, "cfo_time.png")

    fig, ax = plt.subplots(figsize=(7, 3.0))
    if h.shape[0] >= 2:
        pdp = power_delay_profile(h)
        sc = rec.global_info.get("hil:subcarrier_spacing_hz")
        tap_s = 1.0 / (h.shape[1] * sc) if sc else 1.0 / rec.sample_rate_hz
        n = len(pdp)
        tap = np.arange(n)
        tap = np.where(tap > n // 2, tap - n, tap) if n > 2 else tap  # cyclic: late taps are early ones
        order = np.argsort(tap)
        ax.stem(tap[order] * tap_s * 1e6, 10 * np.log10(pdp[order] + 1e-12), bottom=-60)
        ax.set(xlabel="delay (us)", ylabel="power (dB)",
               title=f"{rec.name}: power-delay profile" + (" (flat sounder: one tap)" if h.shape[1] == 1 else ""))
    save(fig, "pdp.png")
    return paths


def _add_plots(entry: dict, rec: Recording, out_dir: Path, prefix: str) -> None:
    """Plot ``rec`` into ``out_dir`` and list the files in ``entry`` (``plots_error`` if plotting failed)."""
    try:
        entry["plots"] = [p.name for p in plot_recording(rec, out_dir, prefix)]
    except Exception as e:  # noqa: BLE001 - a plot must never lose a recording's report
        log.warning("plots of %s failed: %s", rec.name, e)
        entry["plots_error"] = f"{type(e).__name__}: {e}"


def fmt_value(v, unit: str = "", nd: int = 4) -> str:
    """A statistic for people: ``nd`` significant digits, "n/a" for missing/NaN, "inf"."""
    return _fmt(v, unit, nd)


def _fmt(v, unit="", nd=3):
    if v is None:
        return "n/a"
    if isinstance(v, str) and v in ("inf", "-inf"):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "inf"
        return f"{v:.{nd}g}{unit}"
    return f"{v}{unit}"


def stats_markdown_rows(s: dict) -> list[str]:
    snr = s["snr"]
    ci = s.get("ci95") or {}

    def iv(key: str, nd: int = 3, unit: str = "") -> str:
        c = ci.get(key)
        return " [n/a]" if c is None else f" [{_fmt(c[0], nd=nd)}, {_fmt(c[1], unit, nd=nd)}]"

    rows = [
        f"| frames (independent fades per antenna pair) | {s['n_frames']} "
        f"({_fmt(s.get('n_independent'))}, one every {_fmt(s.get('decorrelation_slots'))} slots) |",
        f"| SNR mean [95 % interval] / median / p05 / p95 (dB) | {_fmt(snr['mean_db'])}{iv('snr_mean_db')} / "
        f"{_fmt(snr['median_db'])} / {_fmt(snr['p05_db'])} / {_fmt(snr['p95_db'])} |",
        f"| Gauss-Markov rho (per slot): complex / envelope | {_fmt(s['gauss_markov_rho'], nd=4)}"
        f"{iv('gauss_markov_rho', 4)} / {_fmt(s.get('gauss_markov_rho_envelope'), nd=4)}"
        f"{iv('gauss_markov_rho_envelope', 4)} |",
        f"| coherence time (R < 0.5) | {_fmt(s['coherence_time_s'], ' s')}{iv('coherence_time_s', unit=' s')} |",
        f"| Rician K, moments / mean (dB) | {_fmt(s['rician_k_db'])}{iv('rician_k_db')} / "
        f"{_fmt(s['rician_k_mean_db'])}{iv('rician_k_mean_db')} |",
        f"| CFO mean +- std (Hz) | {_fmt(s['cfo_hz_mean'])} +- {_fmt(s['cfo_hz_std'])} |",
        f"| RMS delay spread | {_fmt(s['rms_delay_spread_s'], ' s')} |",
        f"| mean channel gain (dB) | {_fmt(s['mean_gain_db'])}{iv('mean_gain_db')} |",
    ]
    rows += [f"| **warning** | {w} |" for w in s.get("warnings") or ()]
    return rows


def write_capture_report(directory: str | Path, extra: dict | None = None, plots_dir: str | Path | None = None) -> dict:
    """Validate every recording of ``directory``, compute statistics, write report.json, report.md, plots.

    Returns the report dict (as written to report.json).
    """
    d = Path(directory)
    pd = Path(plots_dir) if plots_dir else d
    recs = []
    for meta in list_recordings(d):
        problems = validate_recording(meta)
        entry: dict = {"meta": meta.name, "valid": not problems, "problems": problems}
        if not problems:
            rec = load_recording(meta)
            entry.update(recording_summary(rec))
            _add_plots(entry, rec, pd, f"{rec.name}_" if len(list_recordings(d)) > 1 else "")
        recs.append(entry)
    cfg_path = d / "config.json"
    report = {
        "kind": "capture",
        "directory": str(d),
        "recordings": recs,
        "all_valid": all(r["valid"] for r in recs),
        "config": json.loads(cfg_path.read_text()) if cfg_path.exists() else None,
        **(extra or {}),
    }
    md = report_markdown(report)  # from the raw values: an infinite coherence time reads "inf"
    report = json_safe(report)
    atomic_write_json(d / "report.json", report)
    atomic_write_text(d / "report.md", md)
    return report


def report_markdown(report: dict) -> str:
    lines = [f"# Channel capture: {report['directory']}", ""]
    if report.get("stopped"):
        st = report["stopped"]
        lines += [f"**Stopped early** ({st.get('reason')}): recording {st.get('recording')}, LO step "
                  f"{st.get('lo_step')}, slot {st.get('slot')}. Every recording below is complete and valid.", ""]
    if "frames" in report:
        lines += [f"Frames recorded: {report['frames']}, missed: {report.get('missed', 0)}, "
                  f"elapsed {_fmt(report.get('elapsed_s'), ' s')}.", ""]
    lines += [f"All recordings pass sigmf's validator: **{report['all_valid']}**.", ""]
    for r in report["recordings"]:
        lines += [f"## {r.get('name', r['meta'])}", ""]
        if not r["valid"]:
            lines += ["INVALID: " + "; ".join(r["problems"]), ""]
            continue
        lines += [f"{r['n_rx']} rx x {r['n_tx']} tx at {_fmt(r['sample_rate_hz'], ' S/s')}, LO "
                  f"{', '.join(_fmt(x / 1e6, ' MHz', 6) for x in r['lo_hz'])}; estimates {r['estimate_shape']}"
                  + ("" if r.get("complete", True) else " (**incomplete**: stopped early)"), ""]
        if "stats" in r:
            lines += ["| statistic | value |", "|---|---|", *stats_markdown_rows(r["stats"]), ""]
        for p in r.get("plots", []):
            lines.append(f"![{p}]({p})")
        lines.append("")
    return "\n".join(lines) + "\n"


def stats_of(directory: str | Path) -> list[ChannelStats]:
    """The statistics of every recording in ``directory``."""
    return [recording_stats(load_recording(p)) for p in list_recordings(directory)]


def inspect_directory(directory: str | Path, plots_dir: str | Path | None = None) -> dict:
    """``hil capture inspect``: validate every recording, compute statistics, plot.

    Plots and ``inspect.json`` go to ``plots_dir`` (default ``DIR/inspect``), so the capture's own
    report.json is left as the capture wrote it. Returns the summary dict.
    """
    d = Path(directory)
    base = d if d.is_dir() else d.parent
    pd = Path(plots_dir) if plots_dir else base / "inspect"
    pd.mkdir(parents=True, exist_ok=True)
    metas = list_recordings(d)
    if not metas:
        from hil.errors import CaptureError

        raise CaptureError(f"no .sigmf-meta recording in {d}; run `hil capture --out {d}` first")
    recs = []
    for meta in metas:
        problems = validate_recording(meta)
        entry: dict = {"meta": meta.name, "valid": not problems, "problems": problems}
        if not problems:
            rec = load_recording(meta)
            entry.update(recording_summary(rec))
            _add_plots(entry, rec, pd, f"{rec.name}_")
        recs.append(entry)
    rep = json_safe({"directory": str(d), "plots_dir": str(pd), "recordings": recs,
                     "all_valid": all(r["valid"] for r in recs)})
    atomic_write_json(pd / "inspect.json", rep)
    return rep
