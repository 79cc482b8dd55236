"""The ``nusec serve --config FILE`` file: every service setting in one reviewed YAML file.

Its fields are ``ServiceConfig``'s (plus ``log_level``), under the same names; the pydantic model
checks names and types (an unknown field, a typo, is refused), then ``ServiceConfig.validate``
checks values and files, so every problem is one line naming the field. Relative paths are
relative to the file's folder. Options given on the command line (or by their environment
variable) override the file. The HSM PIN is never in the file: it comes from the environment or
a ``pin-source`` file (``pki.hsm.uri``).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pki.service import config as c
from pki.service.config import ConfigError, ServiceConfig

LogLevel = Literal["critical", "error", "warning", "info", "debug"]


class ServeFile(BaseModel):
    """What a serve config file may hold (all optional: the command line may supply the rest)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    hsm_uri: str | None = Field(None, description="pkcs11: URI of the ICA key on the issuing token")
    root_cert: Path | None = Field(None, description="RootCA certificate (PEM)")
    ica_cert: Path | None = Field(None, description="ICA certificate (PEM)")
    tls_cert: Path | None = Field(None, description="server certificate issued by the ICA (PEM)")
    tls_key: Path | None = Field(None, description="server private key (PEM, mode 0600)")
    db_url: str = Field(c.DEFAULT_DB_URL, description="SQLAlchemy URL (migrated with `nusec db upgrade`)")
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(c.DEFAULT_PORT, description="TCP port")
    insecure_dev: bool = Field(False, description="plain HTTP on loopback, every caller admin (development)")
    max_firmware_bytes: int = Field(c.DEFAULT_MAX_FIRMWARE_BYTES, description="largest firmware signed")
    organization: str | None = Field(None, description="O= in issued board certificates")
    client_revocation_ttl: float = Field(
        c.DEFAULT_CLIENT_REVOCATION_TTL, description="seconds a client's 'not revoked' status is cached"
    )
    require_recorded_client_certs: bool = Field(
        False, description="refuse client certificates the database has no record of"
    )
    max_concurrent_uploads: int = Field(c.DEFAULT_MAX_CONCURRENT_UPLOADS, description="uploads at once")
    body_timeout: float = Field(c.DEFAULT_BODY_TIMEOUT, description="seconds to send a whole body (then 408)")
    idempotency_lease: float = Field(
        c.DEFAULT_IDEMPOTENCY_LEASE, description="seconds an in-flight Idempotency-Key is held"
    )
    idempotency_retention: float = Field(
        c.DEFAULT_IDEMPOTENCY_RETENTION, description="seconds a stored idempotent answer is kept"
    )
    audit_checkpoint_rows: int = Field(
        c.DEFAULT_AUDIT_CHECKPOINT_ROWS, description="rows per audit checkpoint"
    )
    audit_checkpoint_interval: float = Field(
        c.DEFAULT_AUDIT_CHECKPOINT_INTERVAL, description="... and at least every this many seconds"
    )
    refusals_per_minute: int = Field(
        c.DEFAULT_REFUSALS_PER_MINUTE, description="refusals audited one by one per client certificate"
    )
    max_key_confirm_failures: int = Field(
        c.DEFAULT_MAX_KEY_CONFIRM_FAILURES, description="wrong key confirmations before a board is locked"
    )
    quota_window: float = Field(c.DEFAULT_QUOTA_WINDOW, description="seconds of the per-operator quotas")
    max_registrations: int = Field(c.DEFAULT_MAX_REGISTRATIONS, description="boards per operator and window")
    max_hsm_keys: int = Field(c.DEFAULT_MAX_HSM_KEYS, description="HSM keys per operator and window")
    nubl2_image: Path | None = Field(None, description="signed NuBL2 from the nubl2-key ceremony")
    nubl2_key_label: str = Field(c.DEFAULT_NUBL2_KEY_LABEL, description="HSM label of the NuBL2 key")
    log_level: LogLevel = Field("info", description="log level (tracebacks only at debug)")


#: The fields that are not ``ServiceConfig``'s.
SERVE_ONLY = ("log_level",)
#: Fields with no default: the file or the command line must give them.
REQUIRED = ("hsm_uri", "root_cert", "ica_cert")
_PATHS = ("root_cert", "ica_cert", "tls_cert", "tls_key", "nubl2_image")


def _one_line(err: ValidationError) -> str:
    """The first problem, naming its field; an unknown field (a typo) first."""
    errors = err.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    name = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"unknown field '{name}'"
    return f"{name}: {first['msg']}"


def read_serve_file(path: Path) -> dict[str, Any]:
    """The settings ``path`` sets (only those), paths made absolute; ``ConfigError`` (one line)."""
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: malformed YAML{at}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a YAML mapping of settings")
    # YAML gives strings for paths; pydantic's strict mode wants Path objects for Path fields.
    prepared = {k: Path(v) if k in _PATHS and isinstance(v, str) else v for k, v in raw.items()}
    try:
        model = ServeFile.model_validate(prepared)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_one_line(exc)}") from None
    base = path.resolve().parent
    chosen = {name: getattr(model, name) for name in model.model_fields_set}
    for name in _PATHS:
        value = chosen.get(name)
        if isinstance(value, Path) and not value.expanduser().is_absolute():
            chosen[name] = base / value.expanduser()
    return chosen


def service_config(settings: dict[str, Any]) -> ServiceConfig:
    """A ``ServiceConfig`` from merged settings (file, then command line); names what is missing."""
    for name in REQUIRED:
        if settings.get(name) is None:
            raise ConfigError(f"{name}: required (in the --config file or as --{name.replace('_', '-')})")
    known = {f.name for f in fields(ServiceConfig)}
    return ServiceConfig(**{k: v for k, v in settings.items() if k in known})


def template() -> str:
    """A commented config file listing every setting with its default (``nusec serve template``)."""
    lines = [
        "# NuSec OEM service settings: nusec serve --config serve.yaml (options on the command",
        "# line override these). Check with: nusec serve validate serve.yaml",
        "# Relative paths are relative to this file's folder. The HSM PIN is never written here:",
        "# set NUSEC_HSM_PIN or NUSEC_HSM_PIN_FILE, or pin-source= in the URI.",
    ]
    examples: dict[str, Any] = {
        "hsm_uri": "pkcs11:token=nusec-issuing;object=nusec-ica",
        "root_cert": "root-ca.pem",
        "ica_cert": "ica.pem",
        "tls_cert": "server.pem",
        "tls_key": "server.key",
        "nubl2_image": "nubl2-key-out/nubl2-signed.bin",
    }
    for name, info in ServeFile.model_fields.items():
        value = examples.get(name, info.default)
        text = yaml.safe_dump({name: str(value) if isinstance(value, Path) else value}).strip()
        if value is None:
            text = f"# {name}:"
        lines.append(f"{text:<52} # {info.description}")
    return "\n".join(lines) + "\n"
