"""Which token holds which kind of key: the on-token ceremony records, and the check that keeps a
root key off the token the online service signs with.

Why on the token: a ceremony's outputs folder can be copied or lost, but the token itself is what
``nusec serve`` opens. Each finished ceremony leaves a public, unmodifiable ``CKO_DATA`` object
(label ``nusec-ceremony-<id>``, application ``nusec``) naming the keys it made and their roles;
a later ceremony refuses a token that already holds a finished one, and the service refuses to
start on a token holding a key recorded as a root key (or any key matching its root certificate).
Records hold labels and public-key fingerprints only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pki.errors import HsmError
from pki.hsm.pkcs11 import Pkcs11Backend

RECORD_PREFIX = "nusec-ceremony-"
ROOT = "root"


class RootKeyOnlineError(HsmError):
    """The token meant for the online service holds a root key."""


def spki_sha256(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class CeremonyRecord:
    """One finished ceremony as recorded on a token."""

    label: str
    kind: str
    name: str
    #: label -> {"role": ..., "spki_sha256": ...}
    keys: dict[str, dict[str, str]]
    transcript_sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "kind": self.kind,
            "name": self.name,
            "keys": self.keys,
            "transcript_sha256": self.transcript_sha256,
        }


def write_ceremony_record(
    backend: Pkcs11Backend, *, kind: str, name: str, keys: dict[str, dict[str, str]], transcript_sha256: str
) -> CeremonyRecord:
    """Leave the record of a finished ceremony on ``backend``'s token."""
    label = RECORD_PREFIX + transcript_sha256[:16]
    record = CeremonyRecord(label, kind, name, keys, transcript_sha256)
    body = {k: v for k, v in record.as_dict().items() if k != "label"}
    backend.put_record(label, json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    return record


def ceremony_records(backend: Pkcs11Backend) -> list[CeremonyRecord]:
    """Every ceremony record on the token (an unreadable one is an error, not skipped)."""
    out = []
    for label, value in sorted(backend.records().items()):
        if not label.startswith(RECORD_PREFIX):
            continue
        try:
            body = json.loads(value)
            out.append(
                CeremonyRecord(
                    label,
                    str(body["kind"]),
                    str(body["name"]),
                    {str(k): {str(a): str(b) for a, b in v.items()} for k, v in body["keys"].items()},
                    str(body["transcript_sha256"]),
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise HsmError(
                f"ceremony record {label!r} on token {backend.token_label!r} is unreadable"
            ) from None
    return out


def issuer_urls(backend: Pkcs11Backend, label: str) -> tuple[str | None, str | None]:
    """(CRL distribution point, AIA caIssuers URL) the newest ceremony record gives for the CA
    key ``label`` on this token (a ceremony config's ``ica.crl_url``/``ica.issuer_url``), so
    every later issuer with that key puts them into the certificates it issues."""
    crl_url = issuer_url = None
    for record in ceremony_records(backend):
        info = record.keys.get(label)
        if info is not None:
            crl_url = info.get("crl_url") or crl_url
            issuer_url = info.get("issuer_url") or issuer_url
    return crl_url, issuer_url


def root_keys_on_token(
    backend: Pkcs11Backend, root_public_key: ec.EllipticCurvePublicKey | None = None
) -> list[str]:
    """Labels of private keys on the token that are root keys: recorded as such by a ceremony
    (and still present), or whose public key is ``root_public_key``."""
    labels = set(backend.list_labels())
    found = {
        label
        for record in ceremony_records(backend)
        for label, info in record.keys.items()
        if info.get("role") == ROOT and label in labels
    }
    if root_public_key is not None:
        want = spki_sha256(root_public_key)
        for label in labels:
            pair = backend.find_ec_keypair(label)
            if pair is not None and spki_sha256(pair.public_key) == want:
                found.add(label)
    return sorted(found)


def refuse_root_key_online(backend: Pkcs11Backend, root_public_key: ec.EllipticCurvePublicKey | None) -> None:
    """``RootKeyOnlineError`` (one line) if the token holds a root key: the root stays offline."""
    found = root_keys_on_token(backend, root_public_key)
    if found:
        raise RootKeyOnlineError(
            f"token {backend.token_label!r} holds root key {found[0]!r}: the online service must use a"
            " token without the root key (the issuing token from the ceremony's issuing_hsm)"
        )


def check_service_token(hsm_uri: str, root_cert: Path) -> None:
    """Before the online service starts: open the token ``hsm_uri`` names, run the ``service``
    preflight (``pki.hsm.preflight``), and refuse the token (``RootKeyOnlineError``) if it holds
    a key recorded as a root key or the key of ``root_cert``. Each failure is one line."""
    from cryptography import x509

    from pki.hsm.preflight import require

    try:
        cert = x509.load_pem_x509_certificate(root_cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise HsmError(f"cannot load root certificate {root_cert}: {exc}") from None
    key = cert.public_key()
    with Pkcs11Backend.from_uri(hsm_uri) as backend:
        refuse_root_key_online(backend, key if isinstance(key, ec.EllipticCurvePublicKey) else None)
        require(backend, "service")
