"""Provisioning speed: wall time per board and bytes over the probe per step, for 1 board and for
4 simulated boards in parallel, against the real service (SoftHSM2, HTTPS, mutual TLS).

Reference measured in the same run: the raw probe rate of the simulator through pyocd (32-bit
reads of SRAM), so the per-step figures can be read as "probe time" vs "everything else".

    python bench/provision.py [--json]
With --json the last line is {"boards_1": {"s_per_board": X, "probe_bytes": N},
"boards_4": {"s_per_board": X}}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nusec.provision.client import TlsConfig  # noqa: E402
from nusec.provision.flow import RunOptions, provision_boards  # noqa: E402
from nusec.provision.link import SwdLink  # noqa: E402
from nusec.provision.steps import STEP_IDS  # noqa: E402
from pki.service.server import run_in_background  # noqa: E402
from tests.service.conftest import make_pki  # noqa: E402

FIRMWARE = ROOT / "nusec" / "board" / "bin" / "firmware_bl2.bin"


def probe_rate(n: int = 2000) -> float:
    """Bytes/s of plain 32-bit reads through pyocd on a simulated board."""
    with SwdLink("sim:benchref") as link:
        t = time.perf_counter()
        for _ in range(n):
            link.memory.read32(0x2000_0000)
        return 4 * n / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nusec-bench-prov-"))
    os.environ["NUSEC_SIM_DIR"] = str(tmp / "sim")
    pki = make_pki(tmp / "pki")
    handle = run_in_background(pki.config(), env=pki.token.environ(), migrate=True)
    out: dict[str, dict[str, float | int]] = {}
    try:
        tls = TlsConfig(pki.operator_cert, pki.operator_key, pki.chain_pem)
        ref = probe_rate()
        print(f"reference: simulator probe rate through pyocd {ref / 1024:.1f} KiB/s (32-bit reads)")
        for n in (1, 4):
            opts = RunOptions(handle.url, FIRMWARE, tls, tmp / f"journal{n}")
            probes = [f"sim:bench{n}x{i}" for i in range(n)]
            t = time.perf_counter()
            results = provision_boards(probes, opts)
            wall = time.perf_counter() - t
            bad = [r for r in results if not r.ok]
            if bad:
                print(f"error: {bad[0].probe}: {bad[0].error}", file=sys.stderr)
                return 1
            per_board = wall / n
            probe_bytes = sum(r.probe_bytes for r in results) // n
            print(f"\n{n} board(s): {wall:.2f} s wall, {per_board:.2f} s/board, {probe_bytes} B/board")
            print(f"  {'step':12} {'s (mean)':>9} {'probe B':>9} {'probe-time @ref':>16}")
            for sid in STEP_IDS:
                recs = [s for r in results for s in r.steps if s.id == sid]
                secs = sum(s.seconds for s in recs) / len(recs)
                pb = sum(s.probe_bytes for s in recs) // len(recs)
                print(f"  {sid:12} {secs:9.3f} {pb:9d} {pb / ref:15.3f}s")
            key = f"boards_{n}"
            out[key] = {"s_per_board": round(per_board, 3)}
            if n == 1:
                out[key]["probe_bytes"] = probe_bytes
        ratio = out["boards_4"]["s_per_board"] / out["boards_1"]["s_per_board"]
        print(f"\n4 in parallel vs 1 alone: {ratio:.2f}x the time per board")
    finally:
        handle.stop()
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
