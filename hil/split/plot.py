"""Plots of a plan (layers coloured by node, transfers on links) and of a JMSNAS Pareto front."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hil.split.plan import Plan, Problem  # noqa: E402


def plot_plan(problem: Problem, plan: Plan, path: str | Path, title: str = "") -> Path:
    """Bar per layer (height = compute time on its node, colour = node), arrows for transfers."""
    cm = problem.costs()
    a = plan.indices(problem)
    names = problem.topology.names
    t = cm.comp_time[np.arange(cm.L), a] * 1e3
    colors = plt.cm.tab10(np.arange(len(names)) % 10)
    fig, ax = plt.subplots(figsize=(max(6, min(18, 0.18 * cm.L + 4)), 3.8))
    ax.bar(np.arange(cm.L), np.maximum(t, 1e-6), color=colors[a], width=0.85)
    ymax = max(float(t.max()), 1e-3)
    for tr in plan.transfers:
        x = -0.5 if tr.layer == "input" else problem.profile.index(tr.layer) + 0.5
        ax.axvline(x, color="k", lw=0.8, ls="--")
        ax.text(x, ymax * 1.02, f"{tr.src}->{tr.dst}\n{tr.nbytes/1e3:.3g} kB, {tr.time_s*1e3:.3g} ms",
                fontsize=6, rotation=90, va="bottom", ha="center")
    from matplotlib.patches import Patch

    handles = [Patch(color=colors[k], label=n) for k, n in enumerate(names)]
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer (topological order)")
    ax.set_ylabel("compute time on its node [ms]")
    ax.set_ylim(0, ymax * 1.6)
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    ax.set_title(title or f"{plan.solver}: latency {plan.latency_s*1e3:.4g} ms "
                 f"(compute {plan.compute_s*1e3:.4g}, comm {plan.comm_s*1e3:.4g})", fontsize=9)
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def plot_fronts(fronts: dict[str, Sequence], points: dict[str, Sequence], path: str | Path,
                marks: dict[str, tuple[float, float]] | None = None, title: str = "") -> Path:
    """Error vs latency: step lines for fronts (lists of Candidates), dots for all evaluated points."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for k, (label, pts) in enumerate(points.items()):
        ax.scatter([c.latency_s * 1e3 for c in pts], [c.error * 100 for c in pts], s=8, alpha=0.3,
                   color=f"C{k}", label=f"{label} (evaluated)")
    for k, (label, front) in enumerate(fronts.items()):
        xs = [c.latency_s * 1e3 for c in front]
        ys = [c.error * 100 for c in front]
        ax.step(xs, ys, where="post", color=f"C{k}", lw=1.8, label=f"{label} front")
        ax.plot(xs, ys, "o", color=f"C{k}", ms=4)
    for k, (label, (lat, err)) in enumerate((marks or {}).items()):
        ax.plot(lat * 1e3, err * 100, "*", ms=13, color=f"C{k + 3}", label=label)
    ax.set_xscale("log")
    from matplotlib.ticker import FormatStrFormatter

    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("placed latency [ms]")
    ax.set_ylabel("test error [%]")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p
