"""``nusec serve``: run the OEM REST service (HTTPS + mutual TLS) in front of the HSM."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

HELP = """Run the OEM service (HTTPS + mutual TLS): board registration,
certificates, secure-boot keys, firmware signing, authenticated ECDH.
API: docs/service-api.md, or GET /openapi.json.

\b
Needs (checked before anything starts):
- --hsm-uri: pkcs11: URI of the ICA key on the online issuing token
  (it also holds the per-board keys; a token holding a root key is
  refused). Example:
  pkcs11:token=nusec-issuing;object=nusec-ica (module: SoftHSM2
  unless module-path= is given)
- HSM PIN: env NUSEC_HSM_PIN (or NUSEC_HSM_PIN_FILE, or pin-source=
  in the URI). Never on the command line.
- --root-cert, --ica-cert: RootCA and ICA certificates (PEM), from
  `nusec ceremony run`; served at /v1/ca/chain, trusted for clients.
- --tls-cert, --tls-key: server certificate issued by the ICA (its
  subjectAltName names the listen address) and its PEM key; make them
  with `nusec pki server-cert` (operators: `nusec pki operator-cert`).
- --db-url: SQLAlchemy URL (default SQLite file; PostgreSQL for
  several processes). It must be migrated first: `nusec db upgrade
  --db-url URL` (the service never migrates on its own).

\b
Clients: operator certificates issued by the ICA, role 'operator' or
'admin' in the subject OU (admin also reads the audit log).
Revoked client certificates (`nusec pki revoke` on the same --db-url)
are refused within --client-revocation-ttl seconds;
--require-recorded-client-certs also refuses certificates issued
without --db-url.
--insecure-dev: plain HTTP, loopback only, every caller admin.

\b
Exit codes: 0 stopped; 2 a start-up check failed (one line naming
the setting and file: TLS pair, CA files, DB URL or its folder, HSM
key, port in use). Nothing is created or migrated before they pass.
"""


def command(
    hsm_uri: Annotated[
        str,
        typer.Option(
            "--hsm-uri", envvar="NUSEC_HSM_URI", help="pkcs11: URI of the ICA key (token=...;object=...)."
        ),
    ],
    root_cert: Annotated[
        Path, typer.Option("--root-cert", envvar="NUSEC_ROOT_CERT", help="RootCA certificate (PEM).")
    ],
    ica_cert: Annotated[
        Path, typer.Option("--ica-cert", envvar="NUSEC_ICA_CERT", help="ICA certificate (PEM).")
    ],
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert", envvar="NUSEC_TLS_CERT", help="Server certificate issued by the ICA (PEM)."
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option("--tls-key", envvar="NUSEC_TLS_KEY", help="Server private key (PEM, mode 0600)."),
    ] = None,
    db_url: Annotated[
        str, typer.Option("--db-url", envvar="NUSEC_SERVICE_DB_URL", help="SQLAlchemy database URL.")
    ] = "sqlite:///nusec-service.db",
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8443,
    insecure_dev: Annotated[
        bool,
        typer.Option("--insecure-dev", help="Plain HTTP on loopback, every caller admin. Development only."),
    ] = False,
    max_firmware_bytes: Annotated[
        int, typer.Option("--max-firmware-bytes", help="Largest firmware accepted for signing.")
    ] = 2 * 1024 * 1024,
    organization: Annotated[
        str | None, typer.Option("--organization", help="O= in issued board certificates.")
    ] = None,
    client_revocation_ttl: Annotated[
        float,
        typer.Option(
            "--client-revocation-ttl",
            envvar="NUSEC_CLIENT_REVOCATION_TTL",
            help="Seconds a client certificate's 'not revoked' status is cached (0: every request).",
        ),
    ] = 5.0,
    require_recorded_client_certs: Annotated[
        bool,
        typer.Option(
            "--require-recorded-client-certs",
            help="Refuse client certificates the service's database has no record of.",
        ),
    ] = False,
    max_concurrent_uploads: Annotated[
        int, typer.Option("--max-concurrent-uploads", help="Uploads (bodies > 64 KiB) processed at once.")
    ] = 2,
    body_timeout: Annotated[
        float, typer.Option("--body-timeout", help="Seconds a client has to send a whole body (then 408).")
    ] = 60.0,
    idempotency_lease: Annotated[
        float,
        typer.Option("--idempotency-lease", help="Seconds an in-flight Idempotency-Key is held unrenewed."),
    ] = 30.0,
    idempotency_retention: Annotated[
        float, typer.Option("--idempotency-retention", help="Seconds a stored idempotent answer is kept.")
    ] = 86400.0,
    audit_checkpoint_rows: Annotated[
        int, typer.Option("--audit-checkpoint-rows", help="A signed audit checkpoint every this many rows.")
    ] = 64,
    audit_checkpoint_interval: Annotated[
        float, typer.Option("--audit-checkpoint-interval", help="... and at least every this many seconds.")
    ] = 60.0,
    refusals_per_minute: Annotated[
        int, typer.Option("--refusals-per-minute", help="Refusals audited one by one per client certificate.")
    ] = 20,
    log_level: Annotated[
        str, typer.Option("--log-level", help="Log level (tracebacks only at debug).")
    ] = "info",
) -> None:
    from pki.errors import PkiError
    from pki.hsm.roles import check_service_token
    from pki.service.config import ConfigError, ServiceConfig
    from pki.service.server import serve
    from pki.service.startup import check_startup

    config = ServiceConfig(
        hsm_uri=hsm_uri,
        root_cert=root_cert,
        ica_cert=ica_cert,
        tls_cert=tls_cert,
        tls_key=tls_key,
        db_url=db_url,
        host=host,
        port=port,
        insecure_dev=insecure_dev,
        max_firmware_bytes=max_firmware_bytes,
        organization=organization,
        client_revocation_ttl=client_revocation_ttl,
        require_recorded_client_certs=require_recorded_client_certs,
        max_concurrent_uploads=max_concurrent_uploads,
        body_timeout=body_timeout,
        idempotency_lease=idempotency_lease,
        idempotency_retention=idempotency_retention,
        audit_checkpoint_rows=audit_checkpoint_rows,
        audit_checkpoint_interval=audit_checkpoint_interval,
        refusals_per_minute=refusals_per_minute,
    )
    try:
        config.validate()
        check_service_token(hsm_uri, root_cert)  # the root key stays offline (docs/ceremony.md)
        check_startup(config)  # every input proven before anything is created or migrated
        serve(config, log_level=log_level)
    except (ConfigError, PkiError) as exc:
        typer.echo(f"nusec serve: {exc}", err=True)
        raise typer.Exit(2) from None


command.__doc__ = HELP
