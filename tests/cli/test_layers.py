"""The layering rules of docs/architecture.md, checked on the source (imports anywhere in a file,
including function-local ones, count; ``TYPE_CHECKING`` blocks are allowed to look upward)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: package -> top-level packages of ours it must never import
FORBIDDEN = {
    "nucore": {"pki", "ceremony", "nusec"},
    "pki": {"ceremony", "nusec"},
    "ceremony": {"nusec"},
    "nuboard": {"pki", "ceremony", "nusec", "nusim"},
    "nusim": {"ceremony", "nusec"},
}
#: the desktop flow reaches the OEM service only over HTTP
DESKTOP_FLOW = ("nusec/provision", "nusec/board", "nusim", "nusec/otp_batch")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend([(node.lineno, node.module)])
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


def test_the_checker_sees_violations(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import os\ndef f():\n    from nusec.cli import app\n")
    assert (3, "nusec.cli") in _imports(sample)


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
