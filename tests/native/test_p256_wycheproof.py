"""Every Wycheproof ECDSA P-256/SHA-256 (DER and P1363) and ECDH P-256 (SPKI and ecpoint) case.

'acceptable' ECDH cases, our choice per flag (asserted, so a change of behaviour shows up):
- CompressedPublic / CompressedPoint: accepted (SEC1 compressed points are supported) and the
  shared secret must match.
- InvalidAsn (BER or otherwise non-DER SubjectPublicKeyInfo): rejected, we parse strict DER only.
- UnnamedCurve (explicit curve parameters, even when they equal P-256): rejected, named curve only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from nucore import NativeError, p256
from tests.conftest import require_vector


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(require_vector(f"wycheproof/{name}").read_text())
    return data


def _cases(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    data = _load(name)
    cases = [(g, t) for g in data["testGroups"] for t in g["tests"]]
    assert len(cases) == data["numberOfTests"]
    return cases


@pytest.mark.parametrize(
    "name", ["ecdsa_secp256r1_sha256_test.json", "ecdsa_secp256r1_sha256_p1363_test.json"]
)
def test_ecdsa_wycheproof(name: str) -> None:
    encoding: p256.SignatureEncoding = "raw" if "p1363" in name else "der"
    cases = _cases(name)
    failures = []
    for group, case in cases:
        assert group["sha"] == "SHA-256"
        key = p256.PublicKey.from_sec1(bytes.fromhex(group["publicKey"]["uncompressed"]))
        assert p256.PublicKey.from_spki_der(bytes.fromhex(group["publicKeyDer"])) == key
        ok = key.is_valid_signature(bytes.fromhex(case["sig"]), bytes.fromhex(case["msg"]), encoding=encoding)
        assert case["result"] in ("valid", "invalid"), case
        if ok != (case["result"] == "valid"):
            failures.append((case["tcId"], case["comment"], case["result"]))
    assert not failures, failures
    assert len(cases) > 200


PublicKeyParser = Callable[[bytes], p256.PublicKey]


def _ecdh_case(public: PublicKeyParser, case: dict[str, Any]) -> bytes:
    priv = p256.PrivateKey.from_bytes(int(case["private"], 16).to_bytes(32, "big"))
    return priv.exchange(public(bytes.fromhex(case["public"])))


@pytest.mark.parametrize(
    ("name", "parser"),
    [
        ("ecdh_secp256r1_test.json", p256.PublicKey.from_spki_der),
        ("ecdh_secp256r1_ecpoint_test.json", p256.PublicKey.from_sec1),
    ],
)
def test_ecdh_wycheproof(name: str, parser: PublicKeyParser) -> None:
    failures = []
    counts = {"valid": 0, "invalid": 0, "acceptable": 0}
    for _group, case in _cases(name):
        counts[case["result"]] += 1
        try:
            shared: bytes | None = _ecdh_case(parser, case)
        except NativeError:
            shared = None
        flags = set(case["flags"])
        if case["result"] == "valid":
            good = shared == bytes.fromhex(case["shared"])
        elif case["result"] == "invalid":
            good = shared is None
        elif "CompressedPublic" in flags:
            good = shared == bytes.fromhex(case["shared"])
        elif flags & {"InvalidAsn", "UnnamedCurve"}:
            good = shared is None
        else:  # an acceptable flag we have not decided on: make it visible
            good = False
        if not good:
            failures.append((case["tcId"], case["comment"], case["result"], sorted(flags)))
    assert not failures, failures
    assert counts["valid"] > 50 and counts["invalid"] > 20


def test_ecdsa_wycheproof_p1363_through_batches() -> None:
    """The same P1363 cases through verify_batch (per-item keys), and per group through the
    one-key path (a comb table for groups of TABLE_THRESHOLD or more) and PeerTable."""
    from nucore import p256_batch as pb

    cases = [
        (g, t)
        for g, t in _cases("ecdsa_secp256r1_sha256_p1363_test.json")
        if len(bytes.fromhex(t["sig"])) == 64
    ]
    pubs = b"".join(bytes.fromhex(g["publicKey"]["uncompressed"]) for g, _ in cases)
    digests = b"".join(hashlib.sha256(bytes.fromhex(t["msg"])).digest() for _, t in cases)
    sigs = b"".join(bytes.fromhex(t["sig"]) for _, t in cases)
    expected = [t["result"] == "valid" for _, t in cases]
    assert pb.verify_batch(pubs, digests, sigs) == expected
    groups: dict[str, list[int]] = {}
    for i, (g, _) in enumerate(cases):
        groups.setdefault(g["publicKey"]["uncompressed"], []).append(i)
    assert any(len(idx) >= pb.TABLE_THRESHOLD for idx in groups.values())
    for key, idx in groups.items():
        d = b"".join(digests[32 * i : 32 * i + 32] for i in idx)
        s = b"".join(sigs[64 * i : 64 * i + 64] for i in idx)
        want = [expected[i] for i in idx]
        assert pb.verify_batch(bytes.fromhex(key), d, s) == want
        table = pb.PeerTable(p256.PublicKey.from_sec1(bytes.fromhex(key)))
        assert table.verify_batch(d, s) == want
