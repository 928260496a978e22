"""``hil capture``: channel sounding sweeps recorded as SigMF, and ``hil capture inspect``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import typer

from hil.cli._common import JobProgress, app, command, console, fail, guarded, interrupted


capture_app = typer.Typer(
    help="Sound the channel over a sweep and record it as SigMF: hil capture --radio zmq|pluto --uri URI "
    "--sweep FILE --out DIR. Writes one recording per (tx gain, rx gain) pair (NAME.sigmf-meta/-data with a "
    "capture segment per LO step and an annotation per frame, NAME.hil-channel.npy with the channel "
    "estimates), config.json, report.json, report.md and plots. Ctrl-C stops after the current frame, keeps "
    "every recording valid and exits 130. Inspect a recording: hil capture inspect DIR. See docs/capture.md.",
)
app.add_typer(capture_app, name="capture")


@capture_app.callback(invoke_without_command=True)
@guarded
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
    profile: Optional[str] = typer.Option(None, "--profile", help="pluto: device profile name or TOML path "
                                          "(default: the one matching the board's mode and model)."),
    rx_uri: Optional[str] = typer.Option(None, "--rx-uri", help="pluto: a second board that receives."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generator (PHY sounder payloads)."),
    layout: str = typer.Option("interleaved", "--layout", help="interleaved: one multi-channel SigMF recording "
                               "per gain pair; per-antenna: also one single-channel recording per antenna in "
                               "DIR/per-antenna/, tied by a .sigmf-collection (for inspectrum and other "
                               "single-stream tools)."),
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
        fail(f"hil capture needs {', '.join(missing)} (or: hil capture inspect DIR); see --help", 2)
    if layout not in ("interleaved", "per-antenna"):
        fail(f"--layout {layout!r}: use interleaved or per-antenna", 2)
    import numpy as np

    from hil.capture.report import fmt_value
    from hil.capture.run import run_capture
    from hil.capture.sweep import CaptureSweep
    from hil.errors import ConfigError, HilError
    from hil.radio.open import RadioSpec, open_radio

    with contextlib.ExitStack() as stack:
        try:
            sw = CaptureSweep.from_file(sweep)
            if radio not in ("zmq", "pluto"):
                raise ValueError(f"--radio must be 'zmq' or 'pluto', got {radio!r}")
            spec = (RadioSpec("zmq", endpoint=uri, tx_node=tx_node, rx_node=rx_node) if radio == "zmq"
                    else RadioSpec("pluto", uri=uri, profile=profile, rx_uri=rx_uri))
            opened = stack.enter_context(open_radio(spec))
        except ConfigError as e:
            fail(e, 2)
        except (HilError, ValueError) as e:
            fail(f"cannot open the {radio} radio at {uri}: {e}", 2 if isinstance(e, ValueError) else 3)
        try:
            with JobProgress("capture") as prog:  # a bar over the frames; a line per LO step
                res = run_capture(opened.radio, sw, out, rng=np.random.default_rng(seed), hw=opened.hw,
                                  radio_info=opened.info,
                                  on_frame=lambda done, total, s: prog.step(
                                      "frames", done, total, line=done % sw.frames_per_step == 0))
        except (HilError, ValueError) as e:
            fail(f"capture failed: {e}; finished recordings (valid) are in {out}", 1)
        except KeyboardInterrupt:
            interrupted(f"by a second signal: the unfinished recording was dropped; finished recordings (valid) "
                        f"are in {out}")
        if layout == "per-antenna":
            from hil.capture.sigmf_io import write_per_antenna

            try:
                colls = [write_per_antenna(p, out / "per-antenna") for p in res.recordings]
            except (HilError, ValueError, OSError) as e:
                fail(f"writing the per-antenna recordings in {out / 'per-antenna'} failed: {e}", 1)
            console.print(f"per-antenna recordings: {len(colls)} collection(s) in {out / 'per-antenna'}")
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


@command(capture_app, "inspect")
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
        fail(e, 2)
    t = Table(title=f"recordings in {directory}")
    for col in ("recording", "valid", "frames", "LO (MHz)", "SNR (dB)", "rho", "K (dB)", "coherence (s)"):
        t.add_column(col, overflow="fold")
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
