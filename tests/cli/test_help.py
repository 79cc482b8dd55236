"""Every command's ``--help`` carries an example of that very command (README: "each has
``--help`` with examples"), and takes the global ``-vv``/``--log-json`` after it: the whole typer
tree is walked, groups included."""

from __future__ import annotations

import re

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from nusec.cli import app


def _paths(command: object, path: tuple[str, ...] = ()) -> list[str]:
    found = [" ".join(path)]
    if isinstance(command, TyperGroup):
        for name, sub in sorted(command.commands.items()):
            found += _paths(sub, (*path, name))
    return found


PATHS = _paths(typer.main.get_command(app))


def test_the_walk_finds_every_command() -> None:
    assert {"", "provision", "serve", "serve template", "ceremony run", "otp build", "sim"} <= set(PATHS)
    assert len(PATHS) > 40


@pytest.mark.parametrize("path", PATHS, ids=[p or "nusec" for p in PATHS])
def test_help_carries_an_example_of_the_command(path: str) -> None:
    result = CliRunner().invoke(app, [*path.split(), "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    text = re.sub(r"\s+", " ", result.output)
    example = text[text.find("Example") :] if "Example" in text else ""
    assert example, f"`nusec {path} --help` has no example"
    assert f"nusec {path}".strip() in example, (
        f"the example of `nusec {path}` does not run it: {example[:200]}"
    )


@pytest.mark.parametrize("path", PATHS, ids=[p or "nusec" for p in PATHS])
def test_global_logging_flags_are_accepted_after_every_command(path: str) -> None:
    result = CliRunner().invoke(app, [*path.split(), "-vv", "--log-json", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "Usage: nusec" in result.output
