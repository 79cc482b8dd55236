"""Regenerate ``otp_v1.json`` (run from the repo root: ``python -m tests.native.golden.make_otp_v1``).

Inputs are fixed (keys from fixed scalars, certificates signed with deterministic ECDSA and fixed
dates); the expected images come from the independent reference packer, not from the C code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.native.otp_reference import reference_pack

HERE = Path(__file__).resolve().parent


def _key(d: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(d, ec.SECP256R1())


def _xy(k: ec.EllipticCurvePrivateKey) -> bytes:
    return k.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )[1:]


def _cert(
    subject: str, issuer: str, key: ec.EllipticCurvePrivateKey, signer: ec.EllipticCurvePrivateKey, ca: bool
) -> bytes:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(0x4E55534543 + len(subject))
        .not_valid_before(t0)
        .not_valid_after(t0 + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
    )
    cert = b.sign(signer, hashes.SHA256(), ecdsa_deterministic=True)
    return cert.public_bytes(serialization.Encoding.DER)


def build() -> dict[str, object]:
    root, ica, sb, board = _key(0x1001), _key(0x2002), _key(0x3003), _key(0x4004)
    root_der = _cert("NuSec Golden Root", "NuSec Golden Root", root, root, True)
    ica_der = _cert("NuSec Golden ICA", "NuSec Golden Root", ica, root, True)
    board_der = _cert("NuLink3 0123456789AB", "NuSec Golden ICA", board, ica, False)
    vectors = []
    for name, flags, bcert in (("bulk", 1, b""), ("with_board_cert", 0, board_der)):
        inputs = {
            "root_pub": _xy(root),
            "root_cert_sha256": hashlib.sha256(root_der).digest(),
            "ica_cert_sha256": hashlib.sha256(ica_der).digest(),
            "secure_boot_pub": _xy(sb),
            "uid": bytes.fromhex("0123456789abcdef00112233"),
            "ica_cert": ica_der,
            "board_cert": bcert,
        }
        img = reference_pack(**inputs, policy=3, flags=flags)
        vectors.append(
            {
                "name": name,
                "policy": 3,
                "flags": flags,
                **{k: v.hex() for k, v in inputs.items()},
                "expected_image": img.hex(),
                "expected_digest": img[0x7E0:].hex(),
            }
        )
    return {"layout_version": 1, "vectors": vectors}


if __name__ == "__main__":
    (HERE / "otp_v1.json").write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {HERE / 'otp_v1.json'}")
