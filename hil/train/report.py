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
    sweeps = report.get("sweeps", {})
    dig = report["accuracy"].get("digital")
    labels = {"snr_db": ("accuracy vs SNR", False), "rho": ("accuracy vs Gauss-Markov rho", True), "channel_uses": ("accuracy vs channel uses", False)}
    for key, pts in sweeps.items():
        if pts:
            title, logx = labels.get(key, (key, False))
            title += f" ({pts[0].get('transport', '?')}, {pts[0].get('epochs', '?')} epochs)"
            plot_sweep(pts, key, out / f"accuracy_vs_{key}.png", title, dig, logx)
            pngs.append(f"accuracy_vs_{key}.png")
    report["plots"] = pngs
    write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", _markdown(report))
    return pngs


def _markdown(r: dict) -> str:
    acc = r["accuracy"]
    lines = [
        f"# Over-the-air split training: {r['dataset']} / {r['model']}",
        "",
        f"- transport: **{r['transport']}**, gradient mode: **{r['gradient_mode']}**, "
        f"{r['n_tx']}x{r['n_rx']} antennas, {r['channel_uses']} channel uses per vector",
        f"- configured SNR {r['snr_db']} dB (measured by the receiver: {_db(r.get('measured_snr_db'))}), rho {r['rho']}",
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
        lines += ["", f"## accuracy vs {key} ({pts[0].get('transport')}, {pts[0].get('epochs')} epochs per point)", "", f"| {key} | gradient mode | accuracy (%) |", "|---|---|---|"]
        for p in sorted(pts, key=lambda p: (p.get("gradient_mode", ""), p[key])):
            lines.append(f"| {p[key]} | {p.get('gradient_mode', '')} | {p['accuracy']:.2f} |")
    lines += [""] + [f"![{p}]({p})" for p in r.get("plots", [])] + [""]
    return "\n".join(lines)
