"""Tests that pass only for the right reason: they find tools next to the running interpreter
(never a hard-coded ``.venv/bin``), and share no module-level state between test files (a cache
filled by whichever test ran first makes results depend on order)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
#: Calls that make an empty container (a module-level one is a cache waiting to be filled).
_EMPTY_CONTAINERS = ("dict", "list", "set", "defaultdict", "OrderedDict", "Counter", "deque")


def _test_files() -> list[Path]:
    return sorted(TESTS.rglob("*.py"))


def test_no_test_hard_codes_a_venv_path() -> None:
    bad = []
    for path in _test_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value == "." + "venv":  # (split: not itself a hit)
                bad.append(f"{path.relative_to(TESTS)}:{node.lineno}")
    assert not bad, f"use tests.tools.tool(NAME) (next to sys.executable): {bad}"


def test_no_module_level_cache_or_global_in_tests() -> None:
    """An empty module-level container is a cache some test fills; ``global`` rebinds one."""
    bad = []
    for path in _test_files():
        tree = ast.parse(path.read_text())
        for node in tree.body:
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            empty_literal = isinstance(value, (ast.Dict, ast.List, ast.Set)) and not (
                getattr(value, "keys", None) or getattr(value, "elts", None)
            )
            empty_call = (
                isinstance(value, ast.Call)
                and ast.unparse(value.func).rsplit(".", 1)[-1] in _EMPTY_CONTAINERS
                and not value.args
            )
            if empty_literal or empty_call:
                bad.append(f"{path.relative_to(TESTS)}:{node.lineno} {ast.unparse(node)[:60]}")
        bad += [
            f"{path.relative_to(TESTS)}:{n.lineno} global {', '.join(n.names)}"
            for n in ast.walk(tree)
            if isinstance(n, ast.Global)
        ]
    assert not bad, bad
