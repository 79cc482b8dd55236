"""One exit-code table for every command (``nusec.exit_codes``): the docs page is rendered from
it, every code a command can exit with is in it, usage errors are 2 everywhere (click's and our
own), and several boards' codes combine to the one that most needs a human."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import typer
from typer._click.core import Command  # typer brings its own click
from typer.core import TyperGroup as Group
from typer.testing import CliRunner

from nusec import exit_codes
from nusec.cli import app
from nusec.exit_codes import most_urgent
from nusec.provision import errors as provision_errors

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "exit-codes.md"


def _leaves(group: Command, path: tuple[str, ...] = ()) -> list[tuple[str, Command]]:
    """Every command a user can run, as its path (a group that runs itself counts too)."""
    if isinstance(group, Group):
        found: list[tuple[str, Command]] = (
            [(" ".join(path), group)] if group.invoke_without_command and path else []
        )
        for name, sub in sorted(group.commands.items()):
            found += _leaves(sub, (*path, name))
        return found
    return [(" ".join(path), group)]


LEAVES = _leaves(typer.main.get_command(app))
assert len(LEAVES) > 30, LEAVES


def test_the_docs_page_is_the_rendered_table() -> None:
    text = DOC.read_text()
    begin, end = "<!-- exit-codes:begin -->\n", "<!-- exit-codes:end -->"
    assert text[text.index(begin) + len(begin) : text.index(end)] == exit_codes.render_markdown()


def _int_values(node: ast.expr, constants: dict[str, int]) -> set[int]:
    """The codes an expression can be: a literal, a named constant, either branch of ``a if c
    else b``; a run-time value (``code``, ``exc.exit_code``) is checked where it is made."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return {node.value}
    if isinstance(node, ast.Name) and node.id in constants:
        return {constants[node.id]}
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "exit_codes":
        return {int(getattr(exit_codes, node.attr))}
    if isinstance(node, ast.IfExp):
        return _int_values(node.body, constants) | _int_values(node.orelse, constants)
    return set()


def _codes_in(path: Path) -> set[int]:
    """Every literal or named code a command module passes to ``typer.Exit`` or ``fail``."""
    tree = ast.parse(path.read_text())
    constants = {
        t.id: n.value.value
        for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, int)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    constants.update({k: v for k, v in vars(exit_codes).items() if k.isupper() and isinstance(v, int)})
    found: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name == "Exit" and node.args:
            found |= _int_values(node.args[0], constants)
        elif name == "fail" and len(node.args) >= 3:
            found |= _int_values(node.args[2], constants)
        elif name == "fail":
            found.add(exit_codes.FAILED)
        elif name == "usage":
            found.add(exit_codes.USAGE)
    return found


def test_every_code_a_command_exits_with_is_in_its_row_of_the_table() -> None:
    by_module: dict[str, set[int]] = {}
    for path, command in LEAVES:
        module = command.callback.__module__ if command.callback else ""
        by_module.setdefault(module, set()).update(exit_codes.codes_of(path))
    for module, allowed in by_module.items():
        if not module.startswith("nusec.commands."):
            continue
        used = _codes_in(ROOT / (module.replace(".", "/") + ".py"))
        assert used <= allowed, f"{module} exits with {sorted(used - allowed)}, not in nusec/exit_codes.py"
    classes = [c for c in vars(provision_errors).values() if isinstance(c, type) and hasattr(c, "exit_code")]
    assert {c.exit_code for c in classes} <= exit_codes.codes_of("provision")


@pytest.mark.parametrize(("path", "command"), LEAVES, ids=[p for p, _ in LEAVES])
def test_an_unknown_option_is_usage_exit_2(path: str, command: Command) -> None:
    result = CliRunner().invoke(app, [*path.split(), "--no-such-option"])
    assert result.exit_code == 2, result.output
    assert "No such option: --no-such-option" in result.output


def test_our_own_usage_checks_exit_2_naming_the_problem(tmp_path: Path) -> None:
    tls = ["--ca", str(tmp_path / "ca.pem"), "--client-cert", "c.pem", "--client-key", "k.pem"]
    existing = tmp_path / "audit.json"
    existing.write_text("{}")
    config = tmp_path / "ceremony.yaml"
    config.write_text("x: 1\n")
    cases = [
        (
            ["board", "status", "XYZ", "--server", "https://127.0.0.1:1", *tls],
            "UID 'XYZ' is not 24 hex digits",
        ),
        (
            ["audit", "export", "--server", "https://127.0.0.1:1", *tls, "--out", str(existing)],
            "exists; not over",
        ),
        (
            ["ceremony", "run", str(config), "--rehearsal-dir", str(tmp_path)],
            "--rehearsal-dir needs --rehearsal",
        ),
        (["serve", "validate", str(tmp_path / "missing.yaml")], "config file not found"),
        (["serve"], "hsm_uri: required"),
    ]
    for argv, needle in cases:
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 2 and needle in result.output, (argv, result.exit_code, result.output)


def test_several_boards_exit_with_the_code_that_most_needs_a_human() -> None:
    assert most_urgent([6, 5]) == 5  # a retry (service) never hides a board to set aside
    assert most_urgent([4, 6, 3]) == 3
    assert most_urgent([6, 1]) == 1
    assert most_urgent([6, 4]) == 4
    assert most_urgent([0, 0]) == 0 and most_urgent([]) == 0
    assert most_urgent([6, 77]) == 77  # an unknown code is never taken for a retry
    order = exit_codes.PROVISION_PRECEDENCE
    assert order.index(5) < order.index(6) and order.index(3) < order.index(4) and order[-1] == 0
