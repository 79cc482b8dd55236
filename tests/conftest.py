"""Shared test plumbing: where the shared test vectors live, and the CI rule for missing ones.

Vectors are read in place from ``$NUSEC_VECTORS`` or ``../shared/vectors`` (never copied into
the project). Outside CI a test without them skips with the reason; under ``CI=true`` a missing
vector file is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def vectors_dir() -> Path:
    env = os.environ.get("NUSEC_VECTORS")
    return Path(env) if env else ROOT.parent / "shared" / "vectors"


def require_vector(relpath: str) -> Path:
    """Path to a shared vector file; skip (or fail under CI=true) when it is missing."""
    path = vectors_dir() / relpath
    if not path.is_file():
        msg = f"test vector {path} not found (set NUSEC_VECTORS to the shared/vectors folder)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path
