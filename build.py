"""cffi builder for the native core (``nucore._native``).

Every ``csrc/*.c`` file is compiled into one extension; every ``csrc/*.cdef`` file is
concatenated into the cffi declarations, so each C module brings its own Python-visible API
without editing this file. Sub-folders are not built: ``csrc/gen/`` holds the generator of
``nc_p256_table.c``.

Run directly (``python build.py``) to compile in place into ``nucore/``: this is what
``make native`` does, and a compiler error fails the build loudly.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"


def make_ffi(absolute: bool) -> FFI:
    """The cffi builder; setuptools wants paths relative to the project, cffi's compile absolute."""
    base = CSRC if absolute else CSRC.relative_to(ROOT)
    ffi = FFI()
    ffi.cdef("\n".join(p.read_text() for p in sorted(CSRC.glob("*.cdef"))))
    ffi.set_source(
        "nucore._native",
        "\n".join(f'#include "{p.name}"' for p in sorted(CSRC.glob("*.h"))),
        sources=[str(base / p.name) for p in sorted(CSRC.glob("*.c"))],
        include_dirs=[str(base)],
        extra_compile_args=[
            "-std=c99",
            "-O3",
            "-Wall",
            "-Wextra",
            "-Werror=implicit-function-declaration",
            "-Werror=incompatible-pointer-types",
            "-Werror=return-type",
            *os.environ.get("NUSEC_CFLAGS", "").split(),
        ],
    )
    return ffi


ffibuilder = make_ffi(absolute=False)


def build_in_place() -> Path:
    """Compile the extension and copy it next to ``nucore/__init__.py``."""
    tmp = ROOT / "build" / "cffi"
    tmp.mkdir(parents=True, exist_ok=True)
    os.chdir(ROOT)
    built = Path(make_ffi(absolute=True).compile(tmpdir=str(tmp), verbose=False))
    for stale in (ROOT / "nucore").glob("_native*.so"):
        stale.unlink()  # one extension only, so Python cannot pick an older build
    target = ROOT / "nucore" / built.name
    shutil.copy2(built, target)
    return target


if __name__ == "__main__":
    try:
        out = build_in_place()
    except Exception as exc:  # the compiler's own message was already printed above
        print(f"native build failed: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"built {out.relative_to(ROOT)}")
