"""Every ``hil`` command and sub-command answers ``--help`` with a description and its options."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from hil.cli import app


def _commands(group, path: tuple[str, ...] = ()):
    yield path, group
    for name, sub in (getattr(group, "commands", None) or {}).items():
        yield from _commands(sub, path + (name,))


def test_every_command_has_help_with_a_description():
    root = typer.main.get_command(app)
    runner = CliRunner()
    seen = []
    for path, cmd in _commands(root):
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, (path, res.output)
        assert (cmd.help or "").strip(), f"hil {' '.join(path)} has no description"
        assert "--help" in res.output and "Usage" in res.output, (path, res.output)
        # a plain paragraph is one line of help (the terminal wraps it): no source line breaks inside
        for para in (cmd.help or "").split("\n\n"):
            lines = para.split("\n")
            if not any(ln.startswith((" ", "-", "*", "|")) or ln[:1].isdigit() for ln in lines):
                assert len(lines) == 1, (path, para)
        seen.append(" ".join(path))
    assert {"train", "run", "demo", "place", "nas", "baim", "sim serve", "emu pluto", "pluto check"} <= set(seen)
