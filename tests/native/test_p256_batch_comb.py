"""The batched affine comb (keygen_batch, sign_batch, PeerTable.ecdh_batch) and the field code.

keygen_batch and the fixed-peer ECDH run k * P for a whole chunk in affine coordinates with one
shared inversion per comb window; the single-key calls still use the Jacobian comb, so comparing
the two (and both with cryptography) checks the batch path, across its 256-item chunk edges.
The field multiplication is picked at load time (x86-64 BMI2+ADX asm or portable C); the
NUSEC_P256_FIELD variable forces the portable one, and both must give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from nucore import p256
from nucore import p256_batch as pb

ROOT = Path(__file__).resolve().parents[2]
N = p256.ORDER
G_SEC1 = bytes.fromhex(
    "04"
    "6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296"
    "4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5"
)
# Scalars that stress the signed comb digits: tiny, near n, single bits, all-ones windows, and
# values whose Booth windows are 0 or +-32 everywhere.
EDGE = sorted(
    {1, 2, 3, 31, 32, 33, 63, 64, 65, N - 1, N - 2, N - 3, N - 32, N - 33, N // 2, N // 2 + 1}
    | {1 << k for k in range(0, 256, 5)}
    | {(1 << k) - 1 for k in range(6, 256, 6)}
    | {int("100000" * 42 + "1", 2) % N, int("011111" * 42, 2)}
)


def _uncompressed(d: int) -> bytes:
    key = ec.derive_private_key(d, ec.SECP256R1()).public_key()
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def _cpu_has_adx() -> bool:
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        return False
    flags = Path("/proc/cpuinfo").read_text().split()
    return "adx" in flags and "bmi2" in flags


def test_keygen_and_sign_batches_across_chunks_match_single_and_cryptography() -> None:
    seeds = b"".join(hashlib.sha256(b"chunk%d" % i).digest() for i in range(600))  # 256 + 256 + 88
    privs, pubs = pb.keygen_batch(seeds)
    for i in range(600):
        key = p256.PrivateKey.from_seed(seeds[32 * i : 32 * i + 32])
        assert privs[32 * i : 32 * i + 32] == key.to_bytes()
        assert pubs[65 * i : 65 * i + 65] == key.public_key().to_sec1()
    for i in range(0, 600, 37):
        assert pubs[65 * i : 65 * i + 65] == _uncompressed(int.from_bytes(privs[32 * i : 32 * i + 32], "big"))
    digests = b"".join(hashlib.sha256(b"msg%d" % i).digest() for i in range(600))
    sigs = pb.sign_batch(privs, digests)  # nonces' k * G through the same batch, 128 at a time
    for i in range(600):
        key = p256.PrivateKey.from_bytes(privs[32 * i : 32 * i + 32])
        digest = digests[32 * i : 32 * i + 32]
        assert sigs[64 * i : 64 * i + 64] == key.sign(digest, prehashed=True, encoding="raw")


def test_fixed_table_batch_on_edge_scalars_matches_cryptography() -> None:
    privs = b"".join(d.to_bytes(32, "big") for d in EDGE)
    table = pb.PeerTable(p256.PublicKey.from_sec1(G_SEC1))
    xs = table.ecdh_batch(privs)
    assert [xs[32 * i : 32 * i + 32] for i in range(len(EDGE))] == [_uncompressed(d)[1:33] for d in EDGE]


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=N - 1), min_size=1, max_size=300))
def test_fixed_peer_ecdh_batch_matches_cryptography(scalars: list[int]) -> None:
    peer_priv = ec.derive_private_key(scalars[0], ec.SECP256R1())
    peer = p256.PublicKey.from_sec1(_uncompressed(scalars[0]))
    out = pb.PeerTable(peer).ecdh_batch(b"".join(d.to_bytes(32, "big") for d in scalars))
    for i, d in enumerate(scalars[:40]):
        mine = ec.derive_private_key(d, ec.SECP256R1())
        assert out[32 * i : 32 * i + 32] == mine.exchange(ec.ECDH(), peer_priv.public_key())


_CHILD = """
import hashlib, json, sys
from nucore import p256, p256_batch as pb
seeds = bytes.fromhex(sys.argv[1])
n = len(seeds) // 32
privs, pubs = pb.keygen_batch(seeds)
digests = b"".join(hashlib.sha256(seeds[32 * i : 32 * i + 32]).digest() for i in range(n))
sigs = pb.sign_batch(privs, digests)
edge = bytes.fromhex(sys.argv[2])
print(json.dumps({
    "backend": p256.field_backend(),
    "privs": privs.hex(), "pubs": pubs.hex(), "sigs": sigs.hex(),
    "verify": pb.verify_batch(pubs, digests, sigs),
    "ecdh": pb.ecdh_batch(privs, pubs[:65]).hex(),
    "ecdh_each": pb.ecdh_batch(privs[:32], pubs).hex(),
    "fixed": pb.PeerTable(p256.PublicKey.from_sec1(pubs[65:130])).ecdh_batch(privs).hex(),
    "edge": pb.PeerTable(p256.PublicKey.from_sec1(pubs[:65])).ecdh_batch(edge).hex(),
    "single": p256.PrivateKey.from_seed(seeds[:32]).public_key().to_sec1().hex(),
}))
"""


def _run_child(field: str | None, seeds: bytes) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "NUSEC_P256_FIELD"}
    if field is not None:
        env["NUSEC_P256_FIELD"] = field
    edge = b"".join(d.to_bytes(32, "big") for d in EDGE)
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, seeds.hex(), edge.hex()],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    result: dict[str, object] = json.loads(run.stdout)
    return result


def test_field_backend_is_picked_by_cpu_and_can_be_forced() -> None:
    seeds = os.urandom(32 * 300)
    default = _run_child(None, seeds)
    forced = _run_child("portable", seeds)
    assert default["backend"] == ("adx" if _cpu_has_adx() else "portable")
    assert forced["backend"] == "portable"
    default.pop("backend")
    forced.pop("backend")
    assert default == forced  # same bytes from both field implementations, random inputs
    assert default["verify"] == [True] * 300
    assert default["single"] == str(default["pubs"])[:130]  # Jacobian single path == batch path


@pytest.mark.skipif(not _cpu_has_adx(), reason="this CPU has no BMI2+ADX: only the portable path exists")
def test_wycheproof_and_differential_suites_pass_on_the_portable_path_too() -> None:
    """The in-process suites run on the CPU's pick (adx here); rerun them forced to portable C."""
    env = {**os.environ, "NUSEC_P256_FIELD": "portable"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/native/test_p256_wycheproof.py",
            "tests/native/test_p256.py",
            "-k",
            "not threads",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-2000:]
