"""The report folder of ``hil run``: report.json (all numbers) and report.md."""

from __future__ import annotations

from pathlib import Path

from hil._io import atomic_write_json, atomic_write_text


def _s(v, unit: str = "", scale: float = 1.0, fmt: str = ".2f") -> str:
    return "-" if v is None else f"{v * scale:{fmt}}{unit}"


def markdown(r: dict) -> str:
    """report.md of a cluster run."""
    lines = [
        "# hil run",
        "",
        f"cluster: {r['cluster']['mode']} ({r['cluster']['address'] or 'in process'}); "
        f"{r['steps']} steps in {r['epochs']} epochs, {r['microbatches']} micro-batch(es) per step; "
        f"{r['seconds']:.1f} s",
        "",
        "| node | host | pid | ray node | radios | layers |",
        "|---|---|---|---|---|---|",
    ]
    for n in r["nodes"]:
        radios = ", ".join(f"{x['transport']} {x['n_tx']}x{x['n_rx']} ({x['gradient_mode']})" for x in n["radios"]) or "-"
        lines.append(f"| {n['name']} | {n['host']} | {n['pid']} | {(n['ray_node_id'] or '-')[:12]} | {radios} | "
                     f"{', '.join(n['layers'])} |")
    acc = r["accuracy"]
    lat = r["latency"]["measured_s"]
    st = r["step_seconds"]
    lines += [
        "",
        f"accuracy: split **{_s(acc['split'], '%')}**, digital {_s(acc['digital'], '%')}",
        "",
        f"training step: median {_s(st['median'], ' ms', 1e3)}, p95 {_s(st['p95'], ' ms', 1e3)} ({st['n']} steps)",
        "",
        f"inference request (one test batch through every node): median {_s(lat['median'], ' ms', 1e3)}, "
        f"p95 {_s(lat['p95'], ' ms', 1e3)} ({lat['n']} requests)",
        "",
        "busy time per node and call: "
        + "; ".join(f"{k}: " + ", ".join(f"{m} {v:.2f} s" for m, v in d.items()) for k, d in r["latency"]["busy_s"].items()),
        "",
    ]
    return "\n".join(lines)


def write_cluster_report(out: Path, report: dict) -> None:
    """Write ``report.json`` and ``report.md`` into ``out`` atomically."""
    atomic_write_json(Path(out) / "report.json", report)
    atomic_write_text(Path(out) / "report.md", markdown(report))
