"""Every secret a finished ``nusec demo`` folder holds, read back out for the no-secrets-in-logs
test: ``python -m tests.cli.demo_secrets WORKDIR`` prints one JSON object.

Run as its own process because SoftHSM2 reads ``SOFTHSM2_CONF`` once per process. What it reads:
the token PINs; the custodian shares; the RootCA and first ICA keys (the shares rebuild the
backup KEK, which unwraps the ceremony's wrapped key files); every private or secret key object
on both tokens that PKCS#11 lets out (SoftHSM2 refuses sensitive ones: counted, not read); the
bulk batch's seed and DEK (unwrapped by the HSM's KEK, as the build does) and every board's
secure-boot key in it; the TLS keys; every board's KeyStore secrets (slot 2 up: the identity
key; the simulator keeps them in its state file).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from asn1crypto.keys import PrivateKeyInfo
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ceremony.backup import combine_shares, read_share_file
from nuboard.keyslots import FIRST_FREE_SLOT


def _scalar(der_or_key: bytes | ec.EllipticCurvePrivateKey) -> str:
    """The private scalar (hex) of a key object or a PKCS#8 DER blob (SoftHSM2 wraps PKCS#8
    without the optional public key, which asn1crypto reads and cryptography does not)."""
    if isinstance(der_or_key, ec.EllipticCurvePrivateKey):
        return f"{der_or_key.private_numbers().private_value:064x}"
    value = PrivateKeyInfo.load(der_or_key)["private_key"].parsed["private_key"].native
    assert isinstance(value, int)
    return f"{value:064x}"


def collect(workdir: Path) -> dict[str, Any]:
    soft = workdir / "softhsm"
    pins = {p.name: p.read_text().strip() for p in sorted(soft.glob("*.pin"))}
    shares = [read_share_file(p) for p in sorted((workdir / "ceremony" / "shares").glob("*.txt"))]
    secrets: dict[str, str] = {}  # name -> hex of a secret value (a P-256 scalar or key bytes)
    kek = combine_shares(shares[:2])
    for name in ("root-ca", "ica"):
        wrapped = (workdir / "ceremony" / f"{name}.key.wrapped").read_bytes()
        secrets[f"ceremony {name} key"] = _scalar(aes_key_unwrap_with_padding(kek, wrapped))
    secrets["ceremony backup KEK"] = kek.hex()
    for path in sorted((workdir / "tls").glob("*.key")):
        key = load_pem_private_key(path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        secrets[f"tls {path.name}"] = _scalar(key)
    for path in sorted((workdir / "sim").glob("*.json")):
        state = json.loads(path.read_text())
        for slot, entry in enumerate(state["ks_otp"]):
            if entry and slot >= FIRST_FREE_SLOT:
                secrets[f"board {path.stem} KeyStore OTP slot {slot}"] = entry["data"]
        for slot, entry in enumerate(state["ks_flash"]):
            if entry:
                secrets[f"board {path.stem} KeyStore flash slot {slot}"] = entry["data"]
    os.environ["SOFTHSM2_CONF"] = str(soft / "softhsm2.conf")
    refused, issuing = _token_keys(pins, secrets)
    _batch_keys(workdir, issuing, pins["issuing-user.pin"], secrets)
    return {"pins": pins, "shares": shares, "secrets": secrets, "sensitive_objects": refused}


def _token_keys(pins: dict[str, str], secrets: dict[str, str]) -> tuple[int, str]:
    """Read every private/secret key's value on both tokens; return how many the tokens refused,
    and the issuing token's label."""
    import pkcs11
    from pkcs11 import Attribute, ObjectClass
    from pkcs11 import exceptions as p11e

    from pki.hsm.uri import DEFAULT_MODULE_PATH

    lib = pkcs11.lib(DEFAULT_MODULE_PATH)
    refused, issuing = 0, ""
    for token in lib.get_tokens():
        if not token.flags & pkcs11.TokenFlag.TOKEN_INITIALIZED:
            continue
        is_issuing = "issuing" in token.label
        issuing = token.label if is_issuing else issuing
        pin = pins["issuing-user.pin"] if is_issuing else pins["user.pin"]
        with token.open(user_pin=pin) as session:
            for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY):
                for obj in session.get_objects({Attribute.CLASS: cls}):
                    label = obj[Attribute.LABEL]
                    try:
                        value = bytes(obj[Attribute.VALUE])
                    except (p11e.AttributeSensitive, p11e.AttributeTypeInvalid):
                        refused += 1
                        continue
                    secrets[f"token {token.label} {cls.name} {label}"] = value.hex()
    return refused, issuing


def _batch_keys(workdir: Path, token_label: str, pin: str, secrets: dict[str, str]) -> None:
    from pki.batch.batchdir import read_batch, read_line
    from pki.hsm.pkcs11 import open_backend

    info = read_batch(workdir / "batch")
    os.environ["NUSEC_HSM_PIN"] = pin
    with open_backend(f"pkcs11:token={token_label}") as backend:
        kek = backend.find_secret_key(info.kek_label)
        assert kek is not None
        secrets["batch seed"] = backend.unwrap_bytes(kek, info.wrapped_seed).hex()
        dek = backend.unwrap_bytes(kek, info.wrapped_dek)
    secrets["batch DEK"] = dek.hex()
    for index in range(info.count):
        line = read_line(info, index)
        secrets[f"batch board {index} secure-boot key"] = _scalar(
            aes_key_unwrap_with_padding(dek, line.wrapped_key)
        )


if __name__ == "__main__":
    print(json.dumps(collect(Path(sys.argv[1]))))
