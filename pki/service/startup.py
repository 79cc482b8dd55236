"""Start-up checks of ``nusec serve``: every input proven before anything is created or migrated.

Why: a service that half-starts leaves debris (a created and migrated database, an opened HSM
session) and a traceback where one line would do. So the TLS pair, the CA files, the database
URL and its folder, the HSM key and the listen port are each checked here first, read-only,
and the first failure is a ``ConfigError`` naming the setting and the file. Nothing here creates
a file, a table or a key; ``server.open_context`` does that afterwards.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import ssl
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from pki.service.config import ConfigError, ServiceConfig

log = logging.getLogger(__name__)


def check_startup(config: ServiceConfig, environ: Mapping[str, str] | None = None) -> None:
    """Check everything ``nusec serve`` needs, in order, without changing anything."""
    config.validate(environ)
    _check_certificates(config)
    if not config.insecure_dev:
        _check_tls_pair(config)
    _check_database(config.db_url)
    _check_hsm(config)
    _check_port(config.host, config.port)


def _check_certificates(config: ServiceConfig) -> None:
    from pki.service.server import load_certificate

    root = load_certificate(config.root_cert, "root_cert")
    ica = load_certificate(config.ica_cert, "ica_cert")
    try:
        ica.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ConfigError(
            f"ica_cert {config.ica_cert} is not issued by root_cert {config.root_cert} ({type(exc).__name__})"
        ) from None


def _check_tls_pair(config: ServiceConfig) -> None:
    assert config.tls_cert is not None and config.tls_key is not None
    from pki.service.server import load_certificate

    load_certificate(config.tls_cert, "tls_cert")
    try:
        serialization.load_pem_private_key(config.tls_key.read_bytes(), password=None)
    except TypeError:
        raise ConfigError(f"tls_key {config.tls_key} is encrypted; give an unencrypted PEM key") from None
    except (ValueError, OSError, UnsupportedAlgorithm):
        raise ConfigError(f"tls_key {config.tls_key} is not a PEM private key") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    except ssl.SSLError as exc:
        raise ConfigError(
            f"tls_key {config.tls_key} does not belong to tls_cert {config.tls_cert} ({exc.reason or exc})"
        ) from None


def _check_database(url: str) -> None:
    """The URL parses; a SQLite file's folder exists and is writable (the file itself may not exist
    yet: it is created at start). Other databases are reached once (a connection, no statement)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"db_url: {url!r} is not an SQLAlchemy URL") from None
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database or ""
        if db in ("", ":memory:") or db.startswith("file:"):
            return
        folder = Path(db).resolve().parent
        if not folder.is_dir():
            raise ConfigError(f"db_url: folder {folder} of the SQLite database does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"db_url: folder {folder} of the SQLite database is not writable")
        return
    from sqlalchemy import create_engine

    try:
        engine = create_engine(parsed)
    except (NoSuchModuleError, ArgumentError) as exc:
        raise ConfigError(f"db_url: {parsed.render_as_string(hide_password=True)}: {exc}") from None
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        first = str(orig if orig is not None else exc).strip().splitlines()
        why = first[0] if first else type(exc).__name__
        raise ConfigError(
            f"db_url: cannot connect to {parsed.render_as_string(hide_password=True)}: {why}"
        ) from None
    finally:
        engine.dispose()


def _check_hsm(config: ServiceConfig) -> None:
    """The ICA key is in the HSM and matches the ICA certificate (a session opened and closed)."""
    from pki.ca import Issuer
    from pki.hsm.pkcs11 import open_backend
    from pki.hsm.uri import parse_pkcs11_uri
    from pki.nubl2 import Nubl2Error, load_signed_nubl2
    from pki.service.server import load_certificate

    label = parse_pkcs11_uri(config.hsm_uri).object
    assert label is not None  # validate() checked it
    ica = load_certificate(config.ica_cert, "ica_cert")
    try:
        backend = open_backend(config.hsm_uri)
    except Exception as exc:  # PkiError, or the PKCS#11 library's own (bad PIN, no token)
        raise ConfigError(f"hsm_uri: cannot open the HSM: {type(exc).__name__}: {exc}") from None
    try:
        Issuer(backend, label, ica).check()
    except Exception as exc:  # CaError, or the key is missing on the token
        backend.close()
        raise ConfigError(f"hsm_uri: ICA key {label!r}: {type(exc).__name__}: {exc}") from None
    try:
        if config.nubl2_image is not None:
            load_signed_nubl2(config.nubl2_image, backend.public_key, config.nubl2_key_label)
    except Nubl2Error as exc:
        raise ConfigError(str(exc)) from None
    finally:
        backend.close()


def _check_port(host: str, port: int) -> None:
    """The address can be bound now (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port: {host}:{port} is already in use (another service running?)") from None
        raise ConfigError(f"port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
