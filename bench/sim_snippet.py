"""The simulated board through pyocd: time per KeyGen-snippet operation, next to the same crypto
done directly with pyca/cryptography in this run (the floor the simulator adds its cost to), and
probe throughput for SRAM block transfers and FMC ISP word programs.

Usage: python bench/sim_snippet.py [--rounds 20] [--json]
With --json the last line is one JSON object:
{"connect_s": X, "load_s": X, "keygen_ms": {"sim": X, "cryptography": X},
 "sign_cri_ms": {"sim": X, "cryptography": X}, "sram_write_MBps": X, "isp_programs_per_s": X}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from nusec.board.snippet import KeyGenSnippet  # noqa: E402
from nusim import fmc, memmap  # noqa: E402
from tests.sim.sim_helpers import cri_for, isp, session  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.rounds
    with tempfile.TemporaryDirectory() as d:
        os.environ["NUSEC_SIM_DIR"] = d
        t0 = time.perf_counter()
        with session("bench") as s:
            connect_s = time.perf_counter() - t0
            t = s.target
            snip = KeyGenSnippet(t)
            t0 = time.perf_counter()
            snip.load()
            load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            pubs = [snip.keygen(slot) for slot in range(2, 2 + min(n, 13))]  # 0/1: the ROM's root key
            keygen_sim = (time.perf_counter() - t0) / len(pubs) * 1e3
            cri = cri_for(pubs[0])
            t0 = time.perf_counter()
            for _ in range(n):
                snip.sign_cri(cri, 2)
            sign_sim = (time.perf_counter() - t0) / n * 1e3
            blob = bytes(range(256)) * 1024
            t0 = time.perf_counter()
            for _ in range(n):
                t.write_memory_block8(memmap.SRAM_BASE + 0x10000, blob)
            sram_mbps = len(blob) * n / (time.perf_counter() - t0) / 1e6
            words = 256 * n
            t0 = time.perf_counter()
            for i in range(words):
                isp(t, fmc.CMD_PROGRAM, memmap.FLASH_BASE + 4 * i, i)
            isp_rate = words / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(n)]
    keygen_ref = (time.perf_counter() - t0) / n * 1e3
    t0 = time.perf_counter()
    for _ in range(n):
        keys[0].sign(cri, ec.ECDSA(hashes.SHA256()))
    sign_ref = (time.perf_counter() - t0) / n * 1e3

    print(f"connect (pyocd session on sim)      {connect_s * 1e3:8.1f} ms")
    print(f"load snippet ({len(snip.image)} B)            {load_s * 1e3:8.2f} ms")
    print(f"keygen        sim {keygen_sim:7.2f} ms   cryptography {keygen_ref:7.3f} ms")
    print(f"sign CRI      sim {sign_sim:7.2f} ms   cryptography {sign_ref:7.3f} ms")
    print(f"SRAM block write over the probe      {sram_mbps:8.1f} MB/s")
    print(f"FMC ISP word programs from the probe {isp_rate:8.0f} /s")
    if args.json:
        print(
            json.dumps(
                {
                    "connect_s": connect_s,
                    "load_s": load_s,
                    "keygen_ms": {"sim": keygen_sim, "cryptography": keygen_ref},
                    "sign_cri_ms": {"sim": sign_sim, "cryptography": sign_ref},
                    "sram_write_MBps": sram_mbps,
                    "isp_programs_per_s": isp_rate,
                }
            )
        )


if __name__ == "__main__":
    main()
