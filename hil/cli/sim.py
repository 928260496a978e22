"""``hil sim``: the ZMQ channel server (``serve``, handed over to ``python -m sim_fallback``) and its probe."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hil.cli._common import app, command, console, fail


sim_app = typer.Typer(help="The simulated ZMQ MIMO channel server and its probe.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")


@command(sim_app, "serve")
def sim_serve(
    config: Path = typer.Option(..., "--config", "-c", help="Topology file (TOML or JSON): nodes, links with "
                                "channel specs, server settings. Example: sim_fallback/configs/edge_server.toml"),
    endpoints_file: Optional[Path] = typer.Option(None, "--endpoints-file", help="Also write the bound endpoints "
                                                  "(JSON) to this file."),
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR (to stderr)."),
    port_base: Optional[int] = typer.Option(None, "--port-base", metavar="P", min=0, max=65535,
                                            help="Every default endpoint at tcp://host:P, P+1, ...: control, "
                                            "events, then per node per antenna tx and rx (topology order). "
                                            "Overrides \\[server] port_base."),
) -> None:
    """Run the ZMQ MIMO channel server until Ctrl-C (same as `python -m sim_fallback --config FILE`).

    Every antenna of every node gets a tx and an rx stream of raw cf32 (GNU Radio zeromq format) on its
    own endpoint (ephemeral 127.0.0.1 ports unless fixed in the file or --port-base is given); JSON
    metadata on the control socket. Prints one JSON line with all endpoints to stdout when ready and
    a table of them to stderr. See docs/zmq.md.
    """
    import os
    import sys

    # The server is its own process (the library never imports sim_fallback): hand this one over to it, so
    # Ctrl-C and SIGTERM reach the server directly and its exit code is this command's.
    argv = [sys.executable, "-m", "sim_fallback", "--config", str(config), "--log-level", log_level]
    if endpoints_file is not None:
        argv += ["--endpoints-file", str(endpoints_file)]
    if port_base is not None:
        argv += ["--port-base", str(port_base)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


@command(sim_app, "probe")
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
    from hil.capture.probe import run_probe

    try:
        rep = run_probe(config=str(config) if config else None, endpoint=endpoint, tx_node=tx, rx_node=rx,
                        bursts=bursts, seed=seed, out=str(out))
    except ConfigError as e:
        fail(e)
    except (HilError, ValueError) as e:
        fail(f"probe failed: {e}", 2 if isinstance(e, ValueError) else 3)
    if as_json:
        print(json.dumps(rep, indent=1))
        return
    from rich.table import Table

    t = Table(title=f"channel probe {rep['tx']} -> {rep['rx']} ({rep['sample_rate_hz'] / 1e6:g} Msps)")
    for col in ("burst", "delay (samples)", "CFO (Hz)", "SNR per rx antenna (dB)"):
        t.add_column(col, overflow="fold")
    for i, b in enumerate(rep["bursts"]):
        delay = str(b["start_sample"]) + (f" (true {b['true_start_sample']})" if "true_start_sample" in b else "")
        t.add_row(str(i), delay, f"{b['cfo_hz']:.1f}", ", ".join(f"{v:.2f}" for v in b["snr_db"]))
    console.print(t)
    ch = rep["bursts"][-1]["channel"]
    console.print("channel matrix H (rows: rx antennas, columns: tx antennas), last burst:")
    for re_row, im_row in zip(ch["re"], ch["im"]):
        console.print("  " + "  ".join(f"{a:+.3f}{b:+.3f}j" for a, b in zip(re_row, im_row)))
    conf = rep.get("configured_snr_db")
    console.print(f"mean SNR {rep['mean_snr_db']:.2f} dB (configured "
                  f"{'not set' if conf is None else f'{conf:g} dB'}, averaged over the fading), "
                  f"mean CFO {rep['mean_cfo_hz']:.1f} Hz; report: {out}/report.md")
