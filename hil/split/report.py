"""Report folders for ``hil place`` and ``hil nas``: report.json, report.md, plots, resolved config."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hil.split.nas import NASConfig, NASResult
from hil.split.plan import Problem
from hil.split.plot import plot_fronts, plot_plan
from hil.split.solvers import PlacementReport


def _table(rows: list[list[Any]], head: list[str]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def place_markdown(problem: Problem, rep: PlacementReport) -> str:
    p = rep.plan
    unit = "s" if problem.objective == "latency" else "J"
    rows = [[p.solver + " (ours)", f"{p.objective_value:.6g} {unit}", f"{p.latency_s*1e3:.4g}",
             f"{p.compute_s*1e3:.4g}", f"{p.comm_s*1e3:.4g}", p.cuts, "1", p.feasible]]
    for k, b in rep.baselines.items():
        rows.append([k, f"{b.objective_value:.6g} {unit}", f"{b.latency_s*1e3:.4g}", f"{b.compute_s*1e3:.4g}",
                     f"{b.comm_s*1e3:.4g}", b.cuts, f"{rep.ratios[k]:.3f}", b.feasible])
    tr = [[t.layer, t.src, t.dst, " - ".join(t.route) or "direct", f"{t.nbytes:.6g}", f"{t.time_s*1e3:.4g}"]
          for t in p.transfers]
    per_node: dict[str, int] = {}
    for n in p.assignment.values():
        per_node[n] = per_node.get(n, 0) + 1
    return "\n\n".join([
        f"# Placement of {problem.profile.name or 'model'} ({len(problem.profile)} layers) "
        f"over {len(problem.topology.nodes)} nodes",
        f"Objective: {problem.objective}; solver {p.solver} ({'optimal' if p.optimal else 'not proven optimal'}) "
        f"in {p.solve_time_s*1e3:.3g} ms. Layers per node: {per_node}.",
        _table(rows, ["plan", "objective", "latency ms", "compute ms", "comm ms", "transfers", "baseline/ours",
                      "memory ok"]),
        "## Transfers of our plan",
        _table(tr, ["value", "from", "to", "route", "bytes", "ms"]) if tr else "(none: the model runs on one node)",
        "![plan](plan.png)",
    ]) + "\n"


def write_place_report(out: Path, problem: Problem, rep: PlacementReport, config: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(rep.to_dict(), indent=1))
    (out / "report.md").write_text(place_markdown(problem, rep))
    (out / "config.json").write_text(json.dumps(config, indent=1, default=str))
    problem.profile.save(out / "profile.json")
    problem.topology.save(out / "topology.json")
    plot_plan(problem, rep.plan, out / "plan.png")
    return out


def _pct(e: float | None) -> str:
    return "n/a" if e is None else f"{e*100:.1f} %"


def nas_markdown(res: NASResult) -> str:
    front = [[c.arch.key(), f"{c.error*100:.1f}", f"{c.latency_s*1e3:.3f}", f"{c.flops/1e6:.3g}", c.plan.cuts]
             for c in res.front]
    first = [[c.arch.key(), f"{c.error*100:.1f}", f"{c.latency_s*1e3:.3f}", f"{c.flops/1e6:.3g}", c.plan.cuts]
             for c in res.search_first_front]
    comp = res.comparison
    budgets = [[f"{b*1e3:.3f}", f"{x*100:.1f}", f"{y*100:.1f}"]
               for b, x, y in zip(comp["budgets_s"], comp["error_a"], comp["error_b"])]
    ch, fx = res.chosen, res.fixed
    return "\n\n".join([
        "# JMSNAS",
        f"Evaluated {len(res.jmsnas)} architectures (JMSNAS) and {len(res.search_first)} (search first, "
        f"split after); {res.trained} trainings (others from the cache); {res.wall_s:.1f} s.",
        "Errors below are validation errors (what the search selected on); the test images were used "
        "once, after the search, for the chosen model and the fixed reference.",
        f"Chosen: {ch.arch.key()}: validation error {ch.error*100:.1f} %, test error "
        f"{_pct(res.test_error.get('chosen'))}, latency {ch.latency_s*1e3:.3f} ms, plan {dict(ch.plan.assignment)}",
        f"Fixed model, best split ({fx.arch.key()}): validation error {fx.error*100:.1f} %, test error "
        f"{_pct(res.test_error.get('fixed'))}, latency {fx.latency_s*1e3:.3f} ms; "
        f"JMSNAS's best error at that latency: {comp['fixed_model']['jmsnas_best_error_at_its_latency']*100:.1f} %.",
        "## JMSNAS Pareto front", _table(front, ["arch", "validation error %", "latency ms", "MFLOP", "transfers"]),
        "## Search first, split after: Pareto front",
        _table(first, ["arch", "validation error %", "latency ms", "MFLOP", "transfers"]),
        f"## Best error under a latency budget (middle of the range); JMSNAS dominates: {comp['dominates']}",
        _table(budgets, ["budget ms", "JMSNAS validation error %", "search-first validation error %"]),
        "![pareto](pareto.png)\n\n![chosen plan](chosen_plan.png)",
    ]) + "\n"


def write_nas_report(out: Path, config: NASConfig, topology_path: str, res: NASResult, problem_of_chosen: Problem) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(res.to_dict(), indent=1))
    (out / "report.md").write_text(nas_markdown(res))
    (out / "config.json").write_text(json.dumps({"nas": asdict(config), "topology": topology_path}, indent=1))
    plot_fronts({"JMSNAS": res.front, "search first, split after": res.search_first_front},
                {"JMSNAS": res.jmsnas, "search first": res.search_first}, out / "pareto.png",
                marks={"fixed model, best split": (res.fixed.latency_s, res.fixed.error),
                       "chosen": (res.chosen.latency_s, res.chosen.error)},
                title="JMSNAS vs search first, split after")
    plot_plan(problem_of_chosen, res.chosen.plan, out / "chosen_plan.png")
    return out
