"""The CRL ceremony: an offline root CRL, signed by the root key, dates from the reviewed config.

Steps: 0. checks (config, duties, clock against ``crl.this_update``, outputs absent, the root key
on the root token is the root certificate's key); 1. the CRL (``pki.ca.crl``: linted before
and after signing); 2. transcript closed with the root key and published.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import Field

from ceremony import outputs as out
from ceremony.common import (
    ec_public,
    key_matches,
    load_certificate,
    now_utc,
    opened_tokens,
    staged_transcript,
)
from ceremony.config import (
    _FILE_NAME_RE,
    CeremonyInfo,
    HsmSection,
    LaxPath,
    _Strict,
    check_clock_near,
    check_duties,
    read_yaml_mapping,
    resolve_paths,
    validate_model,
)
from ceremony.errors import CeremonyError
from ceremony.intermediate import RootRef
from ceremony.summary import fields_as_dict
from ceremony.transcript import sha256_hex, spki_sha256
from pki.ca import Issuer
from pki.ca.crl import RevokedEntry, issue_crl
from pki.hsm.preflight import require as require_role

log = logging.getLogger(__name__)

_REASONS = Literal[
    "unspecified",
    "key_compromise",
    "ca_compromise",
    "affiliation_changed",
    "superseded",
    "cessation_of_operation",
]


class Revoked(_Strict):
    serial: Annotated[str, Field(pattern=r"^[0-9a-f]{1,40}$")]  # hex, as `openssl x509 -serial`
    revoked_at: Annotated[date, Field(strict=False)]
    reason: _REASONS = "unspecified"


class CrlSection(_Strict):
    number: Annotated[int, Field(ge=1)]
    this_update: Annotated[date, Field(strict=False)]
    next_update_days: Annotated[int, Field(ge=1, le=3660)]
    revoked: Annotated[list[Revoked], Field(default_factory=list)]

    def dates(self) -> tuple[datetime, datetime]:
        start = datetime(self.this_update.year, self.this_update.month, self.this_update.day, tzinfo=dt.UTC)
        return start, start + dt.timedelta(days=self.next_update_days)


class CrlOutputs(_Strict):
    directory: LaxPath
    crl: Annotated[str, Field(pattern=_FILE_NAME_RE)] = "root.crl"
    transcript: Annotated[str, Field(pattern=_FILE_NAME_RE)] = "transcript.jsonl"


class CrlConfig(_Strict):
    version: Literal[1]
    type: Literal["crl"]
    ceremony: CeremonyInfo
    hsm: HsmSection
    root: RootRef
    crl: CrlSection
    outputs: CrlOutputs


@dataclass(frozen=True)
class LoadedCrl:
    config: CrlConfig
    source: Path | None
    sha256: str
    text: str


@dataclass(frozen=True)
class CrlResult:
    output_dir: Path
    crl: Path
    transcript: Path
    crl_number: int
    crl_sha256: str
    root_spki_sha256: str
    root_cert_sha256: str | None
    rehearsal: bool

    def as_dict(self) -> dict[str, Any]:
        return fields_as_dict(self)


def parse(text: str, *, base_dir: Path, source: Path | None = None) -> LoadedCrl:
    where = str(source) if source is not None else "config"
    config = validate_model(CrlConfig, read_yaml_mapping(text, where), where)
    return LoadedCrl(resolve_paths(config, base_dir), source, hashlib.sha256(text.encode()).hexdigest(), text)


TEMPLATE = """\
# NuSec CRL ceremony: an offline root CRL (covers the ICAs), signed by the root key.
version: 1
type: crl
ceremony:
  name: "NuSec root CRL {date}"
  operator: "Alice Operator"
  witnesses:
    - "Bob Witness"
hsm:                                # the OFFLINE root token
  token_label: nusec-root
  user_pin: {{env: NUSEC_HSM_PIN}}
  so_pin: {{env: NUSEC_HSM_SO_PIN}}
root:
  key_label: nusec-root-ca
  certificate: ceremony-out/root-ca.pem
crl:
  number: 1                         # must grow with every CRL of this root
  this_update: {date}             # 00:00 UTC; the clock must agree
  next_update_days: 365
  revoked: []                       # e.g. - {{serial: "4f1a...", revoked_at: {date}, reason: key_compromise}}
outputs:
  directory: crl-out
  crl: root.crl
  transcript: transcript.jsonl
"""


def run(
    loaded: LoadedCrl,
    *,
    rehearsal: bool = False,
    rehearsal_dir: Path | None = None,
    now: datetime | None = None,
    say: Callable[[str], None] = log.info,
) -> CrlResult:
    """Run the CRL ceremony (module docstring)."""
    config = loaded.config
    check_duties(config.ceremony, [], rehearsal=rehearsal)
    this_update, next_update = config.crl.dates()
    check_clock_near(this_update, now_utc(now), "crl.this_update")
    plan = out.planned_outputs(
        config.outputs.directory,
        {"crl": config.outputs.crl, "transcript": config.outputs.transcript},
        rehearsal=rehearsal,
        rehearsal_dir=rehearsal_dir,
    )
    root_cert = load_certificate(config.root.certificate, "root.certificate")
    root_pub = ec_public(root_cert, "root.certificate")
    revoked = [
        RevokedEntry(
            serial=int(r.serial, 16),
            revoked_at=datetime(r.revoked_at.year, r.revoked_at.month, r.revoked_at.day, tzinfo=dt.UTC),
            reason=x509.ReasonFlags[r.reason],
        )
        for r in config.crl.revoked
    ]
    with (
        out.exclusive(plan),
        opened_tokens(
            {"root": config.hsm}, rehearsal=rehearsal, rehearsal_dir=plan.final_dir.parent, with_so_pin=False
        ) as tokens,
    ):
        hsm = tokens.open["root"]
        require_role(hsm, "root")
        key_matches(hsm, config.root.key_label, root_pub, "root")
        with staged_transcript(plan, config.ceremony) as transcript:
            transcript.append(
                "open",
                tokens.open_record(
                    "crl", loaded, rehearsal=rehearsal, root_spki_sha256=spki_sha256(root_pub)
                ),
            )
            say(f"step 1/2: root CRL number {config.crl.number}, next update {next_update:%Y-%m-%d}")
            issuer = Issuer(hsm, config.root.key_label, root_cert).check()
            crl = issue_crl(
                issuer,
                revoked,
                crl_number=config.crl.number,
                this_update=this_update,
                next_update=next_update - this_update,
            )
            der = crl.public_bytes(serialization.Encoding.DER)
            if crl.is_signature_valid(root_pub) is not True:
                raise CeremonyError("the CRL's signature does not verify with the root certificate")
            out.write_atomic(plan.staged("crl"), crl.public_bytes(serialization.Encoding.PEM))
            transcript.append(
                "crl",
                {
                    "crl_number": config.crl.number,
                    "crl_sha256": sha256_hex(der),
                    "this_update": this_update.isoformat(),
                    "next_update": next_update.isoformat(),
                    "revoked": [r.model_dump(mode="json") for r in config.crl.revoked],
                },
                outputs={"crl": plan.staged("crl")},
            )
            say("step 2/2: transcript signed by the root key")
            transcript.close(
                lambda d: hsm.sign_digest(config.root.key_label, d),
                root_pub,
                {"root_spki_sha256": spki_sha256(root_pub)},
            )
            out.publish(plan)
    return CrlResult(
        output_dir=plan.final_dir,
        crl=plan.final("crl"),
        transcript=plan.final("transcript"),
        crl_number=config.crl.number,
        crl_sha256=sha256_hex(der),
        root_spki_sha256=spki_sha256(root_pub),
        root_cert_sha256=None,
        rehearsal=rehearsal,
    )
