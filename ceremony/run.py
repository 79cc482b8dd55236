"""The root key ceremony as one straight function: every irreversible action is a visible step.

Order (each step ends with a transcript line):

0. checks before any HSM action: config valid, outputs folder absent, PIN/passphrase sources
   readable, token present and PINs accepted, key labels free (or ``reuse``);
1. root key pair in the HSM (P-256, sensitive, extractable only under a trusted KEK);
2. root certificate (linted on a throwaway-key copy before the HSM signs, and after);
3. ICA key pair; 4. ICA certificate signed by the root key; 5. chain (ICA, root);
6. backup: a KEK from the HSM's RNG is split into M-of-N SLIP-39 shares, imported as a trusted
   wrapping key (security-officer session), wraps both CA keys (AES key wrap with padding),
   and is destroyed;
7. shares written (one file per custodian) or shown once;
8. transcript closed with the new root key's signature; the staging folder is renamed to the
   outputs folder in one step.

Re-running after an interruption: nothing was published (the staging folder is discarded), and
keys already on the token are refused unless ``reuse=True`` (then used as they are; certificates
and the backup are made afresh), so no key is ever duplicated.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ceremony import outputs as out
from ceremony.backup import CustodianShare, combine_shares, kek_check_value, share_file_text, split_kek
from ceremony.config import CeremonyConfig, LoadedConfig, Subject
from ceremony.errors import BackupError, CeremonyError, ConfigError, KeyExistsError
from ceremony.hsm import RehearsalToken, configured_token, create_rehearsal_token, open_token
from ceremony.summary import fields_as_dict
from ceremony.transcript import TranscriptWriter, spki_sha256
from pki.ca import Issuer, create_root_certificate, issue_ica_certificate, lint_certificate
from pki.hsm import KeyPolicy

#: Shown to custodians in ``delivery: print`` mode: (share, total, threshold, kek check value).
ShareSink = Callable[[CustodianShare, int, int, str], None]
#: Progress messages (one line each, never secret).
Say = Callable[[str], None]

WRAP_MECHANISM = "CKM_AES_KEY_WRAP_PAD"


@dataclass(frozen=True)
class CeremonyResult:
    """Where everything went. Paths are in the published outputs folder."""

    output_dir: Path
    root_cert: Path
    ica_cert: Path
    chain: Path
    wrapped_root_key: Path
    wrapped_ica_key: Path
    transcript: Path
    share_files: tuple[Path, ...]
    root_cert_sha256: str
    ica_cert_sha256: str
    root_key_label: str
    ica_key_label: str
    token_label: str
    module: Path
    rehearsal: bool
    reused_keys: tuple[str, ...] = ()
    #: Rehearsal only: the throwaway token (SOFTHSM2_CONF, PIN files) so later stages can use it.
    rehearsal_token: RehearsalToken | None = field(default=None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (paths as strings); never contains a PIN or a share."""
        return fields_as_dict(self)


def tool_version() -> str:
    """``nusec <version>`` as installed (recorded in transcripts)."""
    try:
        return f"nusec {importlib.metadata.version('nusec')}"
    except importlib.metadata.PackageNotFoundError:
        return "nusec (not installed)"


def x509_name(subject: Subject) -> x509.Name:
    """The config's subject as an X.509 name (C, O, OU, CN order)."""
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, subject.country),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject.organization),
    ]
    if subject.organizational_unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, subject.organizational_unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, subject.common_name))
    return x509.Name(attrs)


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def cert_sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _cert_record(cert: x509.Certificate) -> dict[str, Any]:
    findings = lint_certificate(cert)
    return {
        "cert_sha256": cert_sha256(cert),
        "serial": format(cert.serial_number, "x"),
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "lint": {
            "linter": "pkilint (RFC 5280), throwaway-key copy before signing and the result after",
            "errors": sum(f.severity in ("ERROR", "FATAL") for f in findings),
            "findings": [str(f) for f in findings if f.severity not in ("ERROR", "FATAL")],
        },
    }


def _key_record(
    label: str, key_id: bytes, public_key: ec.EllipticCurvePublicKey, reused: bool
) -> dict[str, Any]:
    return {
        "label": label,
        "key_id": key_id.hex(),
        "spki_sha256": spki_sha256(public_key),
        "curve": "P-256",
        "attributes": "CKA_TOKEN, CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_WRAP_WITH_TRUSTED",
        "reused": reused,
    }


def share_file_name(share: CustodianShare) -> str:
    """``03-erin-custodian.txt``: index first (so files sort), then a filesystem-safe name."""
    slug = re.sub(r"[^a-z0-9]+", "-", share.custodian.lower()).strip("-") or "custodian"
    return f"{share.index:02d}-{slug}.txt"


def rehearsal_plan(config: CeremonyConfig, rehearsal_dir: Path) -> out.OutputPlan:
    """Rehearsal outputs: same file names, inside ``rehearsal_dir`` instead of the real folder."""
    return out.OutputPlan(rehearsal_dir / config.outputs.directory.name, config.outputs.file_names())


def run_ceremony(
    loaded: LoadedConfig,
    *,
    rehearsal: bool = False,
    reuse: bool = False,
    rehearsal_dir: Path | None = None,
    show_share: ShareSink | None = None,
    say: Say = lambda _msg: None,
) -> CeremonyResult:
    """Run the whole ceremony described by ``loaded`` (see the module docstring for the steps).

    ``rehearsal=True``: a throwaway SoftHSM2 token is made in ``rehearsal_dir`` (default: a new
    temporary folder) and the outputs go there too; the config's HSM section is not used.
    Raises ``CeremonyError`` or ``pki.errors.PkiError`` with a one-line message; on failure
    nothing is published and the staging folder is removed.
    """
    config = loaded.config
    backup = config.backup

    # --- 0. every check that needs no HSM action --------------------------------------------
    if backup.delivery == "print" and show_share is None:
        raise ConfigError("backup.delivery is 'print' but nothing can show the shares here; use 'files'")
    if rehearsal:
        base = (
            rehearsal_dir if rehearsal_dir is not None else Path(tempfile.mkdtemp(prefix="nusec-rehearsal-"))
        )
        plan = rehearsal_plan(config, base.resolve())
    else:
        plan = out.OutputPlan(config.outputs.directory, config.outputs.file_names())
    out.refuse_existing(plan)
    passphrase = backup.passphrase.read("backup.passphrase").encode("utf-8") if backup.passphrase else b""
    rehearsal_token: RehearsalToken | None = None
    if rehearsal:
        say(f"rehearsal: creating a throwaway SoftHSM2 token in {plan.final_dir.parent / 'softhsm'}")
        rehearsal_token = create_rehearsal_token(plan.final_dir.parent / "softhsm", config.hsm.token_label)
        token = rehearsal_token.as_ceremony_token()
    else:
        token = configured_token(config.hsm, with_so_pin=True)

    # Lock the outputs' folder, then open and log in: wrong PIN / missing token stop here.
    with out.exclusive(plan), open_token(token) as hsm:
        existing = [
            label for label in (config.root.key_label, config.ica.key_label) if hsm.find_ec_keypair(label)
        ]
        if existing and not reuse:
            raise KeyExistsError(
                f"key '{existing[0]}' already exists on token '{token.label}' (interrupted earlier run?);"
                " re-run with --reuse to use it"
            )
        # A KEK left by an interrupted run is destroyed (its shares were never published); then
        # the SO PIN is proven now, not at step 6: a trusted KEK is made and destroyed at once.
        stale_kek = hsm.find_secret_key(backup.kek_label)
        if stale_kek is not None:
            hsm.destroy_secret_key(stale_kek)
        hsm.destroy_secret_key(hsm.generate_aes_kek(backup.kek_label, trusted=True))
        stale = out.start_staging(plan)
        transcript = TranscriptWriter(
            plan.staged("transcript"), operator=config.ceremony.operator, witnesses=config.ceremony.witnesses
        )
        try:
            transcript.append(
                "open",
                {
                    "kind": "ceremony",
                    "tool": tool_version(),
                    "name": config.ceremony.name,
                    "config_sha256": loaded.sha256,
                    "config_file": str(loaded.source) if loaded.source else None,
                    "rehearsal": rehearsal,
                    "module": str(token.module),
                    "token_label": token.label,
                    "reuse_requested": reuse,
                    "existing_keys": existing,
                    "stale_staging_removed": stale,
                    "stale_kek_destroyed": stale_kek is not None,
                    "so_pin_checked": True,
                },
            )

            # --- 1. root key ----------------------------------------------------------------
            say(f"step 1/8: root key pair '{config.root.key_label}' in the HSM")
            root_key = hsm.generate_ec_keypair(config.root.key_label, policy=KeyPolicy.ca_key(), reuse=reuse)
            reused_root = config.root.key_label in existing
            transcript.append(
                "root_key",
                _key_record(root_key.label, root_key.key_id, root_key.public_key, reused_root),
            )

            # --- 2. root certificate (linted before and after the HSM signs) -----------------
            say("step 2/8: root certificate (pkilint on a throwaway-key copy, HSM signs, pkilint again)")
            root_cert = create_root_certificate(
                hsm,
                config.root.key_label,
                x509_name(config.root.subject),
                validity=timedelta(days=config.root.validity_days),
            )
            out.write_atomic(plan.staged("root_cert"), cert_pem(root_cert))
            transcript.append(
                "root_cert", _cert_record(root_cert), outputs={"root_cert": plan.staged("root_cert")}
            )

            # --- 3. ICA key -----------------------------------------------------------------
            say(f"step 3/8: ICA key pair '{config.ica.key_label}' in the HSM")
            ica_key = hsm.generate_ec_keypair(config.ica.key_label, policy=KeyPolicy.ca_key(), reuse=reuse)
            reused_ica = config.ica.key_label in existing
            transcript.append(
                "ica_key", _key_record(ica_key.label, ica_key.key_id, ica_key.public_key, reused_ica)
            )

            # --- 4. ICA certificate signed by the root key ----------------------------------
            say("step 4/8: ICA certificate signed by the root key (linted before and after)")
            root = Issuer(hsm, config.root.key_label, root_cert).check()
            ica_cert = issue_ica_certificate(
                root,
                ica_key.public_key,
                x509_name(config.ica.subject),
                validity=timedelta(days=config.ica.validity_days),
            )
            try:
                ica_cert.verify_directly_issued_by(root_cert)
            except (ValueError, TypeError, InvalidSignature):
                raise CeremonyError(
                    "the ICA certificate does not verify against the root certificate"
                ) from None
            out.write_atomic(plan.staged("ica_cert"), cert_pem(ica_cert))
            transcript.append(
                "ica_cert", _cert_record(ica_cert), outputs={"ica_cert": plan.staged("ica_cert")}
            )

            # --- 5. chain -------------------------------------------------------------------
            say("step 5/8: chain (ICA, then root)")
            out.write_atomic(plan.staged("chain"), cert_pem(ica_cert) + cert_pem(root_cert))
            transcript.append("chain", {"order": ["ica", "root"]}, outputs={"chain": plan.staged("chain")})

            # --- 6. backup: KEK from the HSM's RNG -> shares -> trusted KEK -> wrap -> destroy --
            say(
                f"step 6/8: backup KEK, {backup.threshold}-of-{len(backup.custodians)} shares,"
                " wrap both CA keys"
            )
            kek = bytearray(hsm.random_bytes(32))
            try:
                check = kek_check_value(bytes(kek))
                shares = split_kek(bytes(kek), backup.custodians, backup.threshold, passphrase)
                if combine_shares([s.mnemonic for s in shares[: backup.threshold]], passphrase) != bytes(kek):
                    raise BackupError("self-check failed: the first M shares do not rebuild the KEK")
                kek_handle = hsm.import_aes_kek(bytes(kek), backup.kek_label, trusted=True, persistent=True)
            finally:
                kek[:] = bytes(len(kek))
            try:
                wrapped_root = hsm.wrap_private_key(config.root.key_label, kek_handle)
                wrapped_ica = hsm.wrap_private_key(config.ica.key_label, kek_handle)
            finally:
                hsm.destroy_secret_key(kek_handle)
            out.write_atomic(plan.staged("wrapped_root_key"), wrapped_root)
            out.write_atomic(plan.staged("wrapped_ica_key"), wrapped_ica)
            transcript.append(
                "backup",
                {
                    "kek": "AES-256 from the HSM RNG, imported with CKA_TRUSTED (SO session), destroyed",
                    "kek_check": check,
                    "mechanism": WRAP_MECHANISM,
                    "scheme": "SLIP-39 (shamir-mnemonic), one group",
                    "threshold": backup.threshold,
                    "passphrase": backup.passphrase is not None,
                    "custodians": [
                        {"name": s.custodian, "index": s.index, "share_sha256": s.fingerprint()}
                        for s in shares
                    ],
                    "wrapped": {
                        "root": {"label": config.root.key_label, "file": plan.names["wrapped_root_key"]},
                        "ica": {"label": config.ica.key_label, "file": plan.names["wrapped_ica_key"]},
                    },
                },
                outputs={
                    "wrapped_root_key": plan.staged("wrapped_root_key"),
                    "wrapped_ica_key": plan.staged("wrapped_ica_key"),
                },
            )

            # --- 7. shares to the custodians -----------------------------------------------
            say(f"step 7/8: custodian shares ({backup.delivery})")
            share_files: list[Path] = []
            total = len(shares)
            for share in shares:
                if backup.delivery == "files":
                    path = plan.staging_dir / plan.names["shares_dir"] / share_file_name(share)
                    text = share_file_text(
                        share,
                        ceremony=config.ceremony.name,
                        threshold=backup.threshold,
                        total=total,
                        check=check,
                    )
                    out.write_atomic(path, text.encode("utf-8"), mode=0o600)
                    share_files.append(plan.final_dir / path.relative_to(plan.staging_dir))
                else:
                    assert show_share is not None
                    show_share(share, total, backup.threshold, check)
            transcript.append(
                "shares",
                {
                    "delivery": backup.delivery,
                    "files": [p.relative_to(plan.final_dir).as_posix() for p in share_files],
                },
            )
            del shares

            # --- 8. close the transcript with the root key, publish the folder --------------
            say("step 8/8: transcript signed by the new root key; publishing the outputs folder")
            transcript.close(
                lambda digest: hsm.sign_digest(config.root.key_label, digest),
                root_key.public_key,
                {
                    "root_cert_sha256": cert_sha256(root_cert),
                    "ica_cert_sha256": cert_sha256(ica_cert),
                    "root_spki_sha256": spki_sha256(root_key.public_key),
                },
            )
            out.publish(plan)
        except BaseException:
            transcript.abandon()
            out.discard_staging(plan)
            raise

    reused = tuple(label for label, r in ((root_key.label, reused_root), (ica_key.label, reused_ica)) if r)
    return CeremonyResult(
        output_dir=plan.final_dir,
        root_cert=plan.final("root_cert"),
        ica_cert=plan.final("ica_cert"),
        chain=plan.final("chain"),
        wrapped_root_key=plan.final("wrapped_root_key"),
        wrapped_ica_key=plan.final("wrapped_ica_key"),
        transcript=plan.final("transcript"),
        share_files=tuple(share_files),
        root_cert_sha256=cert_sha256(root_cert),
        ica_cert_sha256=cert_sha256(ica_cert),
        root_key_label=config.root.key_label,
        ica_key_label=config.ica.key_label,
        token_label=token.label,
        module=token.module,
        rehearsal=rehearsal,
        reused_keys=reused,
        rehearsal_token=rehearsal_token,
    )
