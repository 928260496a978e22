"""``hil place`` and ``hil nas``: split-DNN placement and JMSNAS."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hil.cli._common import JobProgress, app, command, console, fail


@command(app, "place")
def place_cmd(
    topology: Path = typer.Option(..., "--topology", "-t", help="Topology: JSON (the format of docs/placement.md) or the bench TOML (arrays of tables nodes and links)."),
    profile: Optional[Path] = typer.Option(None, "--profile", "-p", help="Profile JSON: layers with flops, out_bytes, params_bytes, deps; input_bytes."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Trace a built-in model with torch.fx instead: vgg16, resnet18, digits_cnn."),
    solver: str = typer.Option("auto", "--solver", help="auto | dp (chains, N nodes) | mincut (DAG, 2 nodes) | milp (DAG, N nodes, memory) | brute (tiny)."),
    objective: str = typer.Option("latency", "--objective", help="latency (s) or energy (J)."),
    pin: list[str] = typer.Option([], "--pin", help="LAYER=NODE: keep a layer on a node (repeatable)."),
    no_memory: bool = typer.Option(False, "--no-memory", help="Ignore the nodes' mem_bytes limits."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan report as JSON on stdout (no table)."),
    measure: bool = typer.Option(False, "--measure", help="With --model: also time each layer on this machine (used on nodes with use_measured = true)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder (report.json, report.md, plan.png, config); default runs/place-<time>."),
) -> None:
    """Place a model's layers on the nodes of a topology and compare with the baselines.

    Minimises end-to-end latency (compute + transfers; see hil/split/plan.py) or energy, with the
    exact solver for the problem's shape, and reports all-on-source, all-on-fastest, Neurosurgeon's
    best single cut and DADS's min cut beside the plan with their ratios to it.
    """
    import json
    import time as _time

    from hil.errors import HilError
    from hil.split.plan import Problem
    from hil.split.profile import Profile
    from hil.split.report import write_place_report
    from hil.split.solvers import place
    from hil.split.topology import Topology

    if (profile is None) == (model is None):
        raise typer.BadParameter("give exactly one of --profile P.json or --model NAME")
    try:
        topo = Topology.load(topology)
        if profile is not None:
            prof = Profile.load(profile)
        else:
            from hil.split.trace import profile_model
            from hil.split.zoo import build

            m, shape = build(model)
            prof, _ = profile_model(m, shape, measure=measure, name=model)
        pins = {}
        for item in pin:
            if "=" not in item:
                raise typer.BadParameter(f"--pin {item!r}: write LAYER=NODE")
            k, v = item.split("=", 1)
            pins[k] = v
        problem = Problem(prof, topo, objective, pins, respect_memory=not no_memory)
        rep = place(problem, solver)
    except (HilError, ValueError, KeyError, OSError) as e:
        fail(f"place failed: {e}", 2)
    if as_json:
        typer.echo(json.dumps(rep.to_dict(), indent=1))
    folder = out or Path("runs") / f"place-{_time.strftime('%Y%m%d-%H%M%S')}"
    write_place_report(folder, problem, rep, {"topology": str(topology), "profile": str(profile), "model": model,
                                              "solver": solver, "objective": objective, "pins": pins,
                                              "respect_memory": not no_memory})
    if as_json:
        return
    from rich.table import Table

    p = rep.plan
    t = Table(title=f"{prof.name or 'model'}: {len(prof)} layers over {len(topo.nodes)} nodes ({objective})")
    for col in ("plan", "latency ms", "compute ms", "comm ms", "energy J", "transfers", "baseline/ours", "memory ok"):
        t.add_column(col, overflow="fold")
    t.add_row(f"{p.solver} (ours)", f"{p.latency_s*1e3:.4g}", f"{p.compute_s*1e3:.4g}", f"{p.comm_s*1e3:.4g}",
              f"{p.energy_j:.4g}", str(p.cuts), "1", str(p.feasible))
    for k, b in rep.baselines.items():
        t.add_row(k, f"{b.latency_s*1e3:.4g}", f"{b.compute_s*1e3:.4g}", f"{b.comm_s*1e3:.4g}", f"{b.energy_j:.4g}",
                  str(b.cuts), f"{rep.ratios[k]:.3f}", str(b.feasible))
    console.print(t)
    console.print(f"report: {folder}")


@command(app, "nas")
def nas_cmd(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="JMSNAS config (TOML or JSON): topology path, search space, training, population, generations, betas, alpha, beta, seed, cache_dir, out_dir, accuracy, deploy_epochs (default: the packaged settings)."),
    bench: Optional[Path] = typer.Option(None, "--bench", help="Search on this bench topology (TOML: nodes with their compute, links with their rate; a radio link is over the air), in place of the config's topology; writes front.json for hil run --from-nas."),
    probe: list[Path] = typer.Option([], "--probe", help="With --bench: a hil sim probe report folder (or its report.json); the probed link's measured SNR and sample rate replace the configured ones (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder; default the config's out_dir or runs/nas-<time>."),
) -> None:
    """JMSNAS: search architectures and their multi-split placement together (arXiv 2111.08206).

    Candidates on 8x8 digits are scored by a short, cached training (error) and by the placement solver (latency on the topology); writes the Pareto front, the chosen model with its plan, and the comparison with "search first, split after" and "fixed model, best split". With --bench the search runs on the bench's nodes and links and also writes front.json (each point's architecture, splits, predicted latency and accuracy); progress per generation goes to stderr. Deploy a point with: hil run --from-nas DIR --point K.
    """
    import time as _time

    from hil.errors import HilError
    from hil.split.nas import NASConfig, candidate_problem, load_nas_file, run_jmsnas
    from hil.split.report import write_nas_report

    if config is None and bench is None:
        fail("nas: give --config FILE, --bench FILE or both (the bench replaces the config's topology)", 2)
    if probe and bench is None:
        fail("nas: --probe applies to a bench; add --bench FILE", 2)
    try:
        nas_file = load_nas_file(config) if config is not None else None
        cfg = nas_file.config if nas_file else NASConfig()
        if bench is not None:
            from hil.split.nasbench import load_bench_topology

            bt = load_bench_topology(bench, probe)
            topo, topo_path = bt.topology, str(bench)
        else:
            topo, topo_path = nas_file.topology, nas_file.topology_path
    except HilError as e:
        fail(f"nas: bad config: {e}", 2)

    import torch

    torch.set_num_threads(1)
    with JobProgress("nas") as prog:  # a line per generation, on stderr
        res = run_jmsnas(cfg, topo, progress=prog.note)
    default = nas_file.out_dir if nas_file and nas_file.out_dir else Path("runs") / f"nas-{_time.strftime('%Y%m%d-%H%M%S')}"
    folder = Path(out or default)
    write_nas_report(folder, cfg, topo_path, res, candidate_problem(cfg, topo, res.chosen.arch))
    if bench is not None:
        from hil.split.nasbench import write_front

        write_front(folder, cfg, topo_path, bt, res.front, chosen=res.chosen.arch.key(), trained=res.trained,
                    wall_s=res.wall_s)
    c = res.chosen
    console.print(f"chosen {c.arch.key()}: validation error {c.error*100:.1f} %, test error "
                  f"{res.test_error['chosen']*100:.1f} %, latency {c.latency_s*1e3:.3f} ms; "
                  f"front of {len(res.front)}; JMSNAS dominates search-first: {res.comparison['dominates']}")
    if bench is not None:
        console.print(f"front: {folder / 'front.json'} (deploy a point: hil run --from-nas {folder} --point K)")
    console.print(f"report: {folder}")
