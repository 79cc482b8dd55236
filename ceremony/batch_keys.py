"""The batch-keys ceremony: the bulk-OTP batch KEK and seal signer on the online issuing token,
so a production ``nusec otp build`` needs no ``--create-hsm-keys``.

Steps: 0. checks (config, duties, outputs absent, labels free on the issuing token); 1. the KEK
(AES-256, non-extractable, sensitive, private token object; attributes read back); 2. the seal
signer (P-256, non-extractable; attributes read back; its public key published as PEM); 3. the
transcript, closed with the new seal signer's signature (this ceremony touches no root key), and
a record on the token.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives import serialization
from pydantic import Field

from ceremony import outputs as out
from ceremony.common import opened_tokens, staged_transcript
from ceremony.config import (
    _FILE_NAME_RE,
    _LABEL_RE,
    CeremonyInfo,
    HsmSection,
    LaxPath,
    _Strict,
    check_duties,
    read_yaml_mapping,
    resolve_paths,
    validate_model,
)
from ceremony.errors import CeremonyError, KeyExistsError
from ceremony.hsm import RehearsalToken
from ceremony.journal import Journal, journal_path
from ceremony.run import key_record, make_key, refuse_finished
from ceremony.summary import fields_as_dict
from ceremony.transcript import spki_sha256
from pki.hsm import KeyPolicy
from pki.hsm.preflight import require as require_role
from pki.hsm.roles import write_ceremony_record

log = logging.getLogger(__name__)

#: What the batch KEK must read back as.
KEK_REQUIRED = {
    "TOKEN": True,
    "PRIVATE": True,
    "SENSITIVE": True,
    "EXTRACTABLE": False,
    "WRAP": True,
    "UNWRAP": True,
}


class BatchSection(_Strict):
    kek_label: Annotated[str, Field(pattern=_LABEL_RE)] = "nusec-batch-kek"
    signer_label: Annotated[str, Field(pattern=_LABEL_RE)] = "nusec-batch-seal"


class BatchOutputs(_Strict):
    directory: LaxPath
    signer_public: Annotated[str, Field(pattern=_FILE_NAME_RE)] = "batch-seal.pub.pem"
    transcript: Annotated[str, Field(pattern=_FILE_NAME_RE)] = "transcript.jsonl"


class BatchKeysConfig(_Strict):
    version: Literal[1]
    type: Literal["batch-keys"]
    ceremony: CeremonyInfo
    issuing_hsm: HsmSection
    batch: BatchSection = BatchSection()
    outputs: BatchOutputs


@dataclass(frozen=True)
class LoadedBatchKeys:
    config: BatchKeysConfig
    source: Path | None
    sha256: str
    text: str


@dataclass(frozen=True)
class BatchKeysResult:
    output_dir: Path
    signer_public: Path
    transcript: Path
    kek_label: str
    signer_label: str
    signer_spki_sha256: str
    issuing_token_label: str
    rehearsal: bool
    rehearsal_issuing_token: RehearsalToken | None = field(default=None)

    def as_dict(self) -> dict[str, Any]:
        return fields_as_dict(self)


def parse(text: str, *, base_dir: Path, source: Path | None = None) -> LoadedBatchKeys:
    where = str(source) if source is not None else "config"
    config = validate_model(BatchKeysConfig, read_yaml_mapping(text, where), where)
    return LoadedBatchKeys(
        resolve_paths(config, base_dir), source, hashlib.sha256(text.encode()).hexdigest(), text
    )


TEMPLATE = """\
# NuSec batch-keys ceremony: the bulk OTP batch KEK and seal signer on the online issuing token.
version: 1
type: batch-keys
ceremony:
  name: "NuSec batch keys {date}"
  operator: "Alice Operator"
  witnesses:
    - "Bob Witness"
issuing_hsm:                        # the ONLINE token `nusec otp build` and `nusec serve` use
  token_label: nusec-issuing
  user_pin: {{env: NUSEC_ISSUING_PIN}}
  so_pin: {{env: NUSEC_ISSUING_SO_PIN}}
batch:
  kek_label: nusec-batch-kek        # the batch spec's hsm.kek_label
  signer_label: nusec-batch-seal    # the batch spec's hsm.signer_label
outputs:
  directory: batch-keys-out
  signer_public: batch-seal.pub.pem # for `nusec otp verify --signer-pub`
  transcript: transcript.jsonl
"""


def run(
    loaded: LoadedBatchKeys,
    *,
    rehearsal: bool = False,
    rehearsal_dir: Path | None = None,
    say: Callable[[str], None] = log.info,
) -> BatchKeysResult:
    """Run the batch-keys ceremony (module docstring)."""
    config = loaded.config
    check_duties(config.ceremony, [], rehearsal=rehearsal)
    plan = out.planned_outputs(
        config.outputs.directory,
        {"signer_public": config.outputs.signer_public, "transcript": config.outputs.transcript},
        rehearsal=rehearsal,
        rehearsal_dir=rehearsal_dir,
    )
    labels = [config.batch.kek_label, config.batch.signer_label]
    with (
        out.exclusive(plan),
        opened_tokens(
            {"issuing": config.issuing_hsm},
            rehearsal=rehearsal,
            rehearsal_dir=plan.final_dir.parent,
            with_so_pin=False,
        ) as tokens,
    ):
        hsm = tokens.open["issuing"]
        require_role(hsm, "batch")
        refuse_finished(hsm, labels)
        taken = [label for label in labels if label in hsm.list_labels()]
        if taken:
            raise KeyExistsError(f"key '{taken[0]}' already exists on token '{hsm.token_label}'")
        journal, _ = Journal.resume_or_start(
            journal_path(plan.final_dir), kind="batch-keys", config_sha256=loaded.sha256
        )
        with staged_transcript(plan, config.ceremony) as transcript:
            transcript.append("open", tokens.open_record("batch-keys", loaded, rehearsal=rehearsal))
            say(f"step 1/3: batch KEK '{config.batch.kek_label}' on the issuing token '{hsm.token_label}'")
            journal.intend("batch_kek", label=config.batch.kek_label)
            hsm.generate_aes_kek(config.batch.kek_label)
            kek_attrs = next(
                r["attributes"]
                for r in hsm.inventory()
                if r["label"] == config.batch.kek_label and r["class"] == "SECRET_KEY"
            )
            unmet = [n for n, want in KEK_REQUIRED.items() if kek_attrs.get(n, want) is not want]
            if unmet:
                raise CeremonyError(f"batch KEK reads back with CKA_{unmet[0]}={kek_attrs.get(unmet[0])}")
            transcript.append(
                "batch_kek",
                {"label": config.batch.kek_label, "attributes_read": kek_attrs, "inventory": hsm.inventory()},
            )
            say(f"step 2/3: batch seal signer '{config.batch.signer_label}'")
            signer = make_key(hsm, config.batch.signer_label, KeyPolicy(), None, journal, "batch_signer")
            record = key_record(hsm, signer, KeyPolicy(), False, "batch-signer")
            pem = signer.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            out.write_atomic(plan.staged("signer_public"), pem)
            transcript.append(
                "batch_signer",
                {**record, "transcript_signer": True},
                outputs={"signer_public": plan.staged("signer_public")},
            )
            say("step 3/3: transcript signed by the new seal signer")
            digest = transcript.close(
                lambda d: hsm.sign_digest(config.batch.signer_label, d),
                signer.public_key,
                {"signer_spki_sha256": spki_sha256(signer.public_key)},
            )
            out.publish(plan)
        write_ceremony_record(
            hsm,
            kind="batch-keys",
            name=config.ceremony.name,
            keys={
                config.batch.kek_label: {"role": "batch-kek", "spki_sha256": ""},
                config.batch.signer_label: {
                    "role": "batch-signer",
                    "spki_sha256": spki_sha256(signer.public_key),
                },
            },
            transcript_sha256=digest,
        )
        journal.finish()
    return BatchKeysResult(
        output_dir=plan.final_dir,
        signer_public=plan.final("signer_public"),
        transcript=plan.final("transcript"),
        kek_label=config.batch.kek_label,
        signer_label=config.batch.signer_label,
        signer_spki_sha256=spki_sha256(signer.public_key),
        issuing_token_label=hsm.token_label,
        rehearsal=rehearsal,
        rehearsal_issuing_token=tokens.rehearsal.get("issuing"),
    )
