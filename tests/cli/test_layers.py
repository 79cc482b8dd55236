"""The layering rules of docs/architecture.md, checked on the source (imports anywhere in a file,
including function-local ones and ``importlib.import_module("...")``/``__import__("...")`` with a
literal name, count; ``TYPE_CHECKING`` blocks are allowed to look upward)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: package -> top-level packages of ours it must never import
FORBIDDEN = {
    "nucore": {"pki", "ceremony", "nusec"},
    "pki": {"ceremony", "nusec"},
    "ceremony": {"nusec"},
    "nuboard": {"pki", "ceremony", "nusec", "nusim"},
    "nusim": {"pki", "ceremony", "nusec"},
}
#: the only files of the desktop package that may reach the simulator in-process: its CLI face
#: and the demo that creates boards; everything else reaches a board through pyocd's probe-plugin
#: entry point and a serial-like URL (docs/sim-board.md)
SIM_FACES = {"nusec/commands/sim.py", "nusec/demo.py"}
OURS = ("nucore", "pki", "ceremony", "nusec", "nuboard", "nusim")
_MODULE_NAME = re.compile(rf"^({'|'.join(OURS)})(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_DYNAMIC = ("import_module", "__import__")
#: the desktop flow reaches the OEM service only over HTTP
DESKTOP_FLOW = ("nusec/provision", "nusec/board", "nusim", "nusec/otp_batch")


def _is_dynamic_import(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    fn = node.func
    name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
    return name in _DYNAMIC


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    found: list[tuple[int, str]] = []
    dynamic = False
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend([(node.lineno, node.module)])
        elif _is_dynamic_import(node):
            dynamic = True
    if dynamic:  # a module name may reach import_module through a variable: every literal counts
        found.extend(
            (node.lineno, node.value)
            for node in ast.walk(tree)
            if id(node) not in skip
            and isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _MODULE_NAME.match(node.value)
        )
    return found


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_never_import_upper_ones(package: str) -> None:
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {mod}"
        for p in _files(package)
        for line, mod in _imports(p)
        if mod.split(".")[0] in FORBIDDEN[package]
    ]
    assert not bad, "\n".join(bad)


def test_desktop_flow_never_imports_the_service() -> None:
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {mod}"
        for folder in DESKTOP_FLOW
        for p in _files(folder)
        for line, mod in _imports(p)
        if mod == "pki.service" or mod.startswith("pki.service.")
    ]
    assert not bad, "\n".join(bad)


def test_the_desktop_never_imports_the_simulator() -> None:
    """Only the CLI face (``nusec sim``) and the demo may import ``nusim``; the flow reaches a
    board through pyocd and a pyserial URL, as it reaches silicon."""
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {mod}"
        for p in _files("nusec")
        if str(p.relative_to(ROOT)) not in SIM_FACES
        for line, mod in _imports(p)
        if mod.split(".")[0] == "nusim"
    ]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_violations(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text(
        "import os\nimport importlib\ndef f():\n    from nusec.cli import app\n"
        "def g():\n    return importlib.import_module('nusim.uart')\n"
        "def h():\n    return __import__('pki.files')\n"
        "MODS = ('nusim.board',)\n"
    )
    found = _imports(sample)
    assert (4, "nusec.cli") in found
    assert (6, "nusim.uart") in found
    assert (8, "pki.files") in found
    assert (9, "nusim.board") in found  # reaches import_module through a variable


def test_the_checker_ignores_plain_strings_without_dynamic_imports(tmp_path: Path) -> None:
    sample = tmp_path / "y.py"
    sample.write_text("NAME = 'nusim.uart'\n")
    assert _imports(sample) == []


@pytest.mark.parametrize("fmt", ["nusec-otp-batch/1", "nusec-otp-seal/1"])
def test_each_batch_format_has_one_owner(fmt: str) -> None:
    """The batch format names are constants only in ``pki.batch``: the service checks an import with
    the code that wrote the batch, never a copy of the format."""
    owners = sorted(
        str(p.relative_to(ROOT))
        for folder in ("nucore", "pki", "ceremony", "nusec", "nuboard", "nusim")
        for p in _files(folder)
        if any(isinstance(n, ast.Constant) and n.value == fmt for n in ast.walk(ast.parse(p.read_text())))
    )
    assert owners and all(o.startswith("pki/batch/") for o in owners), owners


# --- imports the plain ``import``/``from`` scan above would miss (issue 16) ----------------------

#: ``nusec`` commands that are the OEM side's own tools or run it, so may import ``pki.service``;
#: every other command is a client of the service and talks to it over HTTP only.
SERVICE_SIDE_COMMANDS = {"serve", "db", "pki", "audit"}


def _hidden_imports(path: Path) -> list[tuple[int, str]]:
    """Modules reached without an ``import a.b`` line: ``from pki import service`` (the submodule
    ``pki.service``) and ``importlib.import_module("...")``/``__import__("...")`` string literals."""
    tree = ast.parse(path.read_text(), str(path))
    skip = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for n in ast.walk(stmt)
    }
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = ast.unparse(node.func)
            if name in ("importlib.import_module", "import_module", "__import__"):
                found.append((node.lineno, str(node.args[0].value)))
    return found


def _is_service(module: str) -> bool:
    return module == "pki.service" or module.startswith("pki.service.")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_upward_import_by_from_import_or_importlib(package: str) -> None:
    bad = [
        f"{p.relative_to(ROOT)}:{line} reaches {mod}"
        for p in _files(package)
        for line, mod in _hidden_imports(p)
        if mod.split(".")[0] in FORBIDDEN[package]
    ]
    assert not bad, "\n".join(bad)


def test_desktop_flow_and_client_commands_never_reach_the_service() -> None:
    clients = [p for p in _files("nusec/commands") if p.stem not in SERVICE_SIDE_COMMANDS]
    assert {"provision", "inspect", "board", "otp", "sim"} <= {p.stem for p in clients}
    paths = [p for folder in DESKTOP_FLOW for p in _files(folder)] + clients
    bad = [
        f"{p.relative_to(ROOT)}:{line} reaches {mod}"
        for p in paths
        for line, mod in [*_imports(p), *_hidden_imports(p)]
        if _is_service(mod)
    ]
    assert not bad, "\n".join(bad)


def test_the_hidden_import_checker_sees_them(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text(
        "import importlib\nfrom pki import service\ndef f():\n    importlib.import_module('nusec.cli')\n"
        "    __import__('pki.service.app')\n"
    )
    assert {(2, "pki.service"), (4, "nusec.cli"), (5, "pki.service.app")} <= set(_hidden_imports(sample))
