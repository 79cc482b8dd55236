"""The restore ceremony's own YAML (``type: restore``): target tokens, labels, the ceremony
folder and the share files, reviewed like every other ceremony file.

Why a file of its own: a restore is a ceremony too (operator, witnesses, custodians handing in
shares), and the people and paths it uses should be read aloud and signed off before it runs,
not typed as command-line options on the day. ``nusec ceremony restore`` with the root
ceremony's file and ``--from``/``--share`` options does the same steps.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from ceremony.config import (
    _LABEL_RE,
    CeremonyInfo,
    HsmSection,
    LaxPath,
    SecretSource,
    _Strict,
    read_yaml_mapping,
    resolve_paths,
    validate_model,
)


class KeyRef(_Strict):
    key_label: Annotated[str, Field(pattern=_LABEL_RE)]


class PassphraseRef(_Strict):
    passphrase: SecretSource | None = None


class RestoreSection(_Strict):
    #: the published outputs folder of the root ceremony
    ceremony_dir: LaxPath
    #: M share files handed in by the custodians
    shares: Annotated[list[LaxPath], Field(min_length=1, max_length=16)]


class RestoreOutputs(_Strict):
    directory: LaxPath


class RestoreConfig(_Strict):
    version: Literal[1]
    type: Literal["restore"]
    ceremony: CeremonyInfo
    hsm: HsmSection
    issuing_hsm: HsmSection
    root: KeyRef
    ica: KeyRef
    backup: PassphraseRef = PassphraseRef()
    restore: RestoreSection
    outputs: RestoreOutputs


@dataclass(frozen=True)
class LoadedRestore:
    config: RestoreConfig
    source: Path | None
    sha256: str
    text: str


def parse(text: str, *, base_dir: Path, source: Path | None = None) -> LoadedRestore:
    where = str(source) if source is not None else "config"
    config = validate_model(RestoreConfig, read_yaml_mapping(text, where), where)
    config = resolve_paths(config, base_dir)
    restore = config.restore.model_copy(
        update={"shares": [p if p.is_absolute() else base_dir / p for p in config.restore.shares]}
    )
    config = config.model_copy(update={"restore": restore})
    return LoadedRestore(config, source, hashlib.sha256(text.encode()).hexdigest(), text)


TEMPLATE = """\
# NuSec restore ceremony: M custodian shares rebuild the backup KEK; the RootCA key is unwrapped
# into a fresh offline token and the ICA key into a fresh online token.
version: 1
type: restore
ceremony:
  name: "NuSec key restore {date}"
  operator: "Alice Operator"
  witnesses:
    - "Bob Witness"
hsm:                                # the fresh OFFLINE token for the root key
  token_label: nusec-root-2
  user_pin: {{env: NUSEC_HSM_PIN}}
  so_pin: {{env: NUSEC_HSM_SO_PIN}}
issuing_hsm:                        # the fresh ONLINE token for the ICA key
  token_label: nusec-issuing-2
  user_pin: {{env: NUSEC_ISSUING_PIN}}
  so_pin: {{env: NUSEC_ISSUING_SO_PIN}}
root:
  key_label: nusec-root-ca
ica:
  key_label: nusec-ica
backup: {{}}                          # passphrase: {{env: NUSEC_SHARE_PASSPHRASE}} if the shares have one
restore:
  ceremony_dir: ceremony-out        # the root ceremony's published folder (its transcript is verified)
  shares:                           # M share files
    - ceremony-out/shares/01-carol-custodian.txt
    - ceremony-out/shares/02-dave-custodian.txt
outputs:
  directory: restore-out            # receives the signed restore transcript
"""
