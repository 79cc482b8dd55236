"""Everything a run checks before it opens a board: local inputs, then the service itself.

Why a separate phase: a board must never be touched on the strength of an input that could have
been refused on the desk. So the server URL, the firmware (as the format it claims), the TLS
files and the ``--ca`` anchor are checked first, each failure one line naming the file, and then
the service is authenticated (HTTPS, its certificate chaining to ``--ca``, hostname checked, its
RootCA byte-equal to ours) before any probe is opened. Plain HTTP is accepted only to a loopback
address and only with ``--insecure-dev``, refused before any connection otherwise.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import socket
import ssl
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from nuboard import layout
from nucore import mcuboot
from nusec.provision import certs
from nusec.provision.errors import UsageError

if TYPE_CHECKING:
    from nusec.provision.client import TlsConfig

log = logging.getLogger(__name__)

#: What a raw Cortex-M image must start with (the same rule the service applies, docs/firmware-image.md).
SP_RANGE = (0x1000_0000, 0x4000_0000)
#: The application slot the firmware runs from (docs/firmware-image.md; ``nusec.provision.firmware``).
FLASH_BASE = layout.APP_BASE  # the application slot NuBL2 verifies
SLOT_SIZE = layout.APP_SLOT_SIZE
TLV_RESERVE = 0x400


def is_loopback_host(host: str) -> bool:
    """True for a loopback IP literal, or ``localhost`` when every address it resolves to is one."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    if host.lower() != "localhost":
        return False
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_server_url(url: str, *, insecure_dev: bool) -> str:
    """The service URL, or ``UsageError``: https, or http to loopback with ``--insecure-dev``."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(f"--server must be an https:// URL, got {url!r}")
    if parts.scheme == "http":
        if not insecure_dev:
            raise UsageError(
                f"--server {url}: plain HTTP authenticates nobody; use https:// "
                "(http:// is accepted only to a loopback address with --insecure-dev)"
            )
        if not is_loopback_host(parts.hostname):
            raise UsageError(
                f"--server {url}: --insecure-dev allows plain HTTP to a loopback address only, "
                f"not to {parts.hostname}"
            )
    return url.rstrip("/")


@dataclass(frozen=True)
class FirmwareInput:
    """The firmware file as read and checked once: its bytes and their SHA-256."""

    path: Path
    data: bytes
    kind: str  # "raw" | "mcuboot"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def check_firmware(path: Path, header_size: int = 0x400) -> FirmwareInput:
    """Read ``--firmware`` and check it is what it claims: an unsigned MCUboot image (magic,
    consistent header) or a raw Cortex-M binary (vector table, reset vector inside the image)."""
    if path.is_dir():
        raise UsageError(f"--firmware {path} is a directory, not a firmware file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"firmware file {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"--firmware {path}: cannot read it: {exc.strerror or exc}") from None
    if not data:
        raise UsageError(f"--firmware {path} is empty")
    if mcuboot.is_image(data):
        _check_mcuboot(path, data)
        return FirmwareInput(path, data, "mcuboot")
    if header_size < 32 or header_size % 4:
        raise UsageError(f"--header-size {header_size} must be a multiple of 4 and at least 32")
    _check_raw(path, data, FLASH_BASE + header_size, SLOT_SIZE - header_size - TLV_RESERVE)
    return FirmwareInput(path, data, "raw")


def _check_mcuboot(path: Path, data: bytes) -> None:
    try:
        header = mcuboot.parse_header(data)
    except mcuboot.McubootError as exc:
        raise UsageError(f"--firmware {path}: {exc}") from None
    if header.header_size % 4:
        size = header.header_size
        raise UsageError(f"--firmware {path}: MCUboot header size {size} is not a multiple of 4")
    if header.protected_tlv_size or header.flags:
        raise UsageError(f"--firmware {path}: MCUboot image with protected TLVs or flags is not supported")
    _check_raw(path, data[header.header_size : header.body_end], None, SLOT_SIZE)


def _check_raw(path: Path, body: bytes, load_addr: int | None, max_size: int) -> None:
    if len(body) < 8:
        raise UsageError(f"--firmware {path}: {len(body)} bytes cannot hold a Cortex-M vector table")
    if len(body) > max_size:
        raise UsageError(f"--firmware {path}: {len(body)} bytes do not fit the {max_size}-byte slot")
    sp, reset = struct.unpack_from("<II", body)
    if not (SP_RANGE[0] <= sp <= SP_RANGE[1] and sp % 4 == 0) or not reset & 1 or reset >= SP_RANGE[1]:
        raise UsageError(
            f"--firmware {path} does not start with a Cortex-M vector table "
            f"(initial SP 0x{sp:08X}, reset vector 0x{reset:08X})"
        )
    if load_addr is not None and not load_addr <= (reset & ~1) < load_addr + len(body):
        raise UsageError(
            f"--firmware {path}: reset vector 0x{reset:08X} lies outside the image "
            f"(0x{load_addr:08X}..0x{load_addr + len(body):08X}): truncated, or linked elsewhere"
        )


def load_anchor(ca: Path | None) -> x509.Certificate:
    """The self-signed RootCA in ``--ca`` (the trust anchor of everything)."""
    if ca is None:
        raise UsageError("--ca FILE (the RootCA certificate, PEM) is required: it is the trust anchor")
    if not ca.is_file():
        raise UsageError(f"--ca {ca} does not exist")
    try:
        found = x509.load_pem_x509_certificates(ca.read_bytes())
    except (ValueError, OSError):
        raise UsageError(f"--ca {ca} holds no readable PEM certificate") from None
    roots = [c for c in found if c.issuer == c.subject]
    if not roots:
        raise UsageError(f"--ca {ca} holds no self-signed RootCA certificate")
    return roots[0]


def client_context(ca: Path, client_cert: Path | None, client_key: Path | None) -> ssl.SSLContext:
    """The TLS client context, each file checked on its own so an error names the one at fault."""
    if (client_cert is None) != (client_key is None):
        raise UsageError("--client-cert and --client-key go together (the operator's mTLS pair)")
    for flag, p in (("--client-cert", client_cert), ("--client-key", client_key)):
        if p is not None and not p.is_file():
            raise UsageError(f"{flag} {p} does not exist")
    try:
        ctx = ssl.create_default_context(cafile=str(ca))
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(f"--ca {ca}: not a usable CA bundle ({_why(exc)})") from None
    if client_cert is not None and client_key is not None:
        try:
            x509.load_pem_x509_certificate(client_cert.read_bytes())
        except (ValueError, OSError):
            raise UsageError(f"--client-cert {client_cert} is not a PEM certificate") from None
        try:
            serialization.load_pem_private_key(client_key.read_bytes(), password=None)
        except TypeError:
            raise UsageError(f"--client-key {client_key} is encrypted; give an unencrypted key") from None
        except (ValueError, OSError, UnsupportedAlgorithm):
            raise UsageError(f"--client-key {client_key} is not a PEM private key") from None
        try:
            ctx.load_cert_chain(str(client_cert), str(client_key))
        except (ssl.SSLError, OSError) as exc:
            raise UsageError(
                f"--client-key {client_key} does not belong to --client-cert {client_cert} ({_why(exc)})"
            ) from None
    return ctx


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return getattr(exc, "strerror", None) or type(exc).__name__


#: TLS alerts a server sends when it rejects the client's certificate.
CLIENT_CERT_ALERTS = (
    "CERTIFICATE_REQUIRED",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "CERTIFICATE_UNKNOWN",
    "CERTIFICATE_REVOKED",
    "CERTIFICATE_EXPIRED",
    "ACCESS_DENIED",
    "DECRYPT_ERROR",
    "HANDSHAKE_FAILURE",
)


def explain_transport_error(exc: BaseException, url: str, ca: Path | None, client_cert: Path | None) -> str:
    """One line saying what a failed connection means for an operator."""
    text = f"{type(exc).__name__}: {exc}"
    cause: BaseException | None = exc
    while cause is not None:
        text += f" {cause}"
        cause = cause.__cause__ or cause.__context__
    upper = text.upper()
    if "CERTIFICATE_VERIFY_FAILED" in upper or "HOSTNAME MISMATCH" in upper or "IP ADDRESS MISMATCH" in upper:
        detail = (
            "its name does not match its certificate" if "MISMATCH" in upper else "certificate verify failed"
        )
        return f"the service at {url} is not authenticated by --ca {ca}: {detail}"
    if client_cert is not None and any(a in upper for a in CLIENT_CERT_ALERTS):
        return f"the service at {url} refused this client certificate (--client-cert {client_cert})"
    if client_cert is not None and ("DISCONNECTED" in upper or "CONNECTION RESET" in upper or "EOF" in upper):
        return (
            f"the service at {url} closed the TLS connection before answering: "
            f"it most likely refused this client certificate (--client-cert {client_cert})"
        )
    return f"service at {url} unreachable: {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Preflight:
    """What the up-front checks proved: the anchor, the firmware, the checked chain from the service."""

    anchor: x509.Certificate
    firmware: FirmwareInput
    chain: certs.Chain


def authenticate_service(
    url: str,
    tls: TlsConfig,
    anchor: x509.Certificate,
    *,
    insecure_dev: bool = False,
    context: ssl.SSLContext | None = None,
) -> certs.Chain:
    """GET the CA chain over the authenticated connection and check it against the anchor."""
    from nusec.provision.client import ServiceClient

    with ServiceClient(url, tls, insecure_dev=insecure_dev, context=context, timeout=30.0) as client:
        ans = client.ca_chain()
    return certs.check_chain(anchor, ans.root_pem, ans.ica_pem)
