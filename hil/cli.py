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


# ---------------------------------------------------------------- bench: PHY benchmark (issue 3)
bench_app = typer.Typer(help="Benchmarks of the PHY and the links.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


# ---------------------------------------------------------------- train, demo (issue 4)


# ---------------------------------------------------------------- emu, pluto (issue 5)
emu_app = typer.Typer(help="Emulated radios: the virtual Pluto (libiio network protocol).", no_args_is_help=True)
app.add_typer(emu_app, name="emu")
pluto_app = typer.Typer(help="ADALM-Pluto / AD9361 boards through pyadi-iio.", no_args_is_help=True)
app.add_typer(pluto_app, name="pluto")


# ---------------------------------------------------------------- capture (issue 6)


# ---------------------------------------------------------------- place, nas (issue 7)


# ---------------------------------------------------------------- baim (issue 8)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
