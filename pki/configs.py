"""Config files validated with pydantic: the one way a validation error becomes one line.

Why here: every config of the OEM side (ceremony files, the bulk OTP batch spec) is a strict
pydantic model, and a user fixing a file wants the first problem named by its field path, not a
pydantic report. ``pki`` is the lowest layer those configs share (``ceremony`` imports it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError

#: YAML gives strings; a path field accepts them (strict mode would want a ``Path`` object).
LaxPath = Annotated[Path, Field(strict=False)]


def one_line(err: ValidationError) -> str:
    """One line naming the first problem's field path; an unknown field (a typo) is named first,
    since it usually also explains a "missing" one."""
    errors = err.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = ".".join(str(p) for p in first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        parent, _, name = loc.rpartition(".")
        where = f" in '{parent}'" if parent else ""
        return f"unknown field '{name}'{where}"
    if kind == "missing":
        return f"missing field '{loc}'"
    msg = str(first["msg"]).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg
