"""The nubl2-key ceremony: the OEM's NuBL2 signing key, which becomes every board's mask-ROM root
key (KeyStore OTP slots 0/1), made in the HSM, and the reference NuBL2 signed with it.

Why a ceremony: whatever this key signs, every provisioned board's ROM runs. So it is made once,
with witnesses, on the HSM (non-extractable), and it signs exactly one reviewed NuBL2 binary here;
the online service only serves the signed image (``nusec serve --nubl2-image``) and checks it
against the key on its token at start-up. It never signs anything with this key.

Steps: 0. checks (config, duties, outputs absent, label free, the NuBL2 binary readable and a
Cortex-M image); 1. the key (P-256, non-extractable; attributes read back); 2. NuBL2 signed as an
MCUboot image (header 0x400, SHA256 + KEYHASH + ECDSA TLVs, as SecureBootDemo's FwSign.sh) and
verified with the key's public half; its public key published as PEM; 3. the transcript, closed
with the new key's signature, and a record on the token.
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
from ceremony.errors import CeremonyError, ConfigError, KeyExistsError
from ceremony.hsm import RehearsalToken
from ceremony.journal import Journal, journal_path
from ceremony.run import key_record, make_key, refuse_finished
from ceremony.summary import fields_as_dict
from ceremony.transcript import spki_sha256
from pki.hsm import KeyPolicy
from pki.hsm.preflight import require as require_role
from pki.hsm.roles import write_ceremony_record
from pki.nubl2 import Nubl2Error, sign_nubl2

log = logging.getLogger(__name__)


class Nubl2Section(_Strict):
    key_label: Annotated[str, Field(pattern=_LABEL_RE)] = "nusec-nubl2"
    image: LaxPath  # the raw NuBL2 binary (snippets/nubl2 -> nusec/board/bin/nubl2.bin)
    version: Annotated[str, Field(pattern=r"^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,5}(\+[0-9]{1,10})?$")] = "1.0.0"


class Nubl2Outputs(_Strict):
    directory: LaxPath
    signed_image: Annotated[str, Field(pattern=_FILE_NAME_RE)] = "nubl2-signed.bin"
    public_key: Annotated[str, Field(pattern=_FILE_NAME_RE)] = "nubl2-root.pub.pem"
    transcript: Annotated[str, Field(pattern=_FILE_NAME_RE)] = "transcript.jsonl"


class Nubl2KeyConfig(_Strict):
    version: Literal[1]
    type: Literal["nubl2-key"]
    ceremony: CeremonyInfo
    issuing_hsm: HsmSection
    nubl2: Nubl2Section
    outputs: Nubl2Outputs


@dataclass(frozen=True)
class LoadedNubl2Key:
    config: Nubl2KeyConfig
    source: Path | None
    sha256: str
    text: str


@dataclass(frozen=True)
class Nubl2KeyResult:
    output_dir: Path
    signed_image: Path
    public_key: Path
    transcript: Path
    key_label: str
    key_spki_sha256: str
    image_sha256: str
    issuing_token_label: str
    rehearsal: bool
    rehearsal_issuing_token: RehearsalToken | None = field(default=None)

    def as_dict(self) -> dict[str, Any]:
        return fields_as_dict(self)


def parse(text: str, *, base_dir: Path, source: Path | None = None) -> LoadedNubl2Key:
    where = str(source) if source is not None else "config"
    config = validate_model(Nubl2KeyConfig, read_yaml_mapping(text, where), where)
    return LoadedNubl2Key(
        resolve_paths(config, base_dir), source, hashlib.sha256(text.encode()).hexdigest(), text
    )


TEMPLATE = """\
# NuSec nubl2-key ceremony: the OEM's NuBL2 signing key (every board's mask-ROM root key, burned
# into KeyStore OTP slots 0/1 by provisioning) on the issuing token, and the reference NuBL2 signed.
version: 1
type: nubl2-key
ceremony:
  name: "NuSec NuBL2 key {date}"
  operator: "Alice Operator"
  witnesses:
    - "Bob Witness"
issuing_hsm:                        # the token `nusec serve` uses: it checks the image with this key
  token_label: nusec-issuing
  user_pin: {{env: NUSEC_ISSUING_PIN}}
  so_pin: {{env: NUSEC_ISSUING_SO_PIN}}
nubl2:
  key_label: nusec-nubl2            # `nusec serve --nubl2-key-label`
  image: nubl2.bin                  # the reviewed raw NuBL2 binary (make snippets: nusec/board/bin/nubl2.bin)
  version: 1.0.0
outputs:
  directory: nubl2-key-out
  signed_image: nubl2-signed.bin    # for `nusec serve --nubl2-image`
  public_key: nubl2-root.pub.pem    # the ROM root key, as PEM
  transcript: transcript.jsonl
"""


def _raw_image(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"nubl2.image: cannot read {path}: {exc.strerror or exc}") from None
    if not data:
        raise ConfigError(f"nubl2.image: {path} is empty")
    return data


def run(
    loaded: LoadedNubl2Key,
    *,
    rehearsal: bool = False,
    rehearsal_dir: Path | None = None,
    say: Callable[[str], None] = log.info,
) -> Nubl2KeyResult:
    """Run the nubl2-key ceremony (module docstring)."""
    config = loaded.config
    check_duties(config.ceremony, [], rehearsal=rehearsal)
    raw = _raw_image(Path(config.nubl2.image))
    plan = out.planned_outputs(
        config.outputs.directory,
        {
            "signed_image": config.outputs.signed_image,
            "public_key": config.outputs.public_key,
            "transcript": config.outputs.transcript,
        },
        rehearsal=rehearsal,
        rehearsal_dir=rehearsal_dir,
    )
    label = config.nubl2.key_label
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
        require_role(hsm, "issuing")
        refuse_finished(hsm, [label])
        if label in hsm.list_labels():
            raise KeyExistsError(f"key '{label}' already exists on token '{hsm.token_label}'")
        journal, _ = Journal.resume_or_start(
            journal_path(plan.final_dir), kind="nubl2-key", config_sha256=loaded.sha256
        )
        with staged_transcript(plan, config.ceremony) as transcript:
            transcript.append("open", tokens.open_record("nubl2-key", loaded, rehearsal=rehearsal))
            say(f"step 1/3: NuBL2 signing key '{label}' on the issuing token '{hsm.token_label}'")
            key = make_key(hsm, label, KeyPolicy(), None, journal, "nubl2_key")
            record = key_record(hsm, key, KeyPolicy(), False, "nubl2-root")
            transcript.append("nubl2_key", {**record, "transcript_signer": True})
            say(f"step 2/3: NuBL2 ({len(raw)} bytes) signed as an MCUboot image, header 0x400")
            try:
                signed = sign_nubl2(
                    raw, key.public_key, lambda d: hsm.sign_digest(label, d), config.nubl2.version
                )
            except Nubl2Error as exc:
                raise CeremonyError(f"nubl2.image: {exc}") from None
            out.write_atomic(plan.staged("signed_image"), signed)
            pem = key.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            out.write_atomic(plan.staged("public_key"), pem)
            image_sha256 = hashlib.sha256(signed).hexdigest()
            transcript.append(
                "nubl2_signed",
                {
                    "input_sha256": hashlib.sha256(raw).hexdigest(),
                    "image_sha256": image_sha256,
                    "version": config.nubl2.version,
                    "key_spki_sha256": spki_sha256(key.public_key),
                },
                outputs={
                    "signed_image": plan.staged("signed_image"),
                    "public_key": plan.staged("public_key"),
                },
            )
            say("step 3/3: transcript signed by the new NuBL2 key")
            digest = transcript.close(
                lambda d: hsm.sign_digest(label, d),
                key.public_key,
                {"signer_spki_sha256": spki_sha256(key.public_key)},
            )
            out.publish(plan)
        write_ceremony_record(
            hsm,
            kind="nubl2-key",
            name=config.ceremony.name,
            keys={label: {"role": "nubl2-root", "spki_sha256": spki_sha256(key.public_key)}},
            transcript_sha256=digest,
        )
        journal.finish()
    return Nubl2KeyResult(
        output_dir=plan.final_dir,
        signed_image=plan.final("signed_image"),
        public_key=plan.final("public_key"),
        transcript=plan.final("transcript"),
        key_label=label,
        key_spki_sha256=spki_sha256(key.public_key),
        image_sha256=image_sha256,
        issuing_token_label=hsm.token_label,
        rehearsal=rehearsal,
        rehearsal_issuing_token=tokens.rehearsal.get("issuing"),
    )
