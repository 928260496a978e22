"""The report folder of a training run: report.json (all numbers), report.md, PNG plots."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


from hil._io import atomic_write_json, atomic_write_text  # noqa: E402


def write_json(path: str | Path, obj) -> None:
    """Write strict JSON atomically (fsync of file and folder; see [Note: atomic writes] in hil/_io.py)."""
    atomic_write_json(path, obj)


def plot_history(history: dict[str, list[dict]], path: Path) -> None:
    """Loss and test accuracy per epoch, one line per model (``{"ota": [...], "digital": [...]}``)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, recs in history.items():
        if not recs:
            continue
        ep = [r["epoch"] for r in recs]
        ax1.plot(ep, [r["loss"] for r in recs], marker=".", label=name)
        ax2.plot(ep, [r["test_accuracy"] for r in recs], marker=".", label=name)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")
    ax1.set_yscale("log")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("test accuracy (%)")
    for a in (ax1, ax2):
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _db(v) -> str:
    """A measured dB value for a person: two decimals, or "n/a" when there is none."""
    return "n/a" if v is None else f"{float(v):.2f} dB"


def plot_sweep(points: list[dict], key: str, path: Path, title: str, digital: float | None = None, logx: bool = False) -> None:
    """Accuracy vs ``key``; one line per gradient mode; the digital accuracy as a dashed line."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    modes = sorted({p.get("gradient_mode", "ota") for p in points})
    for m in modes:
        pts = sorted((p[key], p["accuracy"]) for p in points if p.get("gradient_mode", "ota") == m)
        xs = [x for x, _ in pts]
        if logx:
            xs = [max(1.0 - x, 1e-4) for x in xs]
        ax.plot(xs, [a for _, a in pts], marker="o", label=m)
    if digital is not None:
        ax.axhline(digital, ls="--", color="k", lw=1, label="digital")
    if logx:
        ax.set_xscale("log")
        ax.set_xlabel(f"1 - {key}")
    else:
        ax.set_xlabel(key)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out: Path, report: dict) -> list[str]:
    """Write report.json, report.md and the plots into ``out``; return the PNG names."""
    out.mkdir(parents=True, exist_ok=True)
    pngs = []
    plot_history(report["history"], out / "history.png")
    pngs.append("history.png")
    return _write_sweeps(out, report, pngs, report["accuracy"].get("digital"), _markdown)


_SWEEP_TITLES = {"snr_db": ("accuracy vs SNR", False), "rho": ("accuracy vs Gauss-Markov rho", True),
                 "channel_uses": ("accuracy vs channel uses", False)}


def _write_sweeps(out: Path, report: dict, pngs: list[str], digital: float | None, markdown) -> list[str]:
    """Plot each sweep of ``report`` beside ``digital``, then write report.json and report.md (atomically)."""
    for key, pts in (report.get("sweeps") or {}).items():
        if pts:
            title, logx = _SWEEP_TITLES.get(key, (key, False))
            title += f" ({pts[0].get('transport', '?')}, {pts[0].get('epochs', '?')} epochs)"
            plot_sweep(pts, key, out / f"accuracy_vs_{key}.png", title, digital, logx)
            pngs.append(f"accuracy_vs_{key}.png")
    report["plots"] = pngs
    write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", markdown(report))
    return pngs


def _markdown(r: dict) -> str:
    acc = r["accuracy"]
    lines = [
        f"# Over-the-air split training: {r['dataset']} / {r['model']}",
        "",
        f"- transport: **{r['transport']}**, gradient mode: **{r['gradient_mode']}**, "
        f"{r['n_tx']}x{r['n_rx']} antennas, {r['channel_uses']} channel uses per vector",
        f"- configured SNR {r['snr_db']} dB per sample per receive antenna, averaged over the fading; the "
        f"receiver measured {_db(r.get('measured_snr_db'))} on this channel draw (same definition: its Es/N0 "
        f"{_db(r.get('measured_es_n0_db'))} per symbol minus 10 log10(sps)); this draw's power gain in its "
        f"pilot estimate is {_db(r.get('draw_gain_db'))}, so its estimate of the average SNR over the fading is "
        f"{_db(r.get('measured_avg_snr_db'))}; rho {r['rho']}",
        f"- epochs: {r['epochs']}, training frames over the link: {r['frames']}, calibration frames: "
        f"{r.get('calibration_frames', 0)}, wall time {r['seconds']:.1f} s",
    ]
    sessions = r.get("sessions") or []
    if len(sessions) > 1:
        lines.append(f"- resumed: {len(sessions)} sessions in this folder; wall time and measurements cover all of "
                     "them (" + ", ".join(f"{s['seconds']:.1f} s" if s.get("seconds") is not None else "unknown"
                                          for s in sessions) + ")")
    lines += [
        "",
        "| model | test accuracy (%) |",
        "|---|---|",
    ]
    for k, v in acc.items():
        lines.append(f"| {k} | {v:.2f} |" if v is not None else f"| {k} | - |")
    if acc.get("digital") is not None and acc.get("ota") is not None:
        lines += ["", f"Gap to digital: {acc['ota'] - acc['digital']:+.2f} points."]
    cal = r.get("calibration")
    if cal:
        lines += ["", f"Reciprocity calibration: residual {cal['residual']:.3g}."]
    for key, pts in r.get("sweeps", {}).items():
        if not pts:
            continue
        lines += ["", f"## accuracy vs {key} ({pts[0].get('transport')}, {pts[0].get('epochs')} epochs per point, "
                  "SNR per sample per receive antenna averaged over the fading)", "",
                  f"| {key} | gradient mode | accuracy (%) |", "|---|---|---|"]
        for p in sorted(pts, key=lambda p: (p.get("gradient_mode", ""), p[key])):
            lines.append(f"| {p[key]} | {p.get('gradient_mode', '')} | {p['accuracy']:.2f} |")
    lines += [""] + [f"![{p}]({p})" for p in r.get("plots", [])] + [""]
    return "\n".join(lines)


def _ci(s: dict | None, unit: str = "", sign: str = "+") -> str:
    """``mean, 95 % interval [lo, hi]`` of a :func:`hil.stats.mean_ci95` summary, for a person."""
    if not s or s.get("mean") is None:
        return "n/a"
    f = f"{sign}.2f"
    if s.get("ci95") is None:
        return f"{s['mean']:{f}}{unit} (one seed: no interval)"
    lo, hi = s["ci95"]
    return f"{s['mean']:{f}}{unit}, 95 % interval [{lo:{f}}, {hi:{f}}]{unit} (Student t, {s['n']} seeds)"


def write_seeds_report(out: Path, report: dict) -> list[str]:
    """Write report.json, report.md and the sweep plots of a run over seeds (hil.train.seeds)."""
    out.mkdir(parents=True, exist_ok=True)
    return _write_sweeps(out, report, [], (report.get("accuracy_digital") or {}).get("mean"), _seeds_markdown)


def _seeds_markdown(r: dict) -> str:
    acc, m = r["accuracy"], r["measured_snr_db"]
    n = len(r["seeds"])
    gain = r.get("symbol_gain_db")
    lines = [
        f"# Over-the-air split training over {n} seed{'s' if n != 1 else ''}: {r['dataset']} / {r['model']}",
        "",
        f"- transport: **{r['transport']}**, gradient mode: **{r['gradient_mode']}**, {r['n_tx']}x{r['n_rx']} "
        f"antennas, {r['channel_uses']} channel uses per vector, rho {r['rho']}, {r['epochs']} epochs",
        f"- seed k trains with train seed {r['seeds'][0]}+k over channel draw {r['channel_seeds'][0]}+k "
        f"(one folder per seed: {', '.join(r.get('folders', []))})",
        f"- configured SNR {r['snr_db']} dB per sample per receive antenna, averaged over the fading "
        f"(docs/channels.md); the receiver measured {_db(m.get('mean'))} on average over the seeds' draws, "
        f"and estimates the average SNR over the fading at {_ci(r.get('measured_avg_snr_db'), ' dB', '')} "
        "(measured minus each draw's gain in its pilot estimate)",
        f"- wall time {r['seconds']:.1f} s",
        "",
        "| train seed | channel seed | OTA (%) | digital (%) | gap (points) | measured SNR | draw vs average "
        "| draw gain (pilot estimate) | measured average SNR |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    gaps = r["gap_points"]["per_seed"] or [None] * n
    for i in range(n):
        d = acc["digital"][i]
        g = gaps[i]
        off = m["draw_offset_db"][i]
        dg = (r.get("draw_gain_db") or [None] * n)[i]
        avg = ((r.get("measured_avg_snr_db") or {}).get("per_seed") or [None] * n)[i]
        lines.append(
            f"| {r['seeds'][i]} | {r['channel_seeds'][i]} | {acc['ota'][i]:.2f} | "
            f"{'-' if d is None else f'{d:.2f}'} | {'-' if g is None else f'{g:+.2f}'} | "
            f"{_db(m['per_seed'][i])} | {'n/a' if off is None else f'{off:+.2f} dB'} | "
            f"{'n/a' if dg is None else f'{dg:+.2f} dB'} | {_db(avg)} |"
        )
    lines += ["", f"OTA accuracy: {_ci(r.get('accuracy_ota'), ' %', '')}.", ""]
    if r.get("accuracy_digital"):
        lines += [f"Digital accuracy: {_ci(r['accuracy_digital'], ' %', '')}.", ""]
    lines += [f"Gap OTA - digital: {_ci(r['gap_points'], ' points')}.", ""]
    lines += [
        "Why a seed's measured SNR differs from the configured one: the noise is set from the SNR averaged "
        "over the fading, so each channel draw's power gain moves that draw's SNR (the 'draw vs average' "
        "column; a 2x2 Rayleigh draw spreads by a few dB). The receiver measures Es/N0 per symbol after "
        f"its matched filter, 10 log10(sps) = {'n/a' if gain is None else f'{gain:.2f}'} dB above the "
        "per-sample SNR; the table has that subtracted, and the mean is taken in linear power. The receiver "
        "never sees the true channel, but its pilot estimate H_hat carries the draw's gain: "
        "||H_hat||_F^2 / (n_rx n_tx) relative to the fading model's average (1), in dB, is the 'draw gain' "
        "column, and the measured SNR minus it estimates the average SNR over the fading, the configured "
        "quantity.",
        "",
    ]
    for key, pts in (r.get("sweeps") or {}).items():
        if not pts:
            continue
        lines += ["", f"## accuracy vs {key} ({pts[0].get('transport')}, {pts[0].get('epochs')} epochs per point, "
                  f"train seed {r['seeds'][0]}, SNR per sample per receive antenna averaged over the fading)", "",
                  f"| {key} | gradient mode | accuracy (%) |", "|---|---|---|"]
        for p in sorted(pts, key=lambda p: (p.get("gradient_mode", ""), p[key])):
            lines.append(f"| {p[key]} | {p.get('gradient_mode', '')} | {p['accuracy']:.2f} |")
    lines += [""] + [f"![{p}]({p})" for p in r.get("plots", [])] + [""]
    return "\n".join(lines)
