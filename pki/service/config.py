"""What a running OEM service needs: HSM, CA material, database, TLS files, listen address.

Validated completely (``ServiceConfig.validate``) before the HSM is opened or a socket bound, so
a typo fails with one line naming the field instead of half-starting a service.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pki.errors import PkiError
from pki.hsm.uri import PIN_ENV, PIN_FILE_ENV, parse_pkcs11_uri

DEFAULT_DB_URL = "sqlite:///nusec-service.db"
DEFAULT_PORT = 8443
DEFAULT_MAX_FIRMWARE_BYTES = 2 * 1024 * 1024
#: Seconds a "not revoked" answer for a client certificate may be reused (docs/service-api.md).
DEFAULT_CLIENT_REVOCATION_TTL = 5.0
MAX_CLIENT_REVOCATION_TTL = 300.0
#: Request bodies above this size count as uploads and go through the upload cap.
LARGE_BODY_BYTES = 64 * 1024
#: Uploads processed at once; more wait (unread, so TCP flow control holds them back).
DEFAULT_MAX_CONCURRENT_UPLOADS = 2
#: Seconds a client has to send a whole body once it started (slow senders would hold a slot).
DEFAULT_BODY_TIMEOUT = 60.0
#: Copies of an upload alive at its peak (body, signed image, stored answer, response buffers).
UPLOAD_COPIES = 12
#: Seconds an in-progress idempotency record stays claimed without a heartbeat from its worker.
DEFAULT_IDEMPOTENCY_LEASE = 30.0
#: Seconds a stored idempotent answer is kept (then a retry with the same key runs afresh).
DEFAULT_IDEMPOTENCY_RETENTION = 24 * 3600.0
#: The audit chain gets a signed checkpoint every this many rows ...
DEFAULT_AUDIT_CHECKPOINT_ROWS = 64
#: ... and at least every this many seconds (a heartbeat, even when no row was added).
DEFAULT_AUDIT_CHECKPOINT_INTERVAL = 60.0
#: Refusals audited in full per client certificate and minute; the rest are counted in one row.
DEFAULT_REFUSALS_PER_MINUTE = 20

#: Wrong key confirmations for one board before its key agreement is locked.
DEFAULT_MAX_KEY_CONFIRM_FAILURES = 3
#: Per-operator quotas: boards registered and HSM keys made per window (docs/service-api.md).
DEFAULT_QUOTA_WINDOW = 3600.0
DEFAULT_MAX_REGISTRATIONS = 2000
DEFAULT_MAX_HSM_KEYS = 6000
#: The HSM label of the OEM's NuBL2 signing key (the boards' ROM root key; ``ceremony.nubl2_key``).
DEFAULT_NUBL2_KEY_LABEL = "nusec-nubl2"


def upload_memory_bound(max_firmware_bytes: int, max_concurrent_uploads: int) -> int:
    """Documented bound on the memory that concurrent uploads add to the service process."""
    return max_concurrent_uploads * UPLOAD_COPIES * max_firmware_bytes + 16 * 1024 * 1024


class ConfigError(ValueError):
    """A service setting is missing or wrong; the message names it."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServiceConfig:
    """Everything ``nusec serve`` and ``run_in_background`` need.

    - ``hsm_uri``: RFC 7512 URI of the ICA private key, e.g.
      ``pkcs11:token=nusec-oem;object=ica?module-path=/usr/lib/softhsm/libsofthsm2.so``. The same
      token holds the per-board keys. The user PIN comes from the URI's ``pin-source`` file or
      the ``NUSEC_HSM_PIN`` environment variable (``pki.hsm.uri``), never from the command line.
    - ``root_cert``/``ica_cert``: PEM certificates matching the ICA key (served at /v1/ca/chain,
      and the client CA for mutual TLS).
    - ``tls_cert``/``tls_key``: the service's TLS server certificate (issued by the ICA, with the
      listen host in its subjectAltName) and its PEM key file. Not needed with ``insecure_dev``.
    - ``db_url``: SQLAlchemy URL (SQLite file by default; ``postgresql+psycopg://...`` works).
    - ``insecure_dev``: plain HTTP, loopback only, every caller treated as admin. Development only.
    - ``client_revocation_ttl``: seconds a client certificate's "not revoked" status is cached;
      a ``nusec pki revoke`` takes effect within this (0: look it up on every request).
    - ``require_recorded_client_certs``: also refuse client certificates the CA store has no
      record of (default off: the TLS chain check already vouches for them).
    - ``max_concurrent_uploads``: bodies over ``LARGE_BODY_BYTES`` processed at once.
    - ``body_timeout``: seconds a client has to send a whole request body (then 408).
    - ``idempotency_lease``/``idempotency_retention``: seconds an in-progress record is held
      without a heartbeat, and seconds a stored answer is kept.
    - ``audit_checkpoint_rows``/``audit_checkpoint_interval``: a signed audit checkpoint every so
      many rows and at least every so many seconds.
    - ``refusals_per_minute``: refusals audited one row each per client certificate and minute.
    - ``max_key_confirm_failures``: wrong ``kc_board`` values before a board's key agreement is
      locked (until an admin resets it).
    - ``quota_window``/``max_registrations``/``max_hsm_keys``: per operator and window (seconds),
      the boards it may register and the HSM keys (secure-boot keys, exchange keys) it may create.
    - ``nubl2_image``/``nubl2_key_label``: the signed NuBL2 the nubl2-key ceremony made, served at
      /v1/nubl2 once it verifies with that key on the token (checked at start-up); without it the
      service answers 503 ``nubl2-not-configured`` and boards cannot be provisioned.
    """

    hsm_uri: str
    root_cert: Path
    ica_cert: Path
    tls_cert: Path | None = None
    tls_key: Path | None = None
    db_url: str = DEFAULT_DB_URL
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    insecure_dev: bool = False
    max_firmware_bytes: int = DEFAULT_MAX_FIRMWARE_BYTES
    organization: str | None = None
    client_revocation_ttl: float = DEFAULT_CLIENT_REVOCATION_TTL
    require_recorded_client_certs: bool = False
    max_concurrent_uploads: int = DEFAULT_MAX_CONCURRENT_UPLOADS
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    idempotency_lease: float = DEFAULT_IDEMPOTENCY_LEASE
    idempotency_retention: float = DEFAULT_IDEMPOTENCY_RETENTION
    audit_checkpoint_rows: int = DEFAULT_AUDIT_CHECKPOINT_ROWS
    audit_checkpoint_interval: float = DEFAULT_AUDIT_CHECKPOINT_INTERVAL
    refusals_per_minute: int = DEFAULT_REFUSALS_PER_MINUTE
    max_key_confirm_failures: int = DEFAULT_MAX_KEY_CONFIRM_FAILURES
    quota_window: float = DEFAULT_QUOTA_WINDOW
    max_registrations: int = DEFAULT_MAX_REGISTRATIONS
    max_hsm_keys: int = DEFAULT_MAX_HSM_KEYS
    nubl2_image: Path | None = None
    nubl2_key_label: str = DEFAULT_NUBL2_KEY_LABEL

    def validate(self, environ: Mapping[str, str] | None = None) -> ServiceConfig:
        """Check every field that can be checked without the HSM; return self.

        ``environ`` is the environment the service will run with (default: this process's)."""
        env = os.environ if environ is None else environ
        try:
            uri = parse_pkcs11_uri(self.hsm_uri)
        except PkiError as exc:
            raise ConfigError(f"hsm_uri: {exc}") from None
        if not uri.token or not uri.object:
            raise ConfigError("hsm_uri: must name the token and the ICA key (token=...;object=...)")
        if not Path(uri.module(env)).is_file():
            raise ConfigError(f"hsm_uri: PKCS#11 module {uri.module(env)} not found")
        if not uri.pin_source and not env.get(PIN_ENV) and not env.get(PIN_FILE_ENV):
            raise ConfigError(f"hsm_uri: no PIN: set {PIN_ENV} (or {PIN_FILE_ENV}, or pin-source in the URI)")
        for name in ("root_cert", "ica_cert"):
            path: Path = getattr(self, name)
            if not path.is_file():
                raise ConfigError(f"{name}: {path} not found")
        if self.nubl2_image is not None and not self.nubl2_image.is_file():
            raise ConfigError(f"nubl2_image: {self.nubl2_image} not found")
        if self.insecure_dev:
            if not is_loopback(self.host):
                raise ConfigError(f"insecure_dev: plain HTTP is allowed on loopback only, not on {self.host}")
        else:
            for name in ("tls_cert", "tls_key"):
                value: Path | None = getattr(self, name)
                if value is None:
                    raise ConfigError(f"{name}: required for HTTPS (or pass --insecure-dev on loopback)")
                if not value.is_file():
                    raise ConfigError(f"{name}: {value} not found")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port: {self.port} is not a TCP port")
        if not 1024 <= self.max_firmware_bytes <= 64 * 1024 * 1024:
            raise ConfigError("max_firmware_bytes: must be between 1 KiB and 64 MiB")
        if not 0 <= self.client_revocation_ttl <= MAX_CLIENT_REVOCATION_TTL:
            raise ConfigError(
                f"client_revocation_ttl: must be between 0 and {MAX_CLIENT_REVOCATION_TTL:g} seconds"
            )
        if not 1 <= self.max_concurrent_uploads <= 64:
            raise ConfigError("max_concurrent_uploads: must be between 1 and 64")
        if not 0.5 <= self.body_timeout <= 3600:
            raise ConfigError("body_timeout: must be between 0.5 and 3600 seconds")
        if not 0.5 <= self.idempotency_lease <= 3600:
            raise ConfigError("idempotency_lease: must be between 0.5 and 3600 seconds")
        if not 1 <= self.idempotency_retention <= 90 * 86400:
            raise ConfigError("idempotency_retention: must be between 1 second and 90 days")
        if not 1 <= self.audit_checkpoint_rows <= 100_000:
            raise ConfigError("audit_checkpoint_rows: must be between 1 and 100000")
        if not 0.5 <= self.audit_checkpoint_interval <= 60:
            raise ConfigError("audit_checkpoint_interval: must be between 0.5 and 60 seconds")
        if not 1 <= self.refusals_per_minute <= 10_000:
            raise ConfigError("refusals_per_minute: must be between 1 and 10000")
        if not 1 <= self.max_key_confirm_failures <= 100:
            raise ConfigError("max_key_confirm_failures: must be between 1 and 100")
        if not 1 <= self.quota_window <= 366 * 86400:
            raise ConfigError("quota_window: must be between 1 second and 366 days")
        if self.max_registrations < 1 or self.max_hsm_keys < 1:
            raise ConfigError("max_registrations, max_hsm_keys: must be at least 1")
        if not self.db_url or "://" not in self.db_url:
            raise ConfigError(f"db_url: {self.db_url!r} is not an SQLAlchemy URL")
        return self
