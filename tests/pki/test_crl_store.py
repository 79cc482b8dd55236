"""CRLs signed in SoftHSM2 (checked by openssl and pkilint's CLI) and the SQLAlchemy store."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pki import store
from pki.ca import RevokedEntry, issue_board_certificate, issue_crl
from pki.errors import CaError, StoreError
from tests.pki.conftest import Chain, openssl

LINT_CRL = Path(sys.executable).parent / "lint_crl"


def uid(i: int) -> bytes:
    return i.to_bytes(12, "big")


def p256() -> ec.EllipticCurvePublicKey:
    return ec.generate_private_key(ec.SECP256R1()).public_key()


def test_crl_revokes_board_for_openssl(chain: Chain, tmp_path: Path) -> None:
    good = issue_board_certificate(chain.ica, uid(1), p256())
    bad = issue_board_certificate(chain.ica, uid(2), p256())
    crl = issue_crl(
        chain.ica,
        [RevokedEntry(bad.serial_number, dt.datetime.now(dt.UTC), x509.ReasonFlags.key_compromise)],
        crl_number=1,
    )
    crl_path = tmp_path / "ica.crl"
    crl_path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    res = openssl("crl", "-in", crl_path, "-noout", "-CAfile", chain.ica_pem)
    assert res.returncode == 0 and "verify OK" in res.stdout + res.stderr, res.stdout + res.stderr
    for cert, ok in ((good, True), (bad, False)):
        path = chain.write(f"{cert.serial_number}.pem", cert)
        res = openssl(
            "verify",
            "-crl_check",
            "-CAfile",
            chain.root_pem,
            "-untrusted",
            chain.ica_pem,
            "-CRLfile",
            crl_path,
            path,
        )
        assert (res.returncode == 0) is ok, res.stdout + res.stderr
        if not ok:
            assert "revoked" in (res.stdout + res.stderr).lower()
    lint = subprocess.run(
        [str(LINT_CRL), "lint", "-t", "CRL", "-p", "PKIX", "-s", "ERROR", str(crl_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1


def test_empty_crl_and_bad_number(chain: Chain) -> None:
    crl = issue_crl(chain.ica, [], crl_number=7)
    assert len(crl) == 0
    assert crl.is_signature_valid(chain.ica.certificate.public_key())  # type: ignore[arg-type]
    with pytest.raises(CaError):
        issue_crl(chain.ica, [], crl_number=-1)


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = store.make_engine(f"sqlite:///{tmp_path / 'pki.db'}")
    store.create_schema(engine)
    return store.make_sessions(engine)


def test_store_records_and_revokes(chain: Chain, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        board = store.register_board(s, uid(5))
        assert store.register_board(s, uid(5)).id == board.id
        cert = issue_board_certificate(chain.ica, uid(5), p256())
        row = store.record_certificate(s, cert, "board-identity", board_uid=uid(5))
        assert row.serial == format(cert.serial_number, "x")
        with pytest.raises(StoreError, match="already recorded"):
            store.record_certificate(s, cert, "board-identity", board_uid=uid(5))
        with pytest.raises(StoreError, match="not registered"):
            store.record_certificate(
                s, issue_board_certificate(chain.ica, uid(6), p256()), "board-identity", uid(6)
            )
    with sessions.begin() as s:
        assert store.get_board(s, uid(5)) is not None
        assert [c.certificate() for c in store.certificates_for_board(s, uid(5))] == [cert]
        rev = store.revoke_certificate(s, cert.serial_number, x509.ReasonFlags.key_compromise)
        assert store.revoke_certificate(s, cert.serial_number).id == rev.id
        with pytest.raises(StoreError, match="no certificate"):
            store.revoke_certificate(s, 12345)
        entries = store.revoked_entries(s)
        assert [e.serial for e in entries] == [cert.serial_number]
        number = store.next_crl_number(s)
        assert number == 1
        crl = issue_crl(chain.ica, entries, crl_number=number)
        store.record_crl(s, crl)
        assert store.next_crl_number(s) == 2
        with pytest.raises(StoreError, match="already used"):
            store.record_crl(s, crl)
    revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert revoked is not None
    assert (
        revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
        is x509.ReasonFlags.key_compromise
    )


def test_concurrent_issuance_no_duplicates(chain: Chain, sessions: sessionmaker[Session]) -> None:
    """8 threads register + certify boards through one HSM backend and one SQLite file."""
    lock_free_errors: list[BaseException] = []
    count = 48

    def work(i: int) -> int:
        try:
            cert = issue_board_certificate(chain.ica, uid(1000 + i), p256())
            with sessions.begin() as s:
                store.register_board(s, uid(1000 + i))
                store.register_board(s, uid(1000 + i))
                store.record_certificate(s, cert, "board-identity", uid(1000 + i))
            return cert.serial_number
        except BaseException as exc:  # pragma: no cover - reported below
            lock_free_errors.append(exc)
            raise

    with ThreadPoolExecutor(8) as pool:
        serials = list(pool.map(work, range(count)))
    assert not lock_free_errors
    assert len(set(serials)) == count
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(store.IssuedCertificate)) == count
        assert s.scalar(select(func.count()).select_from(store.Board)) == count


def test_register_board_race(sessions: sessionmaker[Session]) -> None:
    barrier = threading.Barrier(6)

    def reg(_: int) -> int:
        barrier.wait()
        with sessions.begin() as s:
            return store.register_board(s, uid(77)).id

    with ThreadPoolExecutor(6) as pool:
        ids = set(pool.map(reg, range(6)))
    assert len(ids) == 1


def test_make_engine_default_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(store.DB_URL_ENV, raising=False)
    engine = store.make_engine()
    store.create_schema(engine)
    assert (tmp_path / "nusec-pki.db").is_file()
    monkeypatch.setenv(store.DB_URL_ENV, f"sqlite:///{tmp_path / 'other.db'}")
    store.create_schema(store.make_engine())
    assert (tmp_path / "other.db").is_file()
