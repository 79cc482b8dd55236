"""Where the tests find console tools (pyocd, imgtool, nusec): next to the running interpreter,
so the suite works from any virtual environment, never at a hard-coded ``.venv/bin``."""

from __future__ import annotations

import sys
from pathlib import Path

#: The running interpreter's ``bin`` folder (not resolved: a venv's python is a symlink).
BIN = Path(sys.executable).parent


def tool(name: str) -> Path:
    """The console script ``name`` installed with the running interpreter."""
    return BIN / name
