"""The flow's building blocks against oracles nobody here wrote: imgtool (MCUboot images),
``openssl req -verify`` (CSRs), cryptography (certificates), plus the journal's resume rules."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import NameOID

from nusec.provision import certs, csr
from nusec.provision.errors import VerificationError
from nusec.provision.firmware import verify_mcuboot_image
from nusec.provision.journal import Journal, JournalError
from pki.ca.profiles import board_subject
from tests.tools import tool

IMGTOOL = tool("imgtool")
UID = bytes.fromhex("00112233445566778899AABB")


def _xy(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )[1:]


@pytest.fixture(scope="module")
def imgtool_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    d = tmp_path_factory.mktemp("img")
    key = ec.generate_private_key(ec.SECP256R1())
    (d / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    body = (0x20110000).to_bytes(4, "little") + (0x00100041).to_bytes(4, "little") + bytes(range(256)) * 8
    (d / "raw.bin").write_bytes(body)
    args = ["--key", str(d / "k.pem"), "--header-size", "0x20", "--pad-header", "--align", "4"]
    args += ["--version", "1.2.3", "--slot-size", "0x40000", str(d / "raw.bin"), str(d / "signed.bin")]
    subprocess.run([str(IMGTOOL), "sign", *args], check=True, capture_output=True)
    return (d / "signed.bin").read_bytes(), key


def test_imgtool_image_verifies(imgtool_image: tuple[bytes, ec.EllipticCurvePrivateKey]) -> None:
    image, key = imgtool_image
    info = verify_mcuboot_image(image, _xy(key))
    assert info.version == "1.2.3+0" and info.header_size == 0x20


@pytest.mark.parametrize("offset", [0x10, 0x40, -40])
def test_altered_image_is_refused(
    imgtool_image: tuple[bytes, ec.EllipticCurvePrivateKey], offset: int
) -> None:
    image, key = imgtool_image
    bad = bytearray(image)
    bad[offset] ^= 0x01
    with pytest.raises(VerificationError):
        verify_mcuboot_image(bytes(bad), _xy(key))


def test_image_for_another_key_is_refused(imgtool_image: tuple[bytes, ec.EllipticCurvePrivateKey]) -> None:
    image, _ = imgtool_image
    with pytest.raises(VerificationError, match=r"another key|does not verify"):
        verify_mcuboot_image(image, _xy(ec.generate_private_key(ec.SECP256R1())))


def _board_signer(key: ec.EllipticCurvePrivateKey):  # type: ignore[no-untyped-def]
    def sign(info: bytes) -> bytes:
        r, s = utils.decode_dss_signature(key.sign(info, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def test_csr_from_board_signature_passes_openssl(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    _info, req = csr.sign_and_assemble(UID, key.public_key(), _board_signer(key))
    path = tmp_path / "b.csr"
    path.write_bytes(req.public_bytes(serialization.Encoding.PEM))
    out = subprocess.run(
        ["openssl", "req", "-in", str(path), "-noout", "-verify"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "verify OK" in (out.stdout + out.stderr)
    assert req.subject == board_subject(UID)


def test_csr_signed_by_another_key_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(VerificationError, match="does not verify"):
        csr.sign_and_assemble(UID, key.public_key(), _board_signer(other))


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(1).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=9))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return key, cert


def _issue(
    issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], subject: x509.Name, pub: object, ca: bool
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer[1].subject).public_key(pub)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=9))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .sign(issuer[0], hashes.SHA256())
    )  # fmt: skip


def _pem(c: x509.Certificate) -> str:
    return c.public_bytes(serialization.Encoding.PEM).decode()


def test_chain_and_board_certificate_checks() -> None:
    root = _ca("Root")
    ica_key = ec.generate_private_key(ec.SECP256R1())
    ica = _issue(
        root, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ICA")]), ica_key.public_key(), True
    )
    chain = certs.check_chain(root[1], _pem(root[1]), _pem(ica))
    board_key = ec.generate_private_key(ec.SECP256R1())
    good = _issue((ica_key, ica), board_subject(UID), board_key.public_key(), False)
    certs.check_board_cert(chain, _pem(good), UID, b"\x04" + _xy(board_key))
    ok, msg = certs.openssl_verify(root[1], ica, good)
    assert ok, msg
    # forged chain: a different root presenting itself
    fake = _ca("Root")
    with pytest.raises(VerificationError, match="not the RootCA this tool trusts"):
        certs.check_chain(root[1], _pem(fake[1]), _pem(ica))
    # certificate for another UID, and for another key
    other_uid = _issue((ica_key, ica), board_subject(b"\x01" * 12), board_key.public_key(), False)
    with pytest.raises(VerificationError, match="for UID 0101"):
        certs.check_board_cert(chain, _pem(other_uid), UID, b"\x04" + _xy(board_key))
    with pytest.raises(VerificationError, match="identity key"):
        certs.check_board_cert(chain, _pem(good), UID, b"\x04" + _xy(ec.generate_private_key(ec.SECP256R1())))
    # issued by a look-alike ICA
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = _issue(fake, ica.subject, rogue_key.public_key(), True)
    forged = _issue((rogue_key, rogue), board_subject(UID), board_key.public_key(), False)
    with pytest.raises(VerificationError, match="not signed by its issuer"):
        certs.check_board_cert(chain, _pem(forged), UID, b"\x04" + _xy(board_key))


def test_journal_resumes_at_first_unfinished_step(tmp_path: Path) -> None:
    with Journal(tmp_path, UID) as j:
        assert j.first_unfinished() == "register"
        j.start("register")
        j.done("register", {"state": "registered"})
        j.start("ca_chain")
    with Journal(tmp_path, UID) as j:
        assert j.is_done("register") and j.first_unfinished() == "ca_chain"
        assert j.data("register") == {"state": "registered"}
        assert j.attempt("ca_chain") == 1
    with (tmp_path / UID.hex().upper() / "journal.jsonl").open("a") as fh:
        fh.write(json.dumps({"step": "ca_chain", "event": "done", "data": {}})[:20])  # torn by a power cut
    with Journal(tmp_path, UID) as j:
        assert j.first_unfinished() == "ca_chain"


def test_journal_keeps_two_runs_off_one_board(tmp_path: Path) -> None:
    with Journal(tmp_path, UID), pytest.raises(JournalError, match="another run"), Journal(tmp_path, UID):
        pass
