"""The intermediate ceremony: a new ICA key on the online issuing token, its certificate signed by
the offline root key (ICA renewal and rotation).

Steps: 0. checks (config, duties, clock against ``ica.not_before``, outputs absent, the root key
on the root token is the root certificate's key, the new label free on the issuing token);
1. ICA key on the issuing token (frozen CA policy, attributes read back); 2. ICA certificate
signed by the root (linted before and after); 3. chain; 4. transcript closed with the root key,
published, and recorded on the issuing token. The new ICA has no custodian backup: it is
online anyway, and another intermediate ceremony replaces it if it is lost.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

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
    _LABEL_RE,
    _URL_RE,
    CaSection,
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
from ceremony.errors import CeremonyError, KeyExistsError
from ceremony.hsm import RehearsalToken
from ceremony.journal import Journal, journal_path
from ceremony.run import (
    _cert_record,
    ca_urls,
    cert_pem,
    cert_sha256,
    key_record,
    make_key,
    refuse_finished,
    sign_ica_certificate,
)
from ceremony.summary import fields_as_dict
from ceremony.transcript import spki_sha256
from pki.hsm import KeyPolicy
from pki.hsm.preflight import require as require_role
from pki.hsm.roles import write_ceremony_record

log = logging.getLogger(__name__)


class RootRef(_Strict):
    """The offline root: its key label and its published certificate."""

    key_label: Annotated[str, Field(pattern=_LABEL_RE)]
    certificate: LaxPath
    crl_url: Annotated[str, Field(pattern=_URL_RE)] | None = None
    issuer_url: Annotated[str, Field(pattern=_URL_RE)] | None = None


class IntermediateOutputs(_Strict):
    directory: LaxPath
    ica_cert: Annotated[str, Field(pattern=_FILE_NAME_RE)] = "ica.pem"
    chain: Annotated[str, Field(pattern=_FILE_NAME_RE)] = "chain.pem"
    transcript: Annotated[str, Field(pattern=_FILE_NAME_RE)] = "transcript.jsonl"


class IntermediateConfig(_Strict):
    version: Literal[1]
    type: Literal["intermediate"]
    ceremony: CeremonyInfo
    hsm: HsmSection
    issuing_hsm: HsmSection
    root: RootRef
    ica: CaSection
    outputs: IntermediateOutputs


@dataclass(frozen=True)
class IntermediateResult:
    output_dir: Path
    ica_cert: Path
    chain: Path
    transcript: Path
    ica_key_label: str
    ica_spki_sha256: str
    ica_cert_sha256: str
    root_spki_sha256: str
    root_cert_sha256: str
    issuing_token_label: str
    rehearsal: bool
    rehearsal_issuing_token: RehearsalToken | None = field(default=None)

    def as_dict(self) -> dict[str, Any]:
        return fields_as_dict(self)


@dataclass(frozen=True)
class LoadedIntermediate:
    config: IntermediateConfig
    source: Path | None
    sha256: str
    text: str


def parse(text: str, *, base_dir: Path, source: Path | None = None) -> LoadedIntermediate:
    where = str(source) if source is not None else "config"
    config = validate_model(IntermediateConfig, read_yaml_mapping(text, where), where)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return LoadedIntermediate(resolve_paths(config, base_dir), source, digest, text)


TEMPLATE = """\
# NuSec intermediate ceremony: a new ICA key on the online issuing token, signed by the offline root.
version: 1
type: intermediate
ceremony:
  name: "NuSec ICA rotation {date}"
  operator: "Alice Operator"
  witnesses:
    - "Bob Witness"
hsm:                                # the OFFLINE root token (signs the new ICA certificate)
  token_label: nusec-root
  user_pin: {{env: NUSEC_HSM_PIN}}
  so_pin: {{env: NUSEC_HSM_SO_PIN}}
issuing_hsm:                        # the ONLINE token: the new ICA key is made here
  token_label: nusec-issuing
  user_pin: {{env: NUSEC_ISSUING_PIN}}
  so_pin: {{env: NUSEC_ISSUING_SO_PIN}}
root:
  key_label: nusec-root-ca
  certificate: ceremony-out/root-ca.pem   # the published root certificate
  # crl_url: http://pki.example.com/root.crl     # CRL DP put into the new ICA certificate
  # issuer_url: http://pki.example.com/root.cer  # AIA caIssuers put into it
ica:
  key_label: nusec-ica-2            # a new label on the issuing token
  subject:
    common_name: "NuSec Issuing CA 2"
    organization: "Example OEM Ltd"
    country: "TW"
  not_before: {date}
  validity_days: 1825
outputs:
  directory: intermediate-out
  ica_cert: ica.pem
  chain: chain.pem
  transcript: transcript.jsonl
"""


def run(
    loaded: LoadedIntermediate,
    *,
    rehearsal: bool = False,
    rehearsal_dir: Path | None = None,
    now: datetime | None = None,
    say: Callable[[str], None] = log.info,
) -> IntermediateResult:
    """Run the intermediate ceremony (module docstring)."""
    config = loaded.config
    check_duties(config.ceremony, [], rehearsal=rehearsal)
    check_clock_near(config.ica.validity()[0], now_utc(now), "ica.not_before")
    plan = out.planned_outputs(
        config.outputs.directory,
        {k: v for k, v in config.outputs.model_dump().items() if k != "directory"},
        rehearsal=rehearsal,
        rehearsal_dir=rehearsal_dir,
    )
    root_cert = load_certificate(config.root.certificate, "root.certificate")
    root_pub = ec_public(root_cert, "root.certificate")
    if config.ica.validity()[1] > root_cert.not_valid_after_utc:
        raise CeremonyError("the ICA's validity must end before the root certificate's notAfter")
    sections = {"root": config.hsm, "issuing": config.issuing_hsm}
    with (
        out.exclusive(plan),
        opened_tokens(
            sections, rehearsal=rehearsal, rehearsal_dir=plan.final_dir.parent, with_so_pin=False
        ) as tokens,
    ):
        root_hsm, issuing_hsm = tokens.open["root"], tokens.open["issuing"]
        require_role(root_hsm, "root")
        require_role(issuing_hsm, "issuing")
        key_matches(root_hsm, config.root.key_label, root_pub, "root")
        refuse_finished(issuing_hsm, [config.ica.key_label])
        if issuing_hsm.find_ec_keypair(config.ica.key_label) is not None:
            raise KeyExistsError(
                f"key '{config.ica.key_label}' already exists on token '{issuing_hsm.token_label}'; an"
                " intermediate ceremony makes a new key under a new label"
            )
        journal, _ = Journal.resume_or_start(
            journal_path(plan.final_dir), kind="intermediate", config_sha256=loaded.sha256
        )
        with staged_transcript(plan, config.ceremony) as transcript:
            transcript.append(
                "open",
                tokens.open_record(
                    "intermediate",
                    loaded,
                    rehearsal=rehearsal,
                    root_cert_sha256=cert_sha256(root_cert),
                    root_spki_sha256=spki_sha256(root_pub),
                ),
            )
            say(
                f"step 1/3: ICA key pair '{config.ica.key_label}'"
                f" on the issuing token '{issuing_hsm.token_label}'"
            )
            policy = KeyPolicy.ca_key()
            ica_key = make_key(issuing_hsm, config.ica.key_label, policy, None, journal, "ica_key")
            transcript.append("ica_key", key_record(issuing_hsm, ica_key, policy, False, "ica"))
            say("step 2/3: ICA certificate signed by the offline root key (linted before and after)")
            ica_cert, lint_log = sign_ica_certificate(
                root_hsm,
                config.root,
                root_cert,
                ica_key.public_key,
                config.ica,
                journal,
                plan.staged("ica_cert"),
            )
            transcript.append(
                "ica_cert", _cert_record(ica_cert, lint_log), outputs={"ica_cert": plan.staged("ica_cert")}
            )
            say("step 3/3: chain (new ICA, then root); transcript signed by the root key")
            out.write_atomic(plan.staged("chain"), cert_pem(ica_cert) + cert_pem(root_cert))
            transcript.append("chain", {"order": ["ica", "root"]}, outputs={"chain": plan.staged("chain")})
            digest = transcript.close(
                lambda d: root_hsm.sign_digest(config.root.key_label, d),
                root_pub,
                {"ica_cert_sha256": cert_sha256(ica_cert), "root_spki_sha256": spki_sha256(root_pub)},
            )
            out.publish(plan)
        write_ceremony_record(
            issuing_hsm,
            kind="intermediate",
            name=config.ceremony.name,
            keys={
                config.ica.key_label: {
                    "role": "ica",
                    "spki_sha256": spki_sha256(ica_key.public_key),
                    **ca_urls(config.ica),
                }
            },
            transcript_sha256=digest,
        )
        journal.finish()
    return IntermediateResult(
        output_dir=plan.final_dir,
        ica_cert=plan.final("ica_cert"),
        chain=plan.final("chain"),
        transcript=plan.final("transcript"),
        ica_key_label=config.ica.key_label,
        ica_spki_sha256=spki_sha256(ica_key.public_key),
        ica_cert_sha256=cert_sha256(ica_cert),
        root_spki_sha256=spki_sha256(root_pub),
        root_cert_sha256=cert_sha256(root_cert),
        issuing_token_label=issuing_hsm.token_label,
        rehearsal=rehearsal,
        rehearsal_issuing_token=tokens.rehearsal.get("issuing"),
    )
