"""``hil baim`` and ``hil baim-maintain``: the cloud-edge big model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hil.cli._common import JobProgress, app, command, console, fail, interrupted


@command(app, "baim")
def baim_cmd(
    config: Optional[Path] = typer.Option(
        None, "--config", help="BAIM TOML config (keys in a 'baim' table); default: the packaged default.toml."
    ),
    out: Path = typer.Option(Path("runs/baim"), "--out", help="Output folder for report.json, report.md, plots."),
    quick: bool = typer.Option(False, "--quick", help="Shrink the run to seconds (4 nodes, few epochs) for smoke tests."),
    resume: bool = typer.Option(True, "--resume/--no-resume",
                                help="Skip cloud strategies already completed in --out's checkpoint.pt (same config)."),
    cluster: Optional[str] = typer.Option(
        None, "--cluster", help="Run the edges and the cloud as node actors: none (the same actors in this process), "
        "local (a private Ray instance on 127.0.0.1, one process per node) or the address of a Ray cluster whose hosts "
        "advertise hil_node:node0.. and hil_node:cloud. Default: the single-process run."),
) -> None:
    """Cloud-edge big-model synergy (BAIM, arXiv 2401.01666) on 8x8 digits.

    Edge VAEs on non-IID shards, assembled in the cloud (task squads, hierarchical gate, pruned projections).

    Strategies fine-tune / freeze / scratch against federated averaging; measured bytes and FLOPs.

    Per-task models are deployed and checked to reproduce the big model exactly (see docs/baim.md).

    With --cluster each edge learner trains in its node's actor, uploads and deployments go through Ray
    with bytes and seconds measured, and the numbers equal the single-process run's (docs/baim.md, "On a cluster").

    Writes report.json, report.md, config.toml and PNG plots to --out. After each strategy a checkpoint is
    saved; Ctrl-C exits with code 130 and the same command resumes after the last completed strategy.
    """
    import torch

    from hil.baim.config import QUICK_OVERRIDES, load_baim_config
    from hil.baim.experiment import CHECKPOINT, completed_strategies, run_baim
    from hil.errors import CheckpointError, ConfigError, HilError

    try:
        cfg = load_baim_config(config, **(QUICK_OVERRIDES if quick else {}))
    except ConfigError as e:
        fail(e, 2)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    try:
        with JobProgress("baim") as prog:  # a line per phase, edge learner, epoch and round, on stderr
            if cluster is None:
                report = run_baim(cfg, out, progress=prog.note, resume=resume)
            else:
                from hil.cluster.baim import run_baim_on

                report = run_baim_on(cfg, out, cluster, progress=prog.note, resume=resume)
    except CheckpointError as e:
        fail(e, 2)
    except HilError as e:
        fail(e)
    except KeyboardInterrupt:
        done = completed_strategies(out)
        interrupted(f"completed strategies {done or 'none'} are saved in {Path(out) / CHECKPOINT}; run the same "
                    "command again to resume after them")
    ms = report["must_show"]
    console.print(f"per-task models exact: {ms['per_task_exact']}; FedAvg/BAIM upload ratios: "
                  + ", ".join(f"{k} {v:.1f}x" for k, v in ms["fedavg_upload_ratio"].items()))
    for k, v in report["strategies"].items():
        console.print(f"  {k:10s} final FD {v['final_fd']:.2f}  up {v['upload_bytes']} B  down {v['download_bytes']} B")
    links = report["nodes"].get("strategies", {})
    for k, v in links.items():
        up, down = v["links"]["up"], v["links"]["down"]
        console.print(f"  {k:10s} over Ray: up {up['bytes']} B in {up['seconds']:.4f} s, down {down['bytes']} B in "
                      f"{down['seconds']:.4f} s (measured at the receivers)")
    console.print(f"report: {Path(out) / 'report.md'}")


@command(app, "baim-maintain")
def baim_maintain_cmd(
    config: Optional[Path] = typer.Option(
        None, "--config", help="TOML with a 'baim' and a 'maintain' table; default: the packaged maintain.toml."),
    out: Path = typer.Option(Path("runs/baim_maintain"), "--out", help="Output folder for report.json, report.md."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Comma-separated seeds, e.g. 0,1,2 (overrides the config's maintain.seeds)."),
    cluster: Optional[str] = typer.Option(
        None, "--cluster", help="Run the edge nodes as node actors: none (the same actors in this process), local "
        "(a private Ray instance on 127.0.0.1, one process per edge) or the address of a Ray cluster whose hosts "
        "advertise hil_node:node0... Each edge trains its learner and fine-tunes its deployed per-task model on its "
        "own new data inside its actor; this process is the cloud. Default: everything in this process."),
) -> None:
    """The big model after deployment: local fine-tuning, continual learning (replay vs none vs retrain),
    few-shot (k per class) and pruning, each over seeds with 95 % intervals (see docs/baim.md).

    With --cluster the edge learners are trained, uploaded (bytes and seconds measured) and the deployed
    per-task models fine-tuned on the edge nodes; the numbers equal the in-process run's (docs/baim.md,
    "On a cluster")."""
    import torch

    from hil.baim.maintain import load_maintain_config, run_maintenance
    from hil.errors import HilError

    try:
        try:
            over = {"seeds": [int(s) for s in seeds.split(",")]} if seeds else {}
        except ValueError as e:
            raise ValueError(f"--seeds {seeds!r}: give comma-separated integers, e.g. 0,1,2") from e
        cfg, mcfg = load_maintain_config(config, **over)
    except (HilError, ValueError) as e:
        fail(e, 2)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    try:
        with JobProgress("baim-maintain") as prog:
            if cluster is None:
                run_maintenance(cfg, mcfg, out, progress=prog.note)
            else:
                from hil.cluster.baim import run_maintenance_on

                run_maintenance_on(cfg, mcfg, out, cluster, progress=prog.note)
    except (HilError, ValueError) as e:
        fail(e)
    console.print(f"report: {Path(out) / 'report.md'}")
