"""What every sub-command shares: the Typer app, the console, and the one error-to-exit-code helper.

[Note: errors and exit codes]
A user sees one line per error, ``error: what, where, how to fix`` on stderr, and a traceback only
with ``hil --verbose``. Every command is wrapped by :func:`guarded`, so an exception that a command
does not handle itself still ends as that one line. Exit codes:

- 0: done; 1: the command ran and found a problem it reports (an invalid recording, a board that
  differs from its profile), or an unexpected error (a bug: rerun with ``--verbose``);
- 2: bad input: a config file, a command-line value, a checkpoint, a profile that does not fit the board
  (:class:`hil.errors.ConfigError`, ``ValueError``);
- 3: a radio, link, capture or node failed (any other :class:`hil.errors.HilError`);
- 130: interrupted (Ctrl-C); what was finished is kept and the same command resumes.

[Note: progress]
Every long job (training and its sweeps, the demo, BAIM, JMSNAS, PHY benchmark, capture) reports its
progress through one :class:`JobProgress`, always on stderr: stdout keeps the results (and ``--json``).
``hil --progress auto`` (the default; or the environment variable ``HIL_PROGRESS``) draws live bars
when stderr is a terminal and otherwise (a CI log, a pipe, a file) writes one plain line per step
(an epoch, a generation, an SNR point, a capture LO step), never one per batch or frame; ``bar``,
``lines`` and ``off`` force one of the three.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
import traceback
from typing import Any, Callable, NoReturn

import click
import typer
from rich.console import Console

from hil.errors import ConfigError, HilError

app = typer.Typer(
    help="Hardware-in-the-loop testbed for over-the-air split deep learning through MIMO radios. "
    "Errors are one line on stderr (a traceback with --verbose); exit codes: 0 done, 1 a problem found "
    "or an unexpected error, 2 bad input or configuration, 3 a radio, link or node failed, 130 interrupted.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

EXIT_PROBLEM = 1
EXIT_BAD_INPUT = 2
EXIT_FAILED = 3
EXIT_INTERRUPTED = 130

PROGRESS_MODES = ("auto", "bar", "lines", "off")
_state: dict[str, Any] = {"verbose": False, "progress": "auto"}


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug logging and the traceback "
                                       "of an error."),
          progress: str = typer.Option("auto", "--progress", envvar="HIL_PROGRESS", help="Progress of long jobs, "
                                       "on stderr: auto (bars on a terminal, one line per step otherwise), bar, "
                                       "lines or off.")) -> None:
    if progress not in PROGRESS_MODES:
        raise typer.BadParameter(f"--progress {progress!r}: use one of {', '.join(PROGRESS_MODES)}")
    _state["verbose"] = verbose
    _state["progress"] = progress
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )


class JobProgress:
    """The progress of one long job on stderr (see [Note: progress]); use it as a context manager.

    ``step(what, done, total, detail)`` advances the bar of ``what`` (one bar per distinct ``what``)
    and, in line mode, writes ``job: what detail (elapsed)`` (``what done/total`` without a detail); a call with ``line=False`` (a batch
    inside an epoch, a frame inside an LO step) only moves the bar. ``note(msg)`` is a phase line
    (``job: msg``) in both modes. Safe to call from another thread.
    """

    def __init__(self, job: str, mode: str | None = None) -> None:
        mode = mode or _state["progress"]
        if mode == "auto":
            mode = "bar" if err_console.is_terminal else "lines"
        self.job, self.mode = job, mode
        self._t0 = time.perf_counter()
        self._bars: dict[str, Any] = {}
        self._live = None
        if mode == "bar":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._live = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=err_console)

    def __enter__(self) -> "JobProgress":
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.stop()

    def _line(self, text: str) -> None:
        err_console.print(f"{self.job}: {text} ({time.perf_counter() - self._t0:.0f} s)", markup=False,
                          highlight=False, soft_wrap=True)

    def step(self, what: str, done: int, total: int | None = None, detail: str = "", line: bool = True) -> None:
        """``done`` of ``total`` steps of ``what`` are finished; ``detail`` says about the last one."""
        if self.mode == "off":
            return
        if self._live is not None:
            desc = f"{self.job} {what}" + (f" {detail}" if detail else "")
            if what not in self._bars:
                self._bars[what] = self._live.add_task(desc, total=total)
            self._live.update(self._bars[what], completed=done, total=total, description=desc)
        elif line:
            self._line(f"{what} {detail}" if detail else f"{what} {done}/{total if total is not None else '?'}")

    def note(self, msg: str) -> None:
        """A phase of the job begins (or a message about it): one line in every mode but ``off``."""
        if self.mode == "off":
            return
        if self._live is not None:
            self._live.console.print(f"{self.job}: {msg}", markup=False, highlight=False, soft_wrap=True)
        else:
            self._line(msg)


def exit_code(e: BaseException) -> int:
    """The exit code of an error (see [Note: errors and exit codes])."""
    if isinstance(e, (ConfigError, ValueError)):
        return EXIT_BAD_INPUT
    if isinstance(e, HilError):
        return EXIT_FAILED
    return EXIT_PROBLEM


def fail(what: BaseException | str, code: int | None = None) -> NoReturn:
    """Print ``error: ...`` (one line, no markup) on stderr and exit with ``code`` (default: by the error)."""
    if isinstance(what, BaseException) and _state["verbose"]:
        traceback.print_exception(what)
    msg = " ".join(str(what).split()) if isinstance(what, BaseException) else str(what)
    err_console.print(f"error: {msg}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(exit_code(what) if code is None and isinstance(what, BaseException)
                     else (EXIT_BAD_INPUT if code is None else code))


def interrupted(what_is_kept: str) -> NoReturn:
    """Ctrl-C: say what was kept and how to resume; exit 130."""
    err_console.print(f"interrupted: {what_is_kept}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_INTERRUPTED)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command so that anything it does not handle ends as one ``error:`` line and its exit code."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, click.exceptions.ClickException, click.exceptions.Abort, click.exceptions.Exit):
            raise
        except KeyboardInterrupt:
            interrupted("stopped before finishing; rerun the same command to resume where it can")
        except (HilError, ValueError) as e:
            fail(e)
        except Exception as e:  # noqa: BLE001 - the last line of defence: one line, the traceback on request
            if _state["verbose"]:
                traceback.print_exception(e)
            fail(f"unexpected {type(e).__name__}: {' '.join(str(e).split())} (a bug: rerun with --verbose for "
                 "the traceback and report it)", EXIT_PROBLEM)

    return run


def command(target: typer.Typer, name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``@command(app, "name")``: register a guarded command on ``target``."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if "help" not in kwargs and fn.__doc__:
            kwargs["help"] = reflow(fn.__doc__)
        return target.command(name, **kwargs)(guarded(fn))

    return register


def reflow(doc: str) -> str:
    """A docstring as ``--help`` text: each plain paragraph on one line (the terminal wraps it; Typer's
    rich mode would keep the source's line breaks and give ragged lines), list items and indented
    blocks as written."""
    out = []
    for para in inspect.cleandoc(doc).split("\n\n"):
        lines = para.split("\n")
        if any(ln.startswith((" ", "-", "*", "|")) or ln[:2].rstrip(".").isdigit() for ln in lines):
            out.append(para)
        else:
            out.append(" ".join(ln.strip() for ln in lines))
    return "\n\n".join(out)


def main() -> None:
    """The console script ``hil``."""
    app()
