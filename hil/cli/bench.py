"""``hil bench``: PHY benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hil.cli._common import JobProgress, app, command, console


bench_app = typer.Typer(help="Benchmarks of the PHY and the links.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@command(bench_app, "phy")
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

    from hil.phy.bench import markdown_table, run_phy_bench, write_bench_report

    if snr_reference not in ("rx", "tx"):
        raise typer.BadParameter(f"--snr-reference {snr_reference!r}: use rx or tx")
    out = out or Path("runs") / f"bench_phy_{_time.strftime('%Y%m%d_%H%M%S')}"
    with JobProgress("bench phy") as prog:  # a line per SNR point, on stderr
        report = run_phy_bench(quick=quick, seed=seed, n_trials=trials, n_noise=noise,
                               snr_reference=snr_reference, progress=prog.note)
    write_bench_report(report, out)
    full = _json.loads((out / "report.json").read_text())
    if json_out:
        print(_json.dumps(full, indent=2))
    else:
        console.print(markdown_table(full))
        console.print(f"Report written to {out}")
