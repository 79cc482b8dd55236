"""The ceremony's one reviewed YAML file: schema, validation, and the commented template.

Why one strict schema: the config is read aloud and signed off before the ceremony, so anything
the tool would do must be visible in it, and anything it does not understand (a typo such as
``thresold``) must stop the ceremony before the HSM is touched. Validation is complete before
any HSM action (like boulder's ``validate()``); errors are one line naming the field.

Secrets never appear in the file: PINs and the share passphrase are named by *source* (an
environment variable or a file), never by value. Relative paths are relative to the config
file's folder, so a reviewed folder (config + outputs) can be moved as a whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ceremony.errors import ConfigError
from pki.configs import LaxPath as LaxPath  # re-exported: the ceremony types use it
from pki.configs import one_line

#: Key labels and the token label: printable, no spaces at the ends, no URI-breaking characters.
_LABEL_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
#: PKCS#11 token labels are at most 32 bytes (CK_TOKEN_INFO.label).
_TOKEN_LABEL_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"  # noqa: S105 - a pattern, not a secret
#: Output file names are plain names inside ``outputs.directory`` (no folders, no ``..``).
_FILE_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
#: http(s) URLs for CRL distribution points and authority information access.
_URL_RE = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/%-]*)?$"
#: Environment variable names (POSIX portable set).
_ENV_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"

SOFTHSM2_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


_M = TypeVar("_M", bound=BaseModel)


class _Strict(BaseModel):
    """Every section refuses unknown fields and never coerces types silently."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SecretSource(_Strict):
    """Where a secret (PIN, passphrase) comes from: exactly one of an env var or a file."""

    env: Annotated[str, Field(pattern=_ENV_RE)] | None = None
    file: LaxPath | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' (variable name) or 'file' (path)")
        return self

    def describe(self) -> str:
        """Where the secret comes from, for logs and the transcript (never the value)."""
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"

    def read(self, what: str) -> str:
        """The secret, checked against the secret-file rules (docs/ceremony.md) now, at run time,
        so a stray CR or space is refused today and not discovered at restore.

        Rules: a file holds exactly one line (one final LF allowed, nothing after it); no CR
        anywhere; no space or tab at either end; not empty. An environment variable follows the
        same rules. ``ConfigError`` names the source and the rule, never the value."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None or value == "":
                raise ConfigError(f"{what}: environment variable {self.env} is not set")
            where = f"environment variable {self.env}"
        else:
            assert self.file is not None
            try:
                raw = self.file.read_bytes()
            except OSError as exc:
                raise ConfigError(f"{what}: cannot read {self.file}: {exc.strerror}") from None
            where = f"file {self.file}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ConfigError(f"{what}: {where} is not UTF-8") from None
            value = text[:-1] if text.endswith("\n") else text
            if "\n" in value:
                raise ConfigError(f"{what}: {where} holds more than one line (one line, one final LF)")
        if value == "":
            raise ConfigError(f"{what}: {where} is empty")
        if "\r" in value:
            raise ConfigError(f"{what}: {where} contains a CR (save it with LF line ends)")
        if value != value.strip(" \t"):
            raise ConfigError(f"{what}: {where} has a space or tab at its start or end")
        return value


class CeremonyInfo(_Strict):
    """Who runs and who watches: recorded on every transcript line."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    operator: Annotated[str, Field(min_length=1, max_length=200)]
    witnesses: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(min_length=1)]

    #: Who acknowledges each step at the prompt; default: every witness.
    @field_validator("witnesses")
    @classmethod
    def _witnesses_distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("witness names must be distinct")
        return value


class HsmSection(_Strict):
    """The PKCS#11 module and token the keys are made in."""

    module: LaxPath = Path(SOFTHSM2_MODULE)
    token_label: Annotated[str, Field(pattern=_TOKEN_LABEL_RE)]
    user_pin: SecretSource
    so_pin: SecretSource


class Subject(_Strict):
    """An X.509 distinguished name, limited to the attributes our profiles use."""

    common_name: Annotated[str, Field(min_length=1, max_length=64)]
    organization: Annotated[str, Field(min_length=1, max_length=64)]
    organizational_unit: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]


class CaSection(_Strict):
    """One CA (root or ICA): its HSM key label, subject and validity.

    Validity comes from the reviewed file: ``not_before`` (a date, 00:00:00 UTC) and
    ``validity_days``; the run checks that the machine's clock agrees (``check_clock``)."""

    key_label: Annotated[str, Field(pattern=_LABEL_RE)]
    subject: Subject
    not_before: Annotated[date, Field(strict=False)]
    validity_days: Annotated[int, Field(ge=1, le=36500)]
    #: URLs relying parties use to find this CA's CRL and its certificate (put into the
    #: certificates this CA issues).
    crl_url: Annotated[str, Field(pattern=_URL_RE)] | None = None
    issuer_url: Annotated[str, Field(pattern=_URL_RE)] | None = None

    def validity(self) -> tuple[datetime, datetime]:
        """(notBefore, notAfter) in UTC."""
        start = datetime(self.not_before.year, self.not_before.month, self.not_before.day, tzinfo=UTC)
        return start, start + timedelta(days=self.validity_days)


class BackupSection(_Strict):
    """Custodian backup: M-of-N SLIP-39 shares of a KEK that wraps the RootCA and ICA keys."""

    custodians: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(min_length=2)]
    threshold: Annotated[int, Field(ge=2, le=16)]
    passphrase: SecretSource | None = None
    delivery: Literal["files", "print"] = "files"
    kek_label: Annotated[str, Field(pattern=_LABEL_RE)] = "nusec-ceremony-kek"

    @model_validator(mode="after")
    def _threshold_fits(self) -> BackupSection:
        n = len(self.custodians)
        if n > 16:
            raise ValueError(f"at most 16 custodians (SLIP-39), got {n}")
        if len(set(self.custodians)) != n:
            raise ValueError("custodian names must be distinct")
        if self.threshold > n:
            raise ValueError(f"threshold {self.threshold} is larger than the {n} custodians")
        return self


FileName = Annotated[str, Field(pattern=_FILE_NAME_RE)]


class OutputsSection(_Strict):
    """Where the public results go: one new folder, published in one atomic rename at the end."""

    directory: LaxPath
    root_cert: FileName = "root-ca.pem"
    ica_cert: FileName = "ica.pem"
    chain: FileName = "chain.pem"
    wrapped_root_key: FileName = "root-ca.key.wrapped"
    wrapped_ica_key: FileName = "ica.key.wrapped"
    shares_dir: FileName = "shares"
    transcript: FileName = "transcript.jsonl"

    @model_validator(mode="after")
    def _names_distinct(self) -> OutputsSection:
        names = self.file_names()
        if len(set(names.values())) != len(names):
            raise ValueError("output names must be distinct")
        return self

    def file_names(self) -> dict[str, str]:
        """Every output's name inside ``directory``, keyed by field name."""
        return {k: v for k, v in self.model_dump().items() if k != "directory"}


class CeremonyConfig(_Strict):
    """The whole ceremony. ``version`` lets a future schema refuse old files explicitly.

    ``hsm`` is the offline root token; ``issuing_hsm`` the online token the service signs with,
    where the ICA key is made: the root key never sits on the token the service uses."""

    version: Literal[1]
    type: Literal["root"] = "root"
    ceremony: CeremonyInfo
    hsm: HsmSection
    issuing_hsm: HsmSection
    root: CaSection
    ica: CaSection
    backup: BackupSection
    outputs: OutputsSection

    @model_validator(mode="after")
    def _labels_distinct(self) -> CeremonyConfig:
        labels = [self.root.key_label, self.ica.key_label, self.backup.kek_label]
        if len(set(labels)) != len(labels):
            raise ValueError("root.key_label, ica.key_label and backup.kek_label must be distinct")
        if self.ica.validity_days > self.root.validity_days:
            raise ValueError("ica.validity_days must not exceed root.validity_days")
        if (
            self.ica.validity()[1] > self.root.validity()[1]
            or self.ica.validity()[0] < self.root.validity()[0]
        ):
            raise ValueError("the ICA's validity must lie inside the root's (not_before, validity_days)")
        if (self.hsm.module, self.hsm.token_label) == (self.issuing_hsm.module, self.issuing_hsm.token_label):
            raise ValueError("hsm and issuing_hsm must be different tokens (the root key stays offline)")
        return self

    def duty_conflicts(self) -> list[str]:
        """People holding two duties that must be separate (allowed only in rehearsal mode)."""
        return duty_conflicts(self.ceremony, self.backup.custodians)


def duty_conflicts(people: CeremonyInfo, custodians: list[str]) -> list[str]:
    """The operator may not also witness or hold a share, and a custodian may not witness."""
    problems = []
    if people.operator in people.witnesses:
        problems.append(f"the operator {people.operator!r} is also a witness")
    if people.operator in custodians:
        problems.append(f"the operator {people.operator!r} is also a custodian")
    problems += [f"custodian {c!r} is also a witness" for c in custodians if c in people.witnesses]
    return problems


def check_duties(people: CeremonyInfo, custodians: list[str], *, rehearsal: bool) -> None:
    """``ConfigError`` naming the first duty conflict, unless this is a rehearsal."""
    problems = duty_conflicts(people, custodians)
    if problems and not rehearsal:
        raise ConfigError(f"{problems[0]} (separate duties; allowed only with --rehearsal)")


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config plus the reviewed file itself (its text and SHA-256 go in the transcript)."""

    config: CeremonyConfig
    source: Path | None
    sha256: str
    text: str = ""

    def check_duties(self, *, rehearsal: bool) -> None:
        """``ConfigError`` naming the first duty conflict, unless this is a rehearsal."""
        check_duties(self.config.ceremony, self.config.backup.custodians, rehearsal=rehearsal)


#: How far the clock may be before a CA's ``not_before`` / after it, for the run to go ahead.
CLOCK_EARLY = timedelta(days=1)
CLOCK_LATE = timedelta(days=30)


def check_clock(config: CeremonyConfig, now: datetime) -> None:
    """The machine's clock must agree with the reviewed dates: not more than a day before the
    root's ``not_before`` (a certificate valid only from tomorrow is a typo or a wrong clock), and
    not more than 30 days after it (a stale file or a clock reset to an old date)."""
    check_clock_near(config.root.validity()[0], now, "root.not_before")


def check_clock_near(start: datetime, now: datetime, field_name: str) -> None:
    """``check_clock`` for any reviewed start date (``field_name`` names it in the error)."""
    if now < start - CLOCK_EARLY or now > start + CLOCK_LATE:
        raise ConfigError(
            f"the clock says {now:%Y-%m-%d %H:%M} UTC but {field_name} is {start:%Y-%m-%d}: "
            "check the clock and the reviewed dates"
        )


def _resolve(value: Path, base: Path) -> Path:
    value = value.expanduser()
    return value if value.is_absolute() else (base / value)


def read_yaml_mapping(text: str, where: str) -> dict[str, Any]:
    """The top-level YAML mapping of a ceremony file; ``ConfigError`` (one line) otherwise."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "not valid YAML"
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{where}: malformed YAML{at}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a YAML mapping at the top level")
    return data


def validate_model(model: type[_M], data: dict[str, Any], where: str) -> _M:
    """``model.model_validate(data)`` with the first problem as one ``ConfigError`` line."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {one_line(exc)}") from None


def resolve_paths(value: _M, base: Path) -> _M:
    """Every ``Path`` field (nested sections and secret sources included) made absolute
    relative to ``base``, the config file's folder."""
    update: dict[str, Any] = {}
    for name in type(value).model_fields:
        item = getattr(value, name)
        if isinstance(item, Path):
            update[name] = _resolve(item, base)
        elif isinstance(item, BaseModel):
            update[name] = resolve_paths(item, base)
    return value.model_copy(update=update) if update else value


def parse_config(text: str, *, base_dir: Path, source: Path | None = None) -> LoadedConfig:
    """Validate YAML text completely; ``ConfigError`` (one line) on the first problem."""
    import hashlib

    where = str(source) if source is not None else "config"
    config = validate_model(CeremonyConfig, read_yaml_mapping(text, where), where)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return LoadedConfig(config=resolve_paths(config, base_dir), source=source, sha256=digest, text=text)


def load_config(path: Path) -> LoadedConfig:
    """Read and validate the ceremony file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    return parse_config(text, base_dir=path.resolve().parent, source=path)


TEMPLATE = """\
# NuSec offline root key ceremony. Review this file line by line with the witnesses, then run:
#   nusec ceremony validate ceremony.yaml
#   nusec ceremony run ceremony.yaml --rehearsal     # throwaway SoftHSM2 token, same steps
#   nusec ceremony run ceremony.yaml                  # the real ceremony
# Relative paths are relative to this file's folder. Secrets are never written here: PINs and
# the passphrase are named by source (an environment variable or a file), never by value.
version: 1
type: root                          # root | intermediate | crl | batch-keys | nubl2-key (`template --type`)

ceremony:
  name: "NuSec OEM root ceremony {date}"   # free text, recorded in the transcript
  operator: "Alice Operator"                 # the person at the keyboard; neither witness nor custodian
  witnesses:                                 # at least one; every transcript line names them
    - "Bob Witness"                          # a witness holds no share

hsm:                                # the OFFLINE root token: the root key lives here only
  module: {module}   # the PKCS#11 module (shared library)
  token_label: nusec-root                            # the token is found by label (slots move)
  user_pin: {{env: NUSEC_HSM_PIN}}                     # or {{file: /media/pin/user.pin}}
  so_pin: {{env: NUSEC_HSM_SO_PIN}}                    # security officer: marks the backup KEK trusted

issuing_hsm:                        # the ONLINE token `nusec serve` signs with: the ICA key goes here
  module: {module}
  token_label: nusec-issuing
  user_pin: {{env: NUSEC_ISSUING_PIN}}
  so_pin: {{env: NUSEC_ISSUING_SO_PIN}}

root:
  key_label: nusec-root-ca          # label of the RootCA key pair inside the root token
  subject:
    common_name: "NuSec Root CA"
    organization: "Example OEM Ltd"
    country: "TW"
  not_before: {date}              # 00:00 UTC; the run refuses a clock far from this date
  validity_days: 7300               # 20 years
  # crl_url: http://pki.example.com/root.crl        # CRL DP put into certificates the root issues
  # issuer_url: http://pki.example.com/root.cer     # AIA caIssuers in certificates the root issues

ica:
  key_label: nusec-ica              # label of the ICA key pair inside the issuing token
  subject:
    common_name: "NuSec Issuing CA 1"
    organization: "Example OEM Ltd"
    organizational_unit: "Programmer PKI"   # optional
    country: "TW"
  not_before: {date}
  validity_days: 3650               # must lie inside the root's validity
  # crl_url: http://pki.example.com/ica.crl
  # issuer_url: http://pki.example.com/ica.cer

backup:
  custodians:                       # N names, one share each (at most 16)
    - "Carol Custodian"
    - "Dave Custodian"
    - "Erin Custodian"
  threshold: 2                      # M: any M shares restore the keys; M-1 reveal nothing
  # passphrase: {{env: NUSEC_SHARE_PASSPHRASE}}   # optional SLIP-39 passphrase for the shares
  delivery: files                   # files: one file per custodian in outputs/shares_dir; print: shown once
  kek_label: nusec-ceremony-kek     # temporary label of the backup KEK (destroyed after wrapping)

outputs:
  directory: ceremony-out           # must not exist; created in one atomic rename at the end
  root_cert: root-ca.pem
  ica_cert: ica.pem
  chain: chain.pem                  # ICA then root
  wrapped_root_key: root-ca.key.wrapped
  wrapped_ica_key: ica.key.wrapped
  shares_dir: shares                # hand each file to its custodian, then remove it from this machine
  transcript: transcript.jsonl      # hash-chained, closed with the new root key's signature
"""


def template() -> str:
    """The commented example config (``nusec ceremony template``); it validates as-is."""
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    return TEMPLATE.format(date=date, module=SOFTHSM2_MODULE)


def default_rehearsal_config(workdir: Path) -> LoadedConfig:
    """The template, with outputs in ``workdir/ceremony`` (for ``nusec demo`` and tests).

    Meant for ``run_ceremony(..., rehearsal=True)``: the HSM section then names the throwaway
    token's label only; its PINs are generated and written under the rehearsal folder.
    """
    text = template().replace("directory: ceremony-out", "directory: ceremony")
    return parse_config(text, base_dir=workdir.resolve(), source=None)
