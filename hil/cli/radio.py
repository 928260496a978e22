"""``hil emu pluto`` (the virtual Pluto, handed over to ``python -m sim_fallback.pluto``) and ``hil pluto check``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hil.cli._common import app, command, console, fail


emu_app = typer.Typer(help="Emulated radios: the virtual Pluto (libiio network protocol).", no_args_is_help=True)
app.add_typer(emu_app, name="emu")
pluto_app = typer.Typer(help="ADALM-Pluto / AD9361 boards through pyadi-iio.", no_args_is_help=True)
app.add_typer(pluto_app, name="pluto")


@command(emu_app, "pluto")
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
    import os
    import sys

    # The virtual Pluto is its own process (the library never imports sim_fallback): hand over to it.
    argv = [sys.executable, "-m", "sim_fallback.pluto", "--port", str(port), "--mode", mode, "--host", host]
    if peer_port is not None:
        argv += ["--port", str(peer_port)]
    if channel is not None:
        argv += ["--channel", str(channel)]
    if model is not None:
        argv += ["--model", model]
    if snr_db is not None:
        argv += ["--snr-db", repr(float(snr_db))]
    argv += ["--realtime"] * realtime + ["--clean"] * clean
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


@command(pluto_app, "check")
def pluto_check(
    uri: str = typer.Option(..., "--uri", help="libiio URI of the board, e.g. ip:192.168.2.1 or usb:1.2.5."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Profile name in firmware_configs/ or a TOML "
                                          "path; default: the one matching the board's mode and model."),
) -> None:
    """Read a board (model, mode, channels) and say what differs from a profile (mode, LOs, rate, bandwidths, gains).

    Never writes to the board or its firmware; see firmware_configs/README.md for the fw_setenv steps.
    Exits 1 when something differs, 2 when the board cannot be read.
    """
    from hil.errors import ConfigError, HilError
    from hil.radio.pluto import PlutoRadio, check_board, read_board

    try:
        board = read_board(uri)
        console.print(f"{uri}: {board.describe()}")
        diffs = check_board(uri, profile, board=board)
        name = profile or board.profile()
        misfit = board.misfit(PlutoRadio._as_profile(name), name)
    except ConfigError as e:
        fail(e, 2)
    except (HilError, ValueError) as e:
        fail(f"cannot read the board at {uri}: {e}", 2)
    if not diffs:
        console.print(f"[green]{uri} matches profile {name}[/green]")
        return
    from rich.table import Table

    t = Table(title=f"{uri} vs profile {name}")
    for col in ("setting", "profile", "board"):
        t.add_column(col, overflow="fold")
    for row in diffs:
        t.add_row(*row)
    console.print(t)
    if misfit:
        console.print(misfit, overflow="fold")
    raise typer.Exit(1)
