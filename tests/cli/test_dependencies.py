"""Every runtime dependency ``pyproject.toml`` declares is imported by our code (a dependency
nobody imports, such as the ``jsonschema`` that configs never used, only slows every install)."""

from __future__ import annotations

import ast
import re
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("nucore", "pki", "ceremony", "nusec", "nuboard", "nusim")


def _imported_top_levels() -> set[str]:
    found: set[str] = set()
    files = [ROOT / "build.py"]  # cffi: the native core's build, and its runtime backend
    files += [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_every_declared_runtime_dependency_is_imported() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in declared}
    imported = _imported_top_levels()
    dists_of = packages_distributions()
    used = {dist.lower().replace("_", "-") for mod in imported for dist in dists_of.get(mod, [])}
    assert names - used == set(), f"declared in pyproject.toml but never imported: {sorted(names - used)}"
