"""``hil train``, ``hil demo``, ``hil run``: over-the-air split training, in one process or on node processes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hil.cli._common import JobProgress, app, command, console, fail, interrupted


def _train_hook(prog: JobProgress):
    """The hook hil.train.run calls after every step: a bar over the batches, a line per epoch."""

    def hook(tag: str, epoch: int, epochs: int, step: int, steps: int) -> None:
        prog.step(tag, (epoch - 1) * steps + step, epochs * steps, detail=f"epoch {epoch}/{epochs}",
                  line=step == steps)

    return hook


def _run_training(cfg, out: Path, seeds: int = 1, workers: int = 2, sweeps: bool = False, single: bool = False,
                  log_dir: Optional[Path] = None, cluster: str = "none") -> dict:
    """Run ``seeds`` seeds (a report over seeds), or with ``single`` one run in ``out`` itself."""
    from hil.train.run import run_experiment
    from hil.cluster.seeds import ray_runner
    from hil.train.seeds import run_seeds

    from hil.errors import CheckpointError, ConfigError, NodeError

    prog = JobProgress("train")
    hook = _train_hook(prog)

    def fmt(v, spec: str, unit: str = "") -> str:
        return "-" if v is None else f"{v:{spec}}{unit}"

    def done(rep: dict) -> None:
        console.print(f"seed {rep['seed']} (channel {rep['channel_seed']}): over the air ({rep['transport']}, "
                      f"{rep['gradient_mode']}, {rep['snr_db']} dB configured) "
                      f"{fmt(rep['accuracy']['ota'], '.2f', '%')}  digital {fmt(rep['accuracy']['digital'], '.2f', '%')}"
                      f"  measured SNR {fmt(rep.get('measured_snr_db'), '.2f', ' dB')}")

    try:
        with prog:
            if single:  # one seed: the single-run folder (checkpoints/, report.json with numbers)
                report = run_experiment(cfg, out, progress=hook, sweeps=sweeps, log_dir=log_dir)
            else:
                report = run_seeds(cfg, out, seeds, workers=workers, sweeps=sweeps, progress=hook, on_seed=done,
                                   runner=None if cluster == "none" else ray_runner(cluster))
    except (ConfigError, CheckpointError) as e:
        fail(e, 2)
    except NodeError as e:
        fail(e)
    except KeyboardInterrupt:
        where = f"{out}/checkpoints" if single else f"{out}/seed-*/checkpoints"
        interrupted(f"finished epochs are checkpointed in {where}; run the same command again to resume")
    if single:
        done(report)
        console.print(f"frames: {report['frames']} (+{report.get('calibration_frames', 0)} calibration)  "
                      f"epochs: {report['epochs']}  ({report['seconds']:.1f} s)")
        console.print(f"report: {out / 'report.md'}")
        return report
    g = report["gap_points"]
    ci = "" if g.get("ci95") is None else f" [{g['ci95'][0]:+.2f}, {g['ci95'][1]:+.2f}] (95 %, {g['n']} seeds)"
    console.print(
        f"over the air ({report['transport']}, {report['gradient_mode']}, {report['snr_db']} dB configured, "
        f"{fmt(report['measured_snr_db']['mean'], '.2f', ' dB')} measured): mean "
        f"{fmt(report['accuracy_ota']['mean'], '.2f', '%')}  gap to digital: {fmt(g.get('mean'), '+.2f')} points{ci}  "
        f"epochs: {report['epochs']}  ({report['seconds']:.1f} s)"
    )
    console.print(f"report: {out / 'report.md'}")
    return report


@command(app, "train")
def train_cmd(
    config: str = typer.Option(..., "--config", "-c", help="Training config (TOML), or a packaged name: "
                               "digits_mlp, digits_cnn, demo (hil/train/configs/)."),
    out: Path = typer.Option(Path("runs/train"), "--out", "-o", help="Report folder; a rerun with the same "
                             "folder resumes from its checkpoints."),
    transport: Optional[str] = typer.Option(None, "--transport", "--radio",
                                            help="Override \\[ota] transport: ideal, loopback, zmq, pluto "
                                            "(--radio is an alias: --radio pluto --uri ip:192.168.2.1)."),
    uri: Optional[str] = typer.Option(None, "--uri", help="Override \\[ota] uri: the libiio URI of the Pluto "
                                      "(ip:192.168.2.1, usb:1.2.5, ip:127.0.0.1:PORT for `hil emu pluto`)."),
    gradient_mode: Optional[str] = typer.Option(None, help="Override \\[ota] gradient_mode: reciprocity, estimated, exact."),
    snr_db: Optional[float] = typer.Option(None, help="Override \\[ota] snr_db."),
    epochs: Optional[int] = typer.Option(None, help="Override \\[train] epochs."),
    channel: Optional[str] = typer.Option(None, "--channel", help="Override the channel of a loopback/zmq "
                                          "link (\\[ota] channel): replay:DIR[?opts] plays a recording of "
                                          "`hil capture --out DIR` (docs/capture.md), or a JSON object of "
                                          "hil.channel keys."),
    hold_channel: Optional[bool] = typer.Option(None, "--hold-channel/--no-hold-channel", help="Override "
                                                "\\[ota] hold_channel: the receiver maps every burst onto its "
                                                "first channel estimate (for drifting channels, docs/ota.md)."),
    seeds: int = typer.Option(1, "--seeds", min=1, help="Seeds to run: seed k trains with \\[train] seed + k over "
                              "\\[ota] channel_seed + k, each in --out/seed-K; the report gives each, the mean and "
                              "the 95 % interval of the OTA-digital gap (1: one run in --out itself)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Seeds trained at once (one process each)."),
    cluster: str = typer.Option("none", "--cluster", help="With --seeds: none (this machine's processes, "
                                "--workers), local (a private Ray instance on 127.0.0.1) or a Ray address: one "
                                "Ray task per seed (docs/cluster.md)."),
    sweeps: bool = typer.Option(False, "--sweeps", help="Also run the \\[sweep] points (accuracy vs SNR, rho, "
                                "channel uses) over the same transport; off by default."),
    log_dir: Optional[Path] = typer.Option(None, "--log-dir", help="Write TensorBoard event files here (loss, "
                                           "accuracies, measured SNR, CFO, gradient cosine, frames, step time); "
                                           "view with: tensorboard --logdir DIR. Needs the log extra."),
) -> None:
    """Train a split model with an over-the-air layer beside its digital baseline and write a report.

    Datasets: scikit-learn digits (offline) or MNIST / Fashion-MNIST / CIFAR-10 from a local folder
    (the path key of the data section). Checkpoints after every epoch; Ctrl-C or a crash loses no finished epoch (rerun the
    command to resume). Writes report.json, report.md, plots and the resolved config into --out.
    """
    from hil.errors import ConfigError
    from hil.train.config import load_config, validate

    try:
        cfg = load_config(config)
        ota = {k: v for k, v in (("transport", transport), ("uri", uri), ("gradient_mode", gradient_mode),
                                 ("snr_db", snr_db), ("channel", channel), ("hold_channel", hold_channel))
               if v is not None}
        cfg = validate(cfg.replace(ota=ota, train={"epochs": epochs} if epochs else {}))
    except ConfigError as e:
        fail(e, 2)
    if log_dir is not None and seeds != 1:
        fail("--log-dir logs one run; use it with --seeds 1 (each seed's curves would overlap)", 2)
    _run_training(cfg, out, seeds=seeds, workers=workers, sweeps=sweeps, single=seeds == 1, log_dir=log_dir,
                  cluster=cluster)


@command(app, "run")
def run_cmd(
    config: Optional[str] = typer.Option(None, "--config", "-c", help="Training config (TOML) or a packaged name (digits_mlp); or give --from-nas."),
    from_nas: Optional[Path] = typer.Option(None, "--from-nas", help="Deploy a JMSNAS front point instead: the folder of hil nas --bench (front.json); every split of the point on its node (docs/placement.md)."),
    point: int = typer.Option(0, "--point", help="With --from-nas: the front point (0 = lowest predicted latency)."),
    accuracy: Optional[float] = typer.Option(None, "--accuracy", help="With --from-nas: validation accuracy (percent) to train to; default the front's \\[nas] accuracy."),
    cluster: str = typer.Option("local", "--cluster", help="local (a private Ray instance on 127.0.0.1, one "
                                "process per node), none (everything in this process) or the address of a "
                                "running Ray cluster whose hosts advertise hil_node:<name>."),
    out: Path = typer.Option(Path("runs/run"), "--out", "-o", help="Report folder; a rerun resumes from its manifest."),
    microbatches: int = typer.Option(1, "--microbatches", help="Micro-batches per batch (pipelined across nodes)."),
    transport: Optional[str] = typer.Option(None, "--transport", help="Override \\[ota] transport: ideal, loopback, zmq, pluto."),
    epochs: Optional[int] = typer.Option(None, help="Override \\[train] epochs."),
    bench: Optional[Path] = typer.Option(None, "--bench", "-b", help="Bench topology (TOML, as hil/split/examples/bench.toml): the placement engine places the model's layers on its nodes, one process per node. Default: the two nodes edge and server."),
    infer: bool = typer.Option(False, "--infer", help="No training: deploy (with the run folder's checkpoints, if any) and time inference requests per stage and per link beside the plan's predicted latency."),
) -> None:
    """Train the split model with each bench node as its own process, or time inference through it (docs/cluster.md).

    Without --bench the nodes are edge (input layers and precoder) and server (over-the-air hop, combiner, output layers). With --bench the placement engine assigns the layers to the bench's nodes: the layers before the cut on the source node, the combiner on the receiver of its over-the-air link, the rest where the cost model puts them.

    Over --transport zmq each node opens its own end of the over-the-air link on the channel server (started here unless [ota] endpoint names a running one): the transmitting node sends the precoded symbols from its own radio half, the receiving node is armed first and decodes them; the reciprocity echo goes the other way. Other transports keep the link in the receiving node.

    With --from-nas DIR --point K: deploy front point K of hil nas --bench on the bench's nodes, train it to the accuracy requirement, and write a report comparing the front's predicted latency and accuracy with the measured ones.
    """
    from hil.cluster.run import run_split
    from hil.errors import ConfigError, HilError
    from hil.train.config import load_config, validate

    if (config is None) == (from_nas is None):
        fail("run: give exactly one of --config FILE or --from-nas DIR", 2)
    if from_nas is not None:
        _deploy_nas(from_nas, point, accuracy, cluster, out, epochs)
        return

    try:
        cfg = load_config(config)
        cfg = validate(cfg.replace(ota={"transport": transport} if transport else {},
                                   train={"epochs": epochs} if epochs else {}))
        if bench is not None and not bench.is_file():
            raise ConfigError(f"--bench {bench}: no such file; give a bench topology such as "
                              "hil/split/examples/bench.toml")
    except ConfigError as e:
        fail(e, 2)
    try:
        with JobProgress("run") as prog:
            report = run_split(cfg, out, cluster=cluster, microbatches=microbatches, progress=prog.note,
                               bench=bench, infer=infer)
    except (HilError, ValueError) as e:
        fail(e)
    acc = report["accuracy"]
    dig = "-" if acc["digital"] is None else f"{acc['digital']:.2f}%"
    console.print(f"split: [bold]{acc['split']:.2f}%[/]  digital: [bold]{dig}[/]  steps: {report['steps']}  "
                  f"({report['seconds']:.1f} s)")
    lat, pred = report["latency"]["measured_s"]["request"], report["latency"]["predicted_s"]
    console.print(f"inference request: median {lat['median'] * 1e3:.3g} ms, p95 {lat['p95'] * 1e3:.3g} ms"
                  + (f"; predicted {pred['request'] * 1e3:.3g} ms" if pred else ""))
    console.print(f"report: {out / 'report.md'}")


def _deploy_nas(folder: Path, point: int, accuracy: Optional[float], cluster: str, out: Path,
                epochs: Optional[int]) -> None:
    """``hil run --from-nas``: deploy a front point (hil.cluster.nas) and print predicted against measured."""
    from hil.cluster.nas import deploy_point
    from hil.errors import ConfigError, HilError
    from hil.split.nasbench import load_front_point

    if accuracy is not None and not 0 < accuracy <= 100:
        fail(f"run: --accuracy {accuracy}: give a percentage in (0, 100]", 2)
    try:
        fp = load_front_point(folder, point)
    except ConfigError as e:
        fail(e, 2)
    try:
        with JobProgress("run") as prog:
            rep = deploy_point(fp, out, cluster=cluster, accuracy=None if accuracy is None else accuracy / 100,
                               max_epochs=epochs, progress=prog.note)
    except (HilError, ValueError) as e:
        fail(e)
    a, lat = rep["accuracy"], rep["latency"]
    console.print(f"point {point} ({rep['key']}): validation accuracy {a['validation'] * 100:.2f}% (predicted "
                  f"{a['predicted'] * 100:.2f}%, requirement {a['requirement'] * 100:.1f}%: "
                  f"{'reached' if a['reached'] else 'not reached'}), test {a['test'] * 100:.2f}%; latency "
                  f"{lat['measured_s']['median'] * 1e3:.3f} ms measured vs {lat['predicted_s'] * 1e3:.3f} ms predicted")
    band = lat["host_model_error"]
    console.print(f"with this host's measured layer, hop and call costs: {lat['host_predicted_s'] * 1e3:.3f} ms predicted, "
                  f"measured / predicted {lat['measured_over_host_predicted']:.3g}"
                  + (f" ({'within' if lat['within_host_model_error'] else 'OUTSIDE'} the stated error "
                     f"[{band[0]:g}, {band[1]:g}])" if band else ""))
    console.print(f"report: {out / 'report.md'}")


@command(app, "demo")
def demo_cmd(
    quick: bool = typer.Option(False, "--quick", help="A short run (< 30 s): fewer epochs, small sweeps."),
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Report folder (resumes if it holds checkpoints)."),
    transport: str = typer.Option("zmq", help="zmq (starts the channel server itself), loopback or ideal."),
    gradient_mode: str = typer.Option("reciprocity", help="reciprocity, estimated (or exact with --transport ideal)."),
    snr_db: float = typer.Option(10.0, help="SNR per receive antenna and sample, averaged over the fading, dB."),
    seeds: Optional[int] = typer.Option(None, "--seeds", min=1, help="Seeds (train seed and channel draw both "
                                        "vary); default 5, with --quick 2."),
    workers: int = typer.Option(2, "--workers", min=1, help="Seeds trained at once (one process each)."),
    sweeps: bool = typer.Option(False, "--sweeps", help="Also run the accuracy vs SNR / rho / channel-use "
                                "sweeps over the same transport."),
) -> None:
    """The main job: digits with one over-the-air layer over a 2x2 quasi-static channel at 10 dB.

    Starts the ZMQ channel server as a child process (python -m sim_fallback), trains through the full
    PHY (the receiver never sees the true channel) with reciprocity gradients beside the digital
    baseline, and writes the report folder.
    """
    from hil.train.config import load_config, validate
    from hil.train.demo import check_transport, demo_config, demo_seeds

    try:
        check_transport(transport)
    except ValueError as e:
        fail(e, 2)
    cfg = validate(demo_config(load_config("demo"), quick=quick, transport=transport, gradient_mode=gradient_mode,
                               snr_db=snr_db))
    _run_training(cfg, out, seeds=seeds or demo_seeds(quick), workers=workers, sweeps=sweeps)
