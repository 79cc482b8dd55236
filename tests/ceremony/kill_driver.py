"""Run a ceremony (with ``reuse=True``) and SIGKILL it right after one step: a real kill, so no
``finally`` runs. Used by ``test_kill_points.py``.

    python tests/ceremony/kill_driver.py CONFIG KILL_AT KEK_LOG

``KILL_AT`` is a transcript step (``open``, ``root_key``, ... ``close``), ``wrap:<label>`` (right
after that key was wrapped, while the backup KEK exists in the HSM session), or ``never``. The
KEK of each run is appended (hex) to ``KEK_LOG``, which the test keeps outside every folder it
scans, so it can look for those bytes afterwards.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import ceremony.run as run_mod
from ceremony.config import load_config
from ceremony.transcript import TranscriptWriter
from pki.hsm.pkcs11 import Pkcs11Backend


def main() -> None:
    config, kill_at, kek_log = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    split = run_mod.split_kek  # type: ignore[attr-defined]  # the name the run calls

    def logged_split(kek: bytes, *a: Any, **k: Any) -> Any:
        with kek_log.open("a") as fh:
            fh.write(kek.hex() + "\n")
        return split(kek, *a, **k)

    append, close = TranscriptWriter.append, TranscriptWriter.close

    def killing_append(self: TranscriptWriter, step: str, *a: Any, **k: Any) -> Any:
        line = append(self, step, *a, **k)
        if step == kill_at:
            die()
        return line

    def killing_close(self: TranscriptWriter, *a: Any, **k: Any) -> Any:
        digest = close(self, *a, **k)
        if kill_at == "close":
            die()  # the closing line is written, the folder not yet published
        return digest

    wrap = Pkcs11Backend.wrap_private_key

    def killing_wrap(self: Pkcs11Backend, label: str, kek: Any) -> bytes:
        blob = wrap(self, label, kek)
        if kill_at == f"wrap:{label}":
            die()
        return blob

    run_mod.split_kek = logged_split  # type: ignore[attr-defined]
    TranscriptWriter.append = killing_append  # type: ignore[method-assign]
    TranscriptWriter.close = killing_close  # type: ignore[method-assign]
    Pkcs11Backend.wrap_private_key = killing_wrap  # type: ignore[method-assign]
    run_mod.run_ceremony(load_config(config), reuse=True)


if __name__ == "__main__":
    main()
