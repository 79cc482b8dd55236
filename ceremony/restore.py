"""Restore: M custodian shares -> KEK -> unwrap the RootCA and ICA keys into fresh tokens.

Why it is careful before touching the HSM: the ceremony folder is verified first (hash chain,
root signature, every output's hash), so the wrapped keys and certificates used are exactly the
ones the ceremony signed; the KEK rebuilt from the shares is compared with the ceremony's
recorded check value, so wrong shares or a wrong passphrase are reported as such rather than
as an HSM unwrap failure. The restore ends with its own transcript, closed with a signature
by the *restored* root key, which proves the restored key is the root certificate's key.

The config names the target tokens (``hsm`` for the root key, ``issuing_hsm`` for the ICA key:
they stay on separate tokens), the key labels (``root``/``ica``), the passphrase source
(``backup.passphrase``) and the people (``ceremony``); it is usually the ceremony's own file
with the ``hsm`` sections pointed at the new tokens. Share files are checked word by word first
(SLIP-39 wordlist and checksum: a mistyped word is named as such), then for membership.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ceremony import outputs as out
from ceremony.backup import (
    check_share_words,
    combine_shares,
    kek_check_value,
    read_share_file,
    share_fingerprint,
)
from ceremony.common import environment, tool_version
from ceremony.config import LoadedConfig
from ceremony.errors import KeyExistsError, RestoreError, TranscriptError
from ceremony.hsm import RehearsalToken, configured_token, create_rehearsal_token, open_token
from ceremony.restore_config import LoadedRestore
from ceremony.run import Say, cert_sha256
from ceremony.summary import fields_as_dict
from ceremony.transcript import TranscriptWriter, file_sha256, spki_sha256, verify_transcript
from pki.hsm import KeyPolicy
from pki.hsm.preflight import require as require_role
from pki.hsm.roles import ROOT, write_ceremony_record

log = logging.getLogger(__name__)

RESTORE_TRANSCRIPT = "restore-transcript.jsonl"
_PROBE = b"nusec ceremony restore: the restored key signs"


@dataclass(frozen=True)
class RestoreResult:
    """The restore transcript and where the keys now are."""

    output_dir: Path
    transcript: Path
    token_label: str
    issuing_token_label: str
    module: Path
    root_key_label: str
    ica_key_label: str
    shares_used: int
    rehearsal: bool
    rehearsal_token: RehearsalToken | None = field(default=None)
    rehearsal_issuing_token: RehearsalToken | None = field(default=None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (paths as strings); never contains a PIN or a share."""
        return fields_as_dict(self)


@dataclass(frozen=True)
class _Ceremony:
    """What restore needs from a verified ceremony folder."""

    transcript: Path
    transcript_sha256: str
    kek_check: str
    #: share SHA-256 -> custodian name, as recorded by the ceremony's backup step
    custodians: dict[str, str]
    root_cert: x509.Certificate
    ica_cert: x509.Certificate
    wrapped_root: bytes
    wrapped_ica: bytes


def _read_ceremony(folder: Path) -> _Ceremony:
    """Find and verify the ceremony transcript in ``folder``; load what it vouches for."""
    candidates = sorted(folder.glob("*.jsonl"))
    if len(candidates) != 1:
        raise RestoreError(
            f"{folder}: expected exactly one ceremony transcript (*.jsonl), found {len(candidates)}"
        )
    path = candidates[0]
    report = verify_transcript(path)
    if report.kind != "ceremony":
        raise RestoreError(f"{path} is not a ceremony transcript (kind {report.kind!r})")
    steps = {obj["step"]: obj for obj in (json.loads(line) for line in path.read_bytes().splitlines())}
    try:
        kek_check = str(steps["backup"]["data"]["kek_check"])
        custodians = {str(c["share_sha256"]): str(c["name"]) for c in steps["backup"]["data"]["custodians"]}
        wrapped = steps["backup"]["data"]["wrapped"]
        root_blob = (folder / str(wrapped["root"]["file"])).read_bytes()
        ica_blob = (folder / str(wrapped["ica"]["file"])).read_bytes()
        root_name = next(iter(steps["root_cert"]["outputs"]))
        ica_name = next(iter(steps["ica_cert"]["outputs"]))
    except (KeyError, TypeError, StopIteration):
        raise RestoreError(f"{path}: transcript lacks the root_cert, ica_cert or backup record") from None
    return _Ceremony(
        transcript=path,
        transcript_sha256=file_sha256(path),
        kek_check=kek_check,
        custodians=custodians,
        root_cert=x509.load_pem_x509_certificate((folder / root_name).read_bytes()),
        ica_cert=x509.load_pem_x509_certificate((folder / ica_name).read_bytes()),
        wrapped_root=root_blob,
        wrapped_ica=ica_blob,
    )


def run_restore(
    loaded: LoadedRestore,
    *,
    rehearsal: bool = False,
    rehearsal_dir: Path | None = None,
    say: Say = log.info,
) -> RestoreResult:
    """The restore ceremony from its own reviewed file (``type: restore``)."""
    from ceremony.config import check_duties

    check_duties(loaded.config.ceremony, [], rehearsal=rehearsal)
    section = loaded.config.restore
    output = loaded.config.outputs.directory
    if rehearsal:
        base = (rehearsal_dir or Path(tempfile.mkdtemp(prefix="nusec-restore-"))).resolve()
        output = base / output.name
    return restore_keys(
        loaded,
        section.ceremony_dir,
        list(section.shares),
        output,
        rehearsal=rehearsal,
        rehearsal_dir=rehearsal_dir,
        say=say,
    )


def _verify_key(public_key: ec.EllipticCurvePublicKey, signature: bytes, what: str) -> None:
    try:
        public_key.verify(signature, _PROBE, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise RestoreError(
            f"the restored {what} key's signature does not verify with its certificate"
        ) from None


def restore_keys(
    loaded: LoadedConfig | LoadedRestore,
    ceremony_dir: Path,
    share_files: list[Path],
    output_dir: Path,
    *,
    rehearsal: bool = False,
    rehearsal_dir: Path | None = None,
    say: Say = log.info,
) -> RestoreResult:
    """Rebuild the KEK from ``share_files`` and unwrap both CA keys into the config's token.

    ``output_dir`` (must not exist) receives the signed restore transcript. ``rehearsal=True``
    restores into a throwaway SoftHSM2 token under ``rehearsal_dir`` instead.
    """
    config = loaded.config
    # --- 0. checks before any HSM action ------------------------------------------------------
    plan = out.OutputPlan(output_dir.resolve(), {"transcript": RESTORE_TRANSCRIPT})
    out.refuse_existing(plan)
    ceremony = _read_ceremony(ceremony_dir)
    mnemonics = [read_share_file(p) for p in share_files]
    for path, words in zip(share_files, mnemonics, strict=True):
        check_share_words(words, path)  # wordlist and checksum first: a typo is named as one
    holders: list[str] = []
    for path, words in zip(share_files, mnemonics, strict=True):
        holder = ceremony.custodians.get(share_fingerprint(words))
        if holder is None:
            raise RestoreError(f"share file {path} is not one of this ceremony's shares")
        holders.append(holder)
    passphrase = (
        config.backup.passphrase.read("backup.passphrase").encode("utf-8")
        if config.backup.passphrase
        else b""
    )
    say(f"combining {len(mnemonics)} shares")
    kek = bytearray(combine_shares(mnemonics, passphrase))
    try:
        if kek_check_value(bytes(kek)) != ceremony.kek_check:
            raise RestoreError(
                "the shares (or passphrase) do not rebuild this ceremony's KEK (check value differs)"
            )
        rehearsal_token: RehearsalToken | None = None
        rehearsal_issuing: RehearsalToken | None = None
        if rehearsal:
            base = (
                rehearsal_dir
                if rehearsal_dir is not None
                else Path(tempfile.mkdtemp(prefix="nusec-restore-"))
            )
            rehearsal_token = create_rehearsal_token(base / "softhsm-restore", config.hsm.token_label)
            rehearsal_issuing = create_rehearsal_token(
                base / "softhsm-restore", config.issuing_hsm.token_label, pin_prefix="issuing-"
            )
            token, issuing_token = rehearsal_token.as_ceremony_token(), rehearsal_issuing.as_ceremony_token()
        else:
            token = configured_token(config.hsm, with_so_pin=False)
            issuing_token = configured_token(config.issuing_hsm, with_so_pin=False)
        root_pub = ceremony.root_cert.public_key()
        ica_pub = ceremony.ica_cert.public_key()
        if not isinstance(root_pub, ec.EllipticCurvePublicKey) or not isinstance(
            ica_pub, ec.EllipticCurvePublicKey
        ):
            raise RestoreError("ceremony certificates do not carry EC keys")

        with out.exclusive(plan), open_token(token) as hsm, open_token(issuing_token) as issuing_hsm:
            require_role(hsm, "root")  # the module can do what the role needs, before any write
            require_role(issuing_hsm, "issuing")
            for label, target in ((config.root.key_label, hsm), (config.ica.key_label, issuing_hsm)):
                if target.find_ec_keypair(label) is not None:
                    raise KeyExistsError(
                        f"key '{label}' already exists on token '{target.token_label}';"
                        " restore needs a fresh token"
                    )
            out.start_staging(plan)
            transcript = TranscriptWriter(
                plan.staged("transcript"),
                operator=config.ceremony.operator,
                witnesses=config.ceremony.witnesses,
            )
            try:
                transcript.append(
                    "open",
                    {
                        "kind": "restore",
                        "tool": tool_version(),
                        "environment": environment(),
                        "name": config.ceremony.name,
                        "config_sha256": loaded.sha256,
                        "config_text": loaded.text,
                        "rehearsal": rehearsal,
                        "module": str(token.module),
                        "token_label": token.label,
                        "issuing_token_label": issuing_token.label,
                        "tokens": {"root": hsm.token_info(), "issuing": issuing_hsm.token_info()},
                        "inventory": {"root": hsm.inventory(), "issuing": issuing_hsm.inventory()},
                        "ceremony_transcript_sha256": ceremony.transcript_sha256,
                        "root_cert_sha256": cert_sha256(ceremony.root_cert),
                        "root_spki_sha256": spki_sha256(root_pub),
                    },
                )
                # --- 1. KEK into each token (session object), shares checked against the record --
                say("step 1/4: KEK rebuilt from the shares (imported per token as a session unwrapping key)")
                transcript.append(
                    "kek",
                    {
                        "shares_used": len(mnemonics),
                        "custodians": sorted(holders),
                        "share_sha256": sorted(share_fingerprint(m) for m in mnemonics),
                        "kek_check": ceremony.kek_check,
                    },
                )
                # --- 2. unwrap both keys (checked against the certificates' public keys) ------
                say(
                    "step 2/4: unwrapping the RootCA key into the root token,"
                    " the ICA key into the issuing token"
                )
                policy = KeyPolicy.ca_key()
                restored = []
                for target, label, blob, pub in (
                    (hsm, config.root.key_label, ceremony.wrapped_root, root_pub),
                    (issuing_hsm, config.ica.key_label, ceremony.wrapped_ica, ica_pub),
                ):
                    kek_handle = target.import_aes_kek(bytes(kek), None, trusted=False, persistent=False)
                    try:
                        info = target.unwrap_private_key(blob, kek_handle, label, pub, policy=policy)
                    finally:
                        target.destroy_secret_key(kek_handle)
                    restored.append(
                        {
                            "label": info.label,
                            "token_label": target.token_label,
                            "spki_sha256": spki_sha256(info.public_key),
                            "attributes_read": target.key_attributes(label),
                        }
                    )
                transcript.append(
                    "unwrap",
                    {
                        "root": restored[0],
                        "ica": restored[1],
                        "kek_destroyed": True,
                        "inventory": {"root": hsm.inventory(), "issuing": issuing_hsm.inventory()},
                    },
                )
                # --- 3. each restored key signs; the certificates' keys verify --------------
                say("step 3/4: restored keys sign a test message; certificates' public keys verify it")
                digest = hashlib.sha256(_PROBE).digest()
                _verify_key(root_pub, hsm.sign_digest(config.root.key_label, digest), "root")
                _verify_key(ica_pub, issuing_hsm.sign_digest(config.ica.key_label, digest), "ICA")
                transcript.append("sign_check", {"message_sha256": digest.hex(), "root": "ok", "ica": "ok"})
                # --- 4. close with the restored root key ------------------------------------
                say("step 4/4: restore transcript signed by the restored root key")
                transcript_sha = transcript.close(
                    lambda d: hsm.sign_digest(config.root.key_label, d),
                    root_pub,
                    {
                        "root_cert_sha256": cert_sha256(ceremony.root_cert),
                        "root_spki_sha256": spki_sha256(root_pub),
                    },
                )
                out.publish(plan)
            except BaseException:
                transcript.abandon()
                out.discard_staging(plan)
                raise
            for target, label, role, pub in (
                (hsm, config.root.key_label, ROOT, root_pub),
                (issuing_hsm, config.ica.key_label, "ica", ica_pub),
            ):
                write_ceremony_record(
                    target,
                    kind="restore",
                    name=config.ceremony.name,
                    keys={label: {"role": role, "spki_sha256": spki_sha256(pub)}},
                    transcript_sha256=transcript_sha,
                )
    finally:
        kek[:] = bytes(len(kek))

    return RestoreResult(
        output_dir=plan.final_dir,
        transcript=plan.final("transcript"),
        token_label=token.label,
        issuing_token_label=issuing_token.label,
        module=token.module,
        root_key_label=config.root.key_label,
        ica_key_label=config.ica.key_label,
        shares_used=len(mnemonics),
        rehearsal=rehearsal,
        rehearsal_token=rehearsal_token,
        rehearsal_issuing_token=rehearsal_issuing,
    )


__all__ = ["RESTORE_TRANSCRIPT", "RestoreResult", "TranscriptError", "restore_keys"]
