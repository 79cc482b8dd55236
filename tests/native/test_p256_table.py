"""The committed base-point comb table is what its generator produces, and what the C builds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from nucore import p256
from nucore import p256_batch as pb

ROOT = Path(__file__).resolve().parents[2]


def test_generated_table_is_reproducible(tmp_path: Path) -> None:
    out = tmp_path / "table.c"
    subprocess.run([sys.executable, str(ROOT / "csrc/gen/gen_p256_table.py"), str(out)], check=True)
    assert out.read_bytes() == (ROOT / "csrc/nc_p256_table.c").read_bytes()


def test_generator_table_drives_keygen_like_a_runtime_table() -> None:
    """Keygen (committed G table) == fixed-base ECDH against G with a runtime-built table."""
    g = p256.PrivateKey.from_bytes((1).to_bytes(32, "big")).public_key()
    table = pb.PeerTable(g)
    scalars = [(d * 0x9E3779B97F4A7C15 + 7) % p256.ORDER for d in range(1, 40)]
    blob = b"".join(d.to_bytes(32, "big") for d in scalars)
    xs = table.ecdh_batch(blob)
    for i, d in enumerate(scalars):
        ref = ec.derive_private_key(d, ec.SECP256R1()).public_key().public_numbers().x
        assert xs[32 * i : 32 * i + 32] == ref.to_bytes(32, "big")
        assert (
            p256.PrivateKey.from_bytes(d.to_bytes(32, "big")).public_key().to_sec1()[1:33]
            == xs[32 * i : 32 * i + 32]
        )
