"""The one place that imports the cffi extension, with a clear message if it is not built."""

from __future__ import annotations

from typing import Any

try:
    from nucore._native import ffi as _ffi  # type: ignore[import-not-found,unused-ignore]
    from nucore._native import lib as _lib
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError("nucore._native is not built: run `make native` (or `pip install -e .`) first") from exc

ffi: Any = _ffi
lib: Any = _lib
