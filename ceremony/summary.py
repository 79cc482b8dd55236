"""JSON-ready summaries of the ceremony's result records (``--json`` output, rehearsal hand-off).

Why one function: every result record is a frozen dataclass of paths, labels, flags and tuples of
paths, and its summary is those fields in order with paths as strings; a nested record (the
rehearsal token) brings its own ``as_dict``. Records hold no PIN or share, so neither can leak here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    as_dict = getattr(value, "as_dict", None)
    if callable(as_dict):
        return as_dict()
    return value


def fields_as_dict(record: DataclassInstance) -> dict[str, Any]:
    """``record``'s fields, in declaration order, ready for ``json.dumps``."""
    return {f.name: _jsonable(getattr(record, f.name)) for f in dataclasses.fields(record)}
