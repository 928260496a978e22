"""The ``hil`` command. Thin: parses arguments, calls the parts, shows results with rich.

Each part owns one section below; heavy imports (torch, zmq, adi) happen inside the commands so
``hil --help`` stays fast and works where optional libraries are absent.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(
    help="Hardware-in-the-loop testbed for over-the-air split deep learning through MIMO radios.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug logging.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )


# ---------------------------------------------------------------- sim: channel server, probe (issue 2)
sim_app = typer.Typer(help="The simulated ZMQ MIMO channel server and its probe.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")


@sim_app.command("serve")
def sim_serve(
    config: Path = typer.Option(..., "--config", "-c", help="Topology file (TOML or JSON): nodes, links with "
                                "channel specs, server settings. Example: sim_fallback/configs/edge_server.toml"),
    endpoints_file: Optional[Path] = typer.Option(None, "--endpoints-file", help="Also write the bound endpoints "
                                                  "(JSON) to this file."),
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR (to stderr)."),
    port_base: Optional[int] = typer.Option(None, "--port-base", metavar="P", min=0, max=65535,
                                            help="Every default endpoint at tcp://host:P, P+1, ...: control, "
                                            "events, then per node per antenna tx and rx (topology order). "
                                            "Overrides [server] port_base."),
) -> None:
    """Run the ZMQ MIMO channel server until Ctrl-C (same as `python -m sim_fallback --config FILE`).

    Every antenna of every node gets a tx and an rx stream of raw cf32 (GNU Radio zeromq format) on its
    own endpoint (ephemeral 127.0.0.1 ports unless fixed in the file or --port-base is given); JSON
    metadata on the control socket. Prints one JSON line with all endpoints to stdout when ready and
    a table of them to stderr. See docs/zmq.md.
    """
    import sys

    from hil.errors import ConfigError
    from sim_fallback.__main__ import fast_exit, run

    logging.getLogger().setLevel(log_level.upper())
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr)
    try:
        rc = run(config, endpoints_file, port_base=port_base)
    except ConfigError as e:
        console.print(f"[red]config error[/]: {e}")
        raise typer.Exit(2) from e
    fast_exit(rc)  # the server is closed and the logs flushed; skip the interpreter teardown


@sim_app.command("probe")
def sim_probe(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Start a server on this topology for the "
                                          "probe (stopped afterwards)."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", "-e", help="Control endpoint of a running server "
                                           "(printed by `hil sim serve`), e.g. tcp://127.0.0.1:40000."),
    tx: Optional[str] = typer.Option(None, "--tx", help="Transmitting node (default: the first link's a)."),
    rx: Optional[str] = typer.Option(None, "--rx", help="Receiving node (default: the first link's b)."),
    bursts: int = typer.Option(3, "--bursts", "-n", help="Sounding bursts to send."),
    seed: int = typer.Option(0, "--seed", help="Seed of the probe frames' random payload."),
    out: Path = typer.Option(Path("runs/probe"), "--out", "-o", help="Report folder (report.json, report.md, "
                             "probe.png, server_info.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of tables."),
) -> None:
    """Sound a link of the channel server: prints the measured SNR, delay, CFO and channel matrix.

    Sends project-PHY frames (hil.phy.PhyLink, long pilot block and quiet interval) from --tx to --rx
    and reports what the PHY receiver measured: frame timing (delay), CFO (searched over +-120 kHz),
    the least-squares channel matrix and the SNR per sample per receive antenna (PHY channel estimate
    and per-antenna noise power). Without --config and --endpoint it starts the default 2x2 topology
    (sim_fallback/configs/edge_server.toml). The first thing to run.
    """
    import json

    from hil.errors import ConfigError, HilError
    from sim_fallback.probe import run_probe

    try:
        rep = run_probe(config=str(config) if config else None, endpoint=endpoint, tx_node=tx, rx_node=rx,
                        bursts=bursts, seed=seed, out=str(out))
    except (HilError, ValueError) as e:
        console.print(f"[red]{'config error' if isinstance(e, ConfigError) else 'probe failed'}[/]: {e}")
        raise typer.Exit(2) from e
    if as_json:
        print(json.dumps(rep, indent=1))
        return
    from rich.table import Table

    t = Table(title=f"channel probe {rep['tx']} -> {rep['rx']} ({rep['sample_rate_hz'] / 1e6:g} Msps)")
    for col in ("burst", "delay (samples)", "CFO (Hz)", "SNR per rx antenna (dB)"):
        t.add_column(col)
    for i, b in enumerate(rep["bursts"]):
        delay = str(b["start_sample"]) + (f" (true {b['true_start_sample']})" if "true_start_sample" in b else "")
        t.add_row(str(i), delay, f"{b['cfo_hz']:.1f}", ", ".join(f"{v:.2f}" for v in b["snr_db"]))
    console.print(t)
    ch = rep["bursts"][-1]["channel"]
    console.print("channel matrix H (rows: rx antennas, columns: tx antennas), last burst:")
    for re_row, im_row in zip(ch["re"], ch["im"]):
        console.print("  " + "  ".join(f"{a:+.3f}{b:+.3f}j" for a, b in zip(re_row, im_row)))
    console.print(f"mean SNR {rep['mean_snr_db']:.2f} dB, mean CFO {rep['mean_cfo_hz']:.1f} Hz; report: {out}/report.md")


# ---------------------------------------------------------------- bench: PHY benchmark (issue 3)
bench_app = typer.Typer(help="Benchmarks of the PHY and the links.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("phy")
def bench_phy(
    json_out: bool = typer.Option(False, "--json", help="Print the full report as JSON on stdout."),
    quick: bool = typer.Option(False, "--quick", help="Short version (40 trials per point, 100 noise captures)."),
    trials: Optional[int] = typer.Option(None, "--trials", help="Impaired trials per SNR point (default 500)."),
    noise: Optional[int] = typer.Option(None, "--noise", help="Noise-only captures for the false-alarm rate (default 4000)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the one numpy Generator."),
    snr_reference: str = typer.Option(
        "rx", "--snr-reference", help="rx: SNR of each received burst; tx: SNR averaged over the fading."
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default runs/bench_phy_<time>)."),
) -> None:
    """Measure the PHY (flat 2x2 mode) over 2x2 Rayleigh with CFO +-100 kHz at 1 MS/s, fractional delay
    and phase noise.

    For SNR in {-5, 0, 5, 10, 20, 30} dB: detection probability, timing error, CFO RMSE, LS and LMMSE
    channel-estimate NMSE beside the LS theory, payload EVM beside its prediction; plus the
    false-alarm rate on noise-only captures. Writes report.json, report.md, config.json and PNG plots
    into the run folder. The default run takes a few minutes; --quick about 20 s.
    """
    import json as _json
    import time as _time

    from hil.phy.bench import markdown_table, run_phy_bench, write_report

    if snr_reference not in ("rx", "tx"):
        raise typer.BadParameter(f"--snr-reference {snr_reference!r}: use rx or tx")
    out = out or Path("runs") / f"bench_phy_{_time.strftime('%Y%m%d_%H%M%S')}"
    say = (lambda m: None) if json_out else (lambda m: console.print(f"[dim]{m}[/dim]"))
    report = run_phy_bench(quick=quick, seed=seed, n_trials=trials, n_noise=noise,
                           snr_reference=snr_reference, progress=say)
    write_report(report, out)
    full = _json.loads((out / "report.json").read_text())
    if json_out:
        print(_json.dumps(full, indent=2))
    else:
        console.print(markdown_table(full))
        console.print(f"Report written to {out}")


# ---------------------------------------------------------------- train, demo (issue 4)
def _train_progress():
    """A rich progress display and the hook hil.train.run calls after every step."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)
    tasks: dict = {}

    def hook(tag: str, epoch: int, epochs: int, step: int, steps: int) -> None:
        if tag not in tasks:
            tasks[tag] = prog.add_task(tag, total=epochs * steps)
        prog.update(tasks[tag], completed=(epoch - 1) * steps + step, description=f"{tag} epoch {epoch}/{epochs}")

    return prog, hook


def _run_training(cfg, out: Path, seeds: int = 1, workers: int = 2, sweeps: bool = False, single: bool = False) -> dict:
    """Run ``seeds`` seeds (a report over seeds), or with ``single`` one run in ``out`` itself."""
    from hil.train.run import run_experiment
    from hil.train.seeds import run_seeds

    from hil.errors import ConfigError

    prog, hook = _train_progress()

    def fmt(v, spec: str, unit: str = "") -> str:
        return "-" if v is None else f"{v:{spec}}{unit}"

    def done(rep: dict) -> None:
        console.print(f"seed {rep['seed']} (channel {rep['channel_seed']}): over the air "
                      f"{fmt(rep['accuracy']['ota'], '.2f', '%')}  digital {fmt(rep['accuracy']['digital'], '.2f', '%')}"
                      f"  measured SNR {fmt(rep.get('measured_snr_db'), '.2f', ' dB')}")

    try:
        with prog:
            if single:  # one seed: the single-run folder (checkpoints/, report.json with numbers)
                report = run_experiment(cfg, out, progress=hook, sweeps=sweeps)
            else:
                report = run_seeds(cfg, out, seeds, workers=workers, sweeps=sweeps, progress=hook, on_seed=done)
    except ConfigError as e:
        console.print(f"[red]error[/]: {e}")
        raise typer.Exit(2)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]: finished epochs are checkpointed in {out}/seed-*/checkpoints; "
                      "run the same command again to resume")
        raise typer.Exit(130)
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


@app.command("train")
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
    gradient_mode: Optional[str] = typer.Option(None, help="Override [ota] gradient_mode: reciprocity, estimated, exact."),
    snr_db: Optional[float] = typer.Option(None, help="Override [ota] snr_db."),
    epochs: Optional[int] = typer.Option(None, help="Override [train] epochs."),
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
    sweeps: bool = typer.Option(False, "--sweeps", help="Also run the \\[sweep] points (accuracy vs SNR, rho, "
                                "channel uses) over the same transport; off by default."),
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
    except (ConfigError, TypeError) as e:
        console.print(f"[red]config error[/]: {e}")
        raise typer.Exit(2)
    _run_training(cfg, out, seeds=seeds, workers=workers, sweeps=sweeps, single=seeds == 1)


@app.command("run")
def run_cmd(
    config: str = typer.Option(..., "--config", "-c", help="Training config (TOML) or a packaged name (digits_mlp)."),
    cluster: str = typer.Option("local", "--cluster", help="local (a private Ray instance on 127.0.0.1, one "
                                "process per node), none (everything in this process) or the address of a "
                                "running Ray cluster whose hosts advertise hil_node:<name>."),
    out: Path = typer.Option(Path("runs/run"), "--out", "-o", help="Report folder; a rerun resumes from its manifest."),
    microbatches: int = typer.Option(1, "--microbatches", help="Micro-batches per batch (pipelined across nodes)."),
    transport: Optional[str] = typer.Option(None, "--transport", help="Override \\[ota] transport: ideal, loopback, zmq, pluto."),
    epochs: Optional[int] = typer.Option(None, help="Override [train] epochs."),
) -> None:
    """Train the split model with each bench node (edge, server) as its own process (docs/cluster.md)."""
    from hil.cluster.run import run_split
    from hil.errors import ConfigError, HilError
    from hil.train.config import load_config, validate

    try:
        cfg = load_config(config)
        cfg = validate(cfg.replace(ota={"transport": transport} if transport else {},
                                   train={"epochs": epochs} if epochs else {}))
    except (ConfigError, TypeError) as e:
        console.print(f"[red]config error[/]: {e}")
        raise typer.Exit(2)
    try:
        report = run_split(cfg, out, cluster=cluster, microbatches=microbatches,
                           progress=lambda msg: console.print(f"[cyan]run[/] {msg}"))
    except (HilError, ValueError) as e:
        console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    acc = report["accuracy"]
    dig = "-" if acc["digital"] is None else f"{acc['digital']:.2f}%"
    console.print(f"split: [bold]{acc['split']:.2f}%[/]  digital: [bold]{dig}[/]  steps: {report['steps']}  "
                  f"({report['seconds']:.1f} s)")
    console.print(f"report: {out / 'report.md'}")


@app.command("demo")
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
    baseline, and writes the report folder. Falls back to --transport loopback, then ideal, with a
    warning when the server or the PHY is not available.
    """
    from hil.train.config import load_config, validate
    from hil.train.demo import demo_config, demo_seeds, resolve_transport

    cfg = load_config("demo")
    got, why = resolve_transport(transport)
    if got != transport:
        console.print(f"[yellow]warning[/]: transport {transport!r} unavailable ({why}); using {got!r}")
    cfg = validate(demo_config(cfg, quick=quick, transport=got, gradient_mode=gradient_mode, snr_db=snr_db))
    _run_training(cfg, out, seeds=seeds or demo_seeds(quick), workers=workers, sweeps=sweeps)




# ---------------------------------------------------------------- emu, pluto
emu_app = typer.Typer(help="Emulated radios: the virtual Pluto (libiio network protocol).", no_args_is_help=True)
app.add_typer(emu_app, name="emu")
pluto_app = typer.Typer(help="ADALM-Pluto / AD9361 boards through pyadi-iio.", no_args_is_help=True)
app.add_typer(pluto_app, name="pluto")


@emu_app.command("pluto")
def emu_pluto(
    port: int = typer.Option(30431, "--port", help="TCP port of the virtual Pluto (0: pick a free one)."),
    mode: str = typer.Option("1r1t", "--mode", help="1r1t (stock Pluto) or 2r2t (rev C/D, two channels)."),
    channel: Optional[Path] = typer.Option(
        None, "--channel", help="TOML/JSON: path_loss_db, seed and a channel table for hil.channel.build_channel."
    ),
    peer_port: Optional[int] = typer.Option(
        None, "--peer-port", help="Serve a second board on this port: a two-node bench (A.tx->B.rx, B.tx->A.rx)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address."),
    model: Optional[str] = typer.Option(
        None, "--model", help="Board: pluto, pluto-2r2t (AD9363), fmcomms2, fmcomms3 (AD9361); overrides --mode."
    ),
    snr_db: Optional[float] = typer.Option(
        None, "--snr-db", help="SNR per RX antenna (signal averaged over fading) instead of the thermal noise floor."
    ),
    realtime: bool = typer.Option(False, "--realtime", help="RX accrues in wall time; a slow reader overflows."),
    clean: bool = typer.Option(False, "--clean", help="Ideal receiver: no noise floor, DC offset or LO leakage."),
) -> None:
    """Run a virtual Pluto speaking libiio v0.24's network protocol until Ctrl-C.

    Real tools and pyadi-iio talk to it: `iio_info -u ip:127.0.0.1:PORT`, `adi.Pluto("ip:127.0.0.1:PORT")`.
    TX DMA goes through the channel model to RX DMA (one board: TX cabled to its own RX through
    path_loss_db). Prints one 'listening on URI' line per board.
    """
    from sim_fallback.pluto.serve import run

    try:
        run([port] + ([peer_port] if peer_port is not None else []), mode, str(channel) if channel else None, host,
            model, snr_db, realtime, clean)
    except ValueError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from e


@pluto_app.command("check")
def pluto_check(
    uri: str = typer.Option(..., "--uri", help="libiio URI of the board, e.g. ip:192.168.2.1 or usb:1.2.5."),
    profile: str = typer.Option("pluto_1r1t", "--profile", help="Profile name in firmware_configs/ or a TOML path."),
) -> None:
    """Read a board and say what differs from a profile (mode, LOs, rate, bandwidths, gains).

    Never writes to the board or its firmware; see firmware_configs/README.md for the fw_setenv steps.
    Exits 1 when something differs, 2 when the board cannot be read.
    """
    from hil.errors import HilError
    from hil.radio.pluto import check_board

    try:
        diffs = check_board(uri, profile)
    except (HilError, ValueError) as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from e
    if not diffs:
        console.print(f"[green]{uri} matches profile {profile}[/green]")
        return
    from rich.table import Table

    t = Table(title=f"{uri} vs profile {profile}")
    for col in ("setting", "profile", "board"):
        t.add_column(col)
    for row in diffs:
        t.add_row(*row)
    console.print(t)
    raise typer.Exit(1)


# ---------------------------------------------------------------- capture (issue 6)
capture_app = typer.Typer(
    help="Sound the channel over a sweep and record it as SigMF: hil capture --radio zmq|pluto --uri URI "
    "--sweep FILE --out DIR. Writes one recording per (tx gain, rx gain) pair (NAME.sigmf-meta/-data with a "
    "capture segment per LO step and an annotation per frame, NAME.hil-channel.npy with the channel "
    "estimates), config.json, report.json, report.md and plots. Ctrl-C stops after the current frame, keeps "
    "every recording valid and exits 130. Inspect a recording: hil capture inspect DIR. See docs/capture.md.",
)
app.add_typer(capture_app, name="capture")


@capture_app.callback(invoke_without_command=True)
def capture_cmd(
    ctx: typer.Context,
    radio: Optional[str] = typer.Option(None, "--radio", help="Radio backend: zmq (channel server) or pluto."),
    uri: Optional[str] = typer.Option(
        None, "--uri", help="zmq: the server's control endpoint (tcp://127.0.0.1:PORT); pluto: the libiio URI."
    ),
    sweep: Optional[Path] = typer.Option(None, "--sweep", help="Sweep file (TOML/JSON): LOs, gains, frames."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (new): recordings and report."),
    tx_node: Optional[str] = typer.Option(None, "--tx-node", help="zmq: transmitting node (default: first node)."),
    rx_node: Optional[str] = typer.Option(None, "--rx-node", help="zmq: receiving node (default: its first peer)."),
    profile: str = typer.Option("pluto_1r1t", "--profile", help="pluto: device profile name or TOML path."),
    rx_uri: Optional[str] = typer.Option(None, "--rx-uri", help="pluto: a second board that receives."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generator (PHY sounder payloads)."),
) -> None:
    """Sound the channel over a sweep (LO steps x gains x frames) and record it as SigMF.

    Writes, in --out DIR: one recording per (tx gain, rx gain) pair (NAME.sigmf-meta, NAME.sigmf-data
    with a capture segment per LO step and an annotation per frame, NAME.hil-channel.npy with the
    channel estimates), config.json, report.json, report.md and plots. Ctrl-C stops after the current
    frame and keeps every finished recording valid; the exit code is then 130.
    """
    if ctx.invoked_subcommand is not None:
        return
    missing = [n for n, v in (("--radio", radio), ("--uri", uri), ("--sweep", sweep), ("--out", out)) if v is None]
    if missing:
        console.print(f"[red]hil capture needs {', '.join(missing)}[/red] (or: hil capture inspect DIR); see --help")
        raise typer.Exit(2)
    import numpy as np
    from rich.progress import Progress

    from hil.capture.report import fmt_value
    from hil.capture.run import open_radio, run_capture
    from hil.capture.sweep import SweepConfig
    from hil.errors import HilError

    try:
        sw = SweepConfig.from_file(sweep)
        rad, info, hw = open_radio(radio, uri, tx_node=tx_node, rx_node=rx_node, profile=profile, rx_uri=rx_uri)
    except (HilError, ValueError) as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from e
    try:
        with rad, Progress(console=console, transient=True) as prog:
            task = prog.add_task("sounding", total=sw.frames_total)
            res = run_capture(rad, sw, out, rng=np.random.default_rng(seed), hw=hw, radio_info=info,
                              on_frame=lambda done, total, s: prog.update(task, completed=done))
    except (HilError, ValueError) as e:
        console.print(f"[red]capture failed: {e}[/red]\nfinished recordings (valid) are in {out}")
        raise typer.Exit(1) from e
    except KeyboardInterrupt:
        console.print(f"[yellow]aborted by a second signal[/yellow]: the unfinished recording was dropped; "
                      f"finished recordings (valid) are in {out}")
        raise typer.Exit(130)
    console.print(f"{len(res.recordings)} recording(s), {res.frames} frames ({res.missed} missed) in {out} "
                  f"({res.elapsed_s:.1f} s); report: {out / 'report.md'}")
    for r in res.report.get("recordings", []):
        st = r.get("stats")
        if st:
            console.print(f"  {r['name']}: SNR {fmt_value(st['snr']['mean_db'])} dB, rho "
                          f"{fmt_value(st['gauss_markov_rho'])}, K {fmt_value(st['rician_k_db'])} dB, valid={r['valid']}")
    if res.stopped is not None:
        st = res.stopped
        console.print(f"[yellow]stopped by signal at {st.get('recording')}, LO step {st.get('lo_step')}, "
                      f"slot {st.get('slot')}[/yellow]; every recording in {out} is complete and valid")
        raise typer.Exit(130)


@capture_app.command("inspect")
def capture_inspect(
    directory: Path = typer.Argument(..., help="A capture directory (hil capture --out DIR) or one .sigmf-meta."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Where to write the plots and inspect.json (default: DIR/inspect)."),
) -> None:
    """Validate every recording with sigmf's validator, print its statistics and plot it.

    Exit code 1 when a recording is invalid.
    """
    from rich.table import Table

    from hil.capture.report import fmt_value, inspect_directory
    from hil.errors import HilError

    try:
        rep = inspect_directory(directory, plots_dir=plots)
    except (HilError, ValueError) as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from e
    t = Table(title=f"recordings in {directory}")
    for col in ("recording", "valid", "frames", "LO (MHz)", "SNR (dB)", "rho", "K (dB)", "coherence (s)"):
        t.add_column(col)
    for r in rep["recordings"]:
        st = r.get("stats") or {}
        t.add_row(
            r.get("name", r["meta"]), "yes" if r["valid"] else "NO: " + "; ".join(r["problems"]),
            str(r.get("frames", "")), ", ".join(f"{x / 1e6:.3f}" for x in r.get("lo_hz", [])),
            fmt_value(st["snr"]["mean_db"]) if st else "", fmt_value(st.get("gauss_markov_rho")),
            fmt_value(st.get("rician_k_db")),
            "> recording" if st.get("coherence_time_beyond_recording") else fmt_value(st.get("coherence_time_s")),
        )
    console.print(t)
    console.print(f"plots: {rep.get('plots_dir')}")
    if not rep["all_valid"]:
        raise typer.Exit(1)




# ---------------------------------------------------------------- place, nas (issue 7)
@app.command("place")
def place_cmd(
    topology: Path = typer.Option(..., "--topology", "-t", help="Topology: JSON (DESIGN.md format) or the bench TOML (arrays of tables nodes and links)."),
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
        console.print(f"[red]place failed:[/red] {e}")
        raise typer.Exit(2) from e
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
        t.add_column(col)
    t.add_row(f"{p.solver} (ours)", f"{p.latency_s*1e3:.4g}", f"{p.compute_s*1e3:.4g}", f"{p.comm_s*1e3:.4g}",
              f"{p.energy_j:.4g}", str(p.cuts), "1", str(p.feasible))
    for k, b in rep.baselines.items():
        t.add_row(k, f"{b.latency_s*1e3:.4g}", f"{b.compute_s*1e3:.4g}", f"{b.comm_s*1e3:.4g}", f"{b.energy_j:.4g}",
                  str(b.cuts), f"{rep.ratios[k]:.3f}", str(b.feasible))
    console.print(t)
    console.print(f"report: {folder}")


@app.command("nas")
def nas_cmd(
    config: Path = typer.Option(..., "--config", "-c", help="JMSNAS config (TOML or JSON): topology path, search space, training, population, generations, betas, alpha, beta, seed, cache_dir, out_dir."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder; default the config's out_dir or runs/nas-<time>."),
) -> None:
    """JMSNAS: search architectures and their multi-split placement together (arXiv 2111.08206).

    Candidates on 8x8 digits are scored by a short, cached training (error) and by the placement
    solver (latency on the topology); writes the Pareto front, the chosen model with its plan, and
    the comparison with "search first, split after" and "fixed model, best split".
    """
    import json
    import time as _time
    import tomllib

    from hil.errors import HilError
    from hil.split.nas import NASConfig, candidate_problem, run_jmsnas
    from hil.split.report import write_nas_report
    from hil.split.topology import Topology

    try:
        raw = tomllib.loads(config.read_text()) if config.suffix == ".toml" else json.loads(config.read_text())
        raw = raw.get("nas", raw)
        cfg = NASConfig.from_dict(raw)
        topo_path = raw.get("topology")
        if topo_path is None:
            from importlib.resources import files

            topo_path = str(files("hil.split.examples") / "nas_topology.json")
        elif not Path(topo_path).is_absolute():
            topo_path = str((config.parent / topo_path).resolve())
        topo = Topology.load(topo_path)
    except (HilError, ValueError, OSError, tomllib.TOMLDecodeError) as e:
        console.print(f"[red]nas: bad config:[/red] {e}")
        raise typer.Exit(2) from e
    import torch

    torch.set_num_threads(1)
    res = run_jmsnas(cfg, topo, progress=lambda s: console.print(s))
    folder = out or Path(raw.get("out_dir") or Path("runs") / f"nas-{_time.strftime('%Y%m%d-%H%M%S')}")
    write_nas_report(folder, cfg, topo_path, res, candidate_problem(cfg, topo, res.chosen.arch))
    c = res.chosen
    console.print(f"chosen {c.arch.key()}: validation error {c.error*100:.1f} %, test error "
                  f"{res.test_error['chosen']*100:.1f} %, latency {c.latency_s*1e3:.3f} ms; "
                  f"front of {len(res.front)}; JMSNAS dominates search-first: {res.comparison['dominates']}")
    console.print(f"report: {folder}")



# ---------------------------------------------------------------- baim (issue 8)
@app.command("baim")
def baim_cmd(
    config: Optional[Path] = typer.Option(
        None, "--config", help="BAIM TOML config (keys in a 'baim' table); default: the packaged default.toml."
    ),
    out: Path = typer.Option(Path("runs/baim"), "--out", help="Output folder for report.json, report.md, plots."),
    quick: bool = typer.Option(False, "--quick", help="Shrink the run to seconds (4 nodes, few epochs) for smoke tests."),
    resume: bool = typer.Option(True, "--resume/--no-resume",
                                help="Skip cloud strategies already completed in --out's checkpoint.pt (same config)."),
) -> None:
    """Cloud-edge big-model synergy (BAIM, arXiv 2401.01666) on 8x8 digits.

    Edge VAEs on non-IID shards, assembled in the cloud (task squads, hierarchical gate, pruned projections).

    Strategies fine-tune / freeze / scratch against federated averaging; measured bytes and FLOPs.

    Per-task models are deployed and checked to reproduce the big model exactly (see docs/baim.md).

    Writes report.json, report.md, config.toml and PNG plots to --out. After each strategy a checkpoint is
    saved; Ctrl-C exits with code 130 and the same command resumes after the last completed strategy.
    """
    import torch

    from hil.baim.config import QUICK_OVERRIDES, load_config
    from hil.baim.experiment import CHECKPOINT, completed_strategies, run_experiment
    from hil.errors import ConfigError

    from rich.markup import escape

    try:
        cfg = load_config(config, **(QUICK_OVERRIDES if quick else {}))
    except ConfigError as e:
        console.print(f"[red]config error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from e
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    try:
        report = run_experiment(cfg, out, progress=lambda msg: console.print(f"[cyan]baim[/cyan] {msg}"),
                                resume=resume)
    except KeyboardInterrupt:
        done = completed_strategies(out)
        console.print(f"[yellow]interrupted[/yellow]: completed strategies {done or 'none'} are saved in "
                      f"{Path(out) / CHECKPOINT}; run the same command again to resume after them")
        raise typer.Exit(130) from None
    ms = report["must_show"]
    console.print(f"per-task models exact: {ms['per_task_exact']}; FedAvg/BAIM upload ratios: "
                  + ", ".join(f"{k} {v:.1f}x" for k, v in ms["fedavg_upload_ratio"].items()))
    for k, v in report["strategies"].items():
        console.print(f"  {k:10s} final FD {v['final_fd']:.2f}  up {v['upload_bytes']} B  down {v['download_bytes']} B")
    console.print(f"report: {Path(out) / 'report.md'}")



def main() -> None:
    app()


if __name__ == "__main__":
    main()
