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
        radios = ", ".join(f"{x['transport']} {x['n_tx']}x{x['n_rx']}"
                           + (f" {x['half']} half of {x['wiring']}" if x.get("half", "both") != "both" else "")
                           + f" ({x['gradient_mode']})" for x in n["radios"]) or "-"
        lines.append(f"| {n['name']} | {n['host']} | {n['pid']} | {(n['ray_node_id'] or '-')[:12]} | {radios} | "
                     f"{', '.join(n['layers'])} |")
    acc = r["accuracy"]
    lat = r["latency"]["measured_s"]["request"]
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
        *_latency_lines(r),
        "busy time per node and call: "
        + "; ".join(f"{k}: " + ", ".join(f"{m} {v:.2f} s" for m, v in d.items()) for k, d in r["latency"]["busy_s"].items()),
        "",
    ]
    return "\n".join(lines)


def _latency_lines(r: dict) -> list[str]:
    """The plan's stages, and per stage and per link the predicted beside the measured latency."""
    plan, lat = r["plan"], r["latency"]
    pred, meas = lat.get("predicted_s"), lat["measured_s"]
    out = ["stages: " + " -> ".join(f"{n} [{', '.join(u)}]" for n, u in plan.get("stages", {}).items())
           + (f" (placed by the {plan['solver']} solver on {plan['bench']})" if plan.get("bench") else ""), ""]
    if "stages" not in meas:
        return out
    out += ["| per request | predicted | measured median | measured p95 |", "|---|---|---|---|"]
    req = meas["request"]
    out.append(f"| whole request | {_s(pred and pred['request'], ' ms', 1e3, '.3g')} | "
               f"{_s(req['median'], ' ms', 1e3, '.3g')} | {_s(req['p95'], ' ms', 1e3, '.3g')} |")
    for kind in ("stages", "links"):
        for k, st in meas[kind].items():
            p = (pred or {}).get(kind, {}).get(k)
            out.append(f"| {kind[:-1]} {k} | {_s(p, ' ms', 1e3, '.3g')} | {_s(st['median'], ' ms', 1e3, '.3g')} | "
                       f"{_s(st['p95'], ' ms', 1e3, '.3g')} |")
    return out + [""]


def write_cluster_report(out: Path, report: dict, deployment=None) -> None:
    """Write ``report.json`` and ``report.md`` into ``out`` atomically, and ``plan.png`` when the deployment
    was placed (:func:`hil.split.plot.plot_plan`, as ``hil place`` draws it)."""
    atomic_write_json(Path(out) / "report.json", report)
    atomic_write_text(Path(out) / "report.md", markdown(report))
    if deployment is not None and deployment.plan is not None:
        from hil.split.plot import plot_plan

        plot_plan(deployment.problem, deployment.plan, Path(out) / "plan.png", "hil run: the deployed plan")
