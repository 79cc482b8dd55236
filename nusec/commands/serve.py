"""``nusec serve``: run the OEM REST service (HTTPS + mutual TLS) in front of the HSM.

Its settings come from the command line, their environment variables, or a ``--config`` YAML
file (``nusec serve template`` prints one, ``nusec serve validate FILE`` checks it); an option
given on the command line or by its environment variable overrides the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from nusec.commands.failure import first_line

HELP = """Run the OEM service (HTTPS + mutual TLS): board registration,
certificates, secure-boot keys, firmware signing, authenticated ECDH.
API: docs/service-api.md, or GET /openapi.json.

\b
Needs (checked before anything starts):
- --config FILE: every setting below in one YAML file (`nusec serve
  template` prints one; `nusec serve validate FILE` checks it);
  options on the command line override it.
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
- --nubl2-image: the signed NuBL2 the nubl2-key ceremony made; served
  at /v1/nubl2 once it verifies with --nubl2-key-label on the token.
  Without it provisioning stops at its nubl2 step (503).
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

\b
Example:
  nusec serve template > serve.yaml && nusec serve validate serve.yaml
  NUSEC_HSM_PIN_FILE=pin.txt nusec serve --config serve.yaml --port 9443
"""

app = typer.Typer(
    name="serve",
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Where a setting given on the command line came from (click's ParameterSource names; typer may
#: bring its own click, so compared by name); these override the --config file.
_EXPLICIT = ("COMMANDLINE", "ENVIRONMENT")


@app.callback()
def command(
    ctx: typer.Context,
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="YAML file of settings (`nusec serve template`); options override it."),
    ] = None,
    hsm_uri: Annotated[
        str | None,
        typer.Option(
            "--hsm-uri", envvar="NUSEC_HSM_URI", help="pkcs11: URI of the ICA key (token=...;object=...)."
        ),
    ] = None,
    root_cert: Annotated[
        Path | None, typer.Option("--root-cert", envvar="NUSEC_ROOT_CERT", help="RootCA certificate (PEM).")
    ] = None,
    ica_cert: Annotated[
        Path | None, typer.Option("--ica-cert", envvar="NUSEC_ICA_CERT", help="ICA certificate (PEM).")
    ] = None,
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
    nubl2_image: Annotated[
        Path | None,
        typer.Option(
            "--nubl2-image",
            envvar="NUSEC_NUBL2_IMAGE",
            help="Signed NuBL2 from `nusec ceremony run` (type nubl2-key); checked with the HSM key.",
        ),
    ] = None,
    nubl2_key_label: Annotated[
        str, typer.Option("--nubl2-key-label", help="HSM label of the NuBL2 key (the boards' ROM root key).")
    ] = "nusec-nubl2",
    log_level: Annotated[
        str, typer.Option("--log-level", help="Log level (tracebacks only at debug; -vv: debug).")
    ] = "info",
) -> None:
    if ctx.invoked_subcommand is not None:
        return  # `nusec serve template` / `validate`: nothing to start
    from nusec import logs
    from pki.errors import PkiError
    from pki.hsm.roles import check_service_token
    from pki.service.config import ConfigError
    from pki.service.config_file import service_config
    from pki.service.server import serve
    from pki.service.startup import check_startup

    given = {k: v for k, v in ctx.params.items() if k != "config_file"}
    try:
        settings = _merge(ctx, config_file, given)
        level = str(settings.pop("log_level"))
        config = service_config(settings)
        config.validate()
        check_service_token(config.hsm_uri, config.root_cert)  # the root key stays offline
        check_startup(config)  # every input proven before anything is created or migrated
        cli = ctx.obj if isinstance(ctx.obj, logs.LogSettings) else logs.LogSettings()
        level = "debug" if cli.verbosity >= 2 else level
        verbosity = {"debug": 2, "info": 1}.get(level, 0)
        logs.configure(verbosity, json_lines=cli.json_lines, timestamps=True)
        serve(config, log_level=level, configure_logging=False)
    except (ConfigError, PkiError) as exc:
        typer.echo(f"nusec serve: {first_line(exc)}", err=True)
        raise typer.Exit(2) from None


command.__doc__ = HELP


def _merge(ctx: typer.Context, config_file: Path | None, given: dict[str, Any]) -> dict[str, Any]:
    """Defaults, then the --config file, then what the command line (or its env vars) set."""
    from pki.service.config_file import read_serve_file

    settings = dict(given)
    if config_file is not None:
        from_file = read_serve_file(config_file)
        for name, value in from_file.items():
            source = ctx.get_parameter_source(name)
            if source is None or source.name not in _EXPLICIT:
                settings[name] = value
    return settings


@app.command("template")
def template_cmd() -> None:
    """Print a commented serve config file listing every setting with its default.

    Example: nusec serve template > serve.yaml
    """
    from pki.service.config_file import template

    typer.echo(template(), nl=False)


@app.command("validate")
def validate_cmd(
    config_file: Annotated[Path, typer.Argument(help="The serve YAML file.")],
    json_out: Annotated[bool, typer.Option("--json", help="End with one JSON object on stdout.")] = False,
) -> None:
    """Check a serve config file completely (names, types, ranges, files, PKCS#11 module, PIN
    source) as `nusec serve --config FILE` would, without opening the HSM or a socket.
    Exit 0 valid, 2 not (one line naming the field).

    Example: nusec serve validate serve.yaml --json
    """
    from pki.service.config import ConfigError
    from pki.service.config_file import read_serve_file, service_config

    try:
        settings = read_serve_file(config_file)
        settings.pop("log_level", None)
        config = service_config(settings).validate()
    except ConfigError as exc:
        typer.echo(f"nusec serve validate: {first_line(exc)}", err=True)
        if json_out:
            typer.echo(json.dumps({"ok": False, "error": first_line(exc)}))
        raise typer.Exit(2) from None
    if json_out:
        typer.echo(
            json.dumps({"ok": True, "config": str(config_file), "host": config.host, "port": config.port})
        )
    else:
        typer.echo(f"{config_file}: ok ({config.host}:{config.port}, {config.db_url})")
