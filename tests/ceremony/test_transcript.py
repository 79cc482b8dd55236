"""The transcript's hash chain and closing signature: any edit, removal or swap is detected.

The signer here is an in-memory key (the transcript logic does not care where the key lives);
the HSM-signed transcript is checked in test_run.py.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import NameOID

from ceremony.errors import TranscriptError
from ceremony.transcript import TranscriptWriter, canonical, spki_sha256, verify_transcript


def _signer(key: ec.EllipticCurvePrivateKey):  # type: ignore[no-untyped-def]
    return lambda digest: key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def _write(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey | None = None
) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    out = tmp_path / "out.pem"
    out.write_bytes(b"public output\n")
    t = TranscriptWriter(tmp_path / "t.jsonl", operator="Alice", witnesses=["Bob"])
    t.append("open", {"kind": "ceremony", "rehearsal": True})
    t.append("root_key", {"label": "root", "spki_sha256": spki_sha256(key.public_key())})
    t.append("root_cert", {"cert_sha256": "00"}, outputs={"out": out})
    t.close(_signer(key), key.public_key(), {"steps": 3})
    return tmp_path / "t.jsonl", key


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_good_transcript_verifies_with_chain_signature_and_outputs(tmp_path: Path) -> None:
    path, _ = _write(tmp_path)
    report = verify_transcript(path)
    assert report.steps == ["open", "root_key", "root_cert", "close"]
    assert report.rehearsal is True
    assert list(report.outputs_checked) == ["out.pem"]
    first = json.loads(_lines(path)[0])
    assert first["prev"] == "0" * 64 and first["operator"] == "Alice" and first["witnesses"] == ["Bob"]


def test_tampered_middle_line_breaks_the_chain(tmp_path: Path) -> None:
    path, _ = _write(tmp_path)
    lines = _lines(path)
    obj = json.loads(lines[1])
    obj["data"]["label"] = "evil"
    lines[1] = canonical(obj)
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(TranscriptError, match="hash chain broken at line 3"):
        verify_transcript(path)


def test_whitespace_edit_is_detected(tmp_path: Path) -> None:
    path, _ = _write(tmp_path)
    lines = _lines(path)
    lines[0] = lines[0].replace(b'"seq":0', b'"seq": 0')
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(TranscriptError, match=r"line 1 is not in canonical form|hash chain broken"):
        verify_transcript(path)


def test_tampered_closing_line_fails_the_signature(tmp_path: Path) -> None:
    path, _ = _write(tmp_path)
    lines = _lines(path)
    obj = json.loads(lines[-1])
    obj["data"]["steps"] = 99
    lines[-1] = canonical(obj)
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(TranscriptError, match="closing signature does not verify"):
        verify_transcript(path)


def test_removed_line_and_truncation_are_detected(tmp_path: Path) -> None:
    path, _ = _write(tmp_path)
    lines = _lines(path)
    path.write_bytes(b"\n".join(lines[:1] + lines[2:]) + b"\n")
    with pytest.raises(TranscriptError, match="sequence number"):
        verify_transcript(path)
    path.write_bytes(b"\n".join(lines[:-1]) + b"\n")
    with pytest.raises(TranscriptError, match="not closed"):
        verify_transcript(path)


def test_resigned_by_another_key_is_detected(tmp_path: Path) -> None:
    """An attacker who rewrites the closing line must sign with a key other than the root's."""
    path, _ = _write(tmp_path)
    lines = _lines(path)
    other = ec.generate_private_key(ec.SECP256R1())
    obj = json.loads(lines[-1])
    del obj["signature"]
    obj["signer_spki"] = base64.b64encode(
        other.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    import hashlib

    sig = other.sign(hashlib.sha256(canonical(obj)).digest(), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    obj["signature"] = base64.b64encode(sig).decode()
    lines[-1] = canonical(obj)
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(TranscriptError, match="key other than the recorded root key"):
        verify_transcript(path)


def test_changed_or_missing_output_is_detected(tmp_path: Path) -> None:
    path, _ = _write(tmp_path)
    (tmp_path / "out.pem").write_bytes(b"swapped\n")
    with pytest.raises(TranscriptError, match=r"output out\.pem differs"):
        verify_transcript(path)
    assert verify_transcript(path, check_outputs=False).lines == 4
    (tmp_path / "out.pem").unlink()
    with pytest.raises(TranscriptError, match=r"output out\.pem .* is missing"):
        verify_transcript(path)


def test_pinned_root_certificate_must_hold_the_signer(tmp_path: Path) -> None:
    path, key = _write(tmp_path)

    def cert_for(k: ec.EllipticCurvePrivateKey) -> Path:
        import datetime as dt

        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "r")])
        now = dt.datetime.now(dt.UTC)
        c = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(k.public_key())
            .serial_number(1)
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(k, hashes.SHA256())
        )
        p = tmp_path / f"root-{id(k)}.pem"
        p.write_bytes(c.public_bytes(serialization.Encoding.PEM))
        return p

    verify_transcript(path, root_cert=cert_for(key))
    with pytest.raises(TranscriptError, match="signed by a key other than the one in"):
        verify_transcript(path, root_cert=cert_for(ec.generate_private_key(ec.SECP256R1())))


def test_writer_never_overwrites(tmp_path: Path) -> None:
    path, _ = _write(tmp_path)
    with pytest.raises(FileExistsError):
        TranscriptWriter(path, operator="x", witnesses=["y"])


def test_garbage_is_one_line_error(tmp_path: Path) -> None:
    p = tmp_path / "g.jsonl"
    p.write_bytes(b"not json\n")
    with pytest.raises(TranscriptError, match="line 1 is not valid JSON"):
        verify_transcript(p)
    with pytest.raises(TranscriptError, match="cannot read transcript"):
        verify_transcript(tmp_path / "missing.jsonl")
