"""The root key ceremony as one straight function: every irreversible action is a visible step.

Two tokens: ``hsm`` (offline, the root key) and ``issuing_hsm`` (online, the ICA key the
service signs with). Order (each step ends with a transcript line):

0. checks before any HSM action: config valid, duties separate (unless rehearsal), clock agrees
   with the reviewed dates, outputs folder absent, PIN/passphrase sources follow the secret-file
   rules; then both tokens present and PINs accepted, neither holds a finished ceremony, key
   labels free (or ``reuse`` of this config's own interrupted run), SO PINs proven;
1. root key pair on the root token (P-256, sensitive, frozen, extractable only under a trusted KEK);
2. root certificate (dates from the config; linted on a throwaway-key copy before the HSM signs,
   and after);
3. ICA key pair on the issuing token; 4. ICA certificate signed by the root key; 5. chain;
6. backup: a KEK from the root token's RNG is split into M-of-N SLIP-39 shares, imported into
   each token as a trusted *session* object, wraps that token's CA key, and is destroyed;
7. shares written (one file per custodian) or shown once;
8. transcript closed with the new root key's signature; the staging folder is renamed to the
   outputs folder; each token gets an on-token record of the finished ceremony.

Before each HSM step the run writes its intent to a journal (``ceremony.journal``); a re-run
with ``reuse`` takes back only keys whose public key the journal recorded and whose attributes
read back as the CA policy requires. A stale staging folder is wiped and recorded.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ceremony import outputs as out
from ceremony.backup import CustodianShare, combine_shares, kek_check_value, share_file_text, split_kek
from ceremony.common import environment, tool_version
from ceremony.config import CaSection, CeremonyConfig, LoadedConfig, Subject, check_clock
from ceremony.errors import BackupError, CeremonyError, ConfigError, FinishedCeremonyError, KeyExistsError
from ceremony.hsm import RehearsalToken, configured_token, create_rehearsal_token, open_token
from ceremony.journal import Journal, journal_path
from ceremony.summary import fields_as_dict
from ceremony.transcript import TranscriptWriter, spki_sha256
from pki.ca import Issuer, create_root_certificate, issue_ica_certificate
from pki.hsm import KeyPairInfo, KeyPolicy
from pki.hsm.pkcs11 import Pkcs11Backend
from pki.hsm.preflight import require as require_role
from pki.hsm.roles import ROOT, ceremony_records, write_ceremony_record

log = logging.getLogger(__name__)

#: Shown to custodians in ``delivery: print`` mode: (share, total, threshold, kek check value).
ShareSink = Callable[[CustodianShare, int, int, str], None]
#: Progress messages (one line each, never secret).
Say = Callable[[str], None]
#: Witness acknowledgement of a finished step: (step, what the witnesses check) -> witness ->
#: initials. Called before the step's transcript line is written; the line records the answers.
Acknowledge = Callable[[str, Mapping[str, Any]], dict[str, str]]

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
    root_spki_sha256: str
    ica_spki_sha256: str
    root_key_label: str
    ica_key_label: str
    token_label: str
    issuing_token_label: str
    module: Path
    rehearsal: bool
    reused_keys: tuple[str, ...] = ()
    #: Rehearsal only: the throwaway root token (SOFTHSM2_CONF, PIN files).
    rehearsal_token: RehearsalToken | None = field(default=None)
    #: Rehearsal only: the throwaway issuing token, the one later stages (the service) use.
    rehearsal_issuing_token: RehearsalToken | None = field(default=None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (paths as strings); never contains a PIN or a share."""
        return fields_as_dict(self)


def fingerprint_lines(
    root_spki_sha256: str, root_cert_sha256: str | None, signer: str = "root key"
) -> list[str]:
    """The fingerprints the witnesses write down; ``run`` and ``verify`` print these same lines
    (``signer``: what signed the transcript; the seal signer for a batch-keys ceremony)."""
    lines = [f"{signer} SPKI SHA-256:   {root_spki_sha256}"]
    if root_cert_sha256 is not None:
        lines.append(f"root certificate SHA-256: {root_cert_sha256}")
    return lines


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


def _cert_record(cert: x509.Certificate, lint_log: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "cert_sha256": cert_sha256(cert),
        "spki_sha256": spki_sha256(_ec_key(cert)),
        "serial": format(cert.serial_number, "x"),
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "lint": {
            "linter": "pkilint (RFC 5280); an ERROR stops issuance",
            "before_signing": [f for when, f in lint_log if when == "before"],
            "after_signing": [f for when, f in lint_log if when == "after"],
        },
    }


def _ec_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CeremonyError("certificate key is not EC")
    return key


def key_record(
    hsm: Pkcs11Backend, info: KeyPairInfo, policy: KeyPolicy, reused: bool, role: str
) -> dict[str, Any]:
    """What the token says about a key now: attributes as read back, never as intended."""
    attributes = hsm.key_attributes(info.label)
    unmet = _unmet(attributes, policy)
    if unmet:
        raise CeremonyError(f"key '{info.label}' on token '{hsm.token_label}' reads back with {unmet}")
    return {
        "label": info.label,
        "role": role,
        "token_label": hsm.token_label,
        "key_id": info.key_id.hex(),
        "spki_sha256": spki_sha256(info.public_key),
        "curve": "P-256",
        "attributes_read": attributes,
        "policy_required": policy.required(),
        "reused": reused,
        "inventory": hsm.inventory(),
    }


def _unmet(attributes: Mapping[str, bool | None], policy: KeyPolicy) -> str | None:
    """The first policy attribute that reads back wrong, as ``CKA_X=value``; None if all hold."""
    for name, want in policy.required().items():
        if attributes.get(name) is not want:
            return f"CKA_{name}={attributes.get(name)} (policy needs {want})"
    return None


def share_file_name(share: CustodianShare) -> str:
    """``03-erin-custodian.txt``: index first (so files sort), then a filesystem-safe name."""
    slug = re.sub(r"[^a-z0-9]+", "-", share.custodian.lower()).strip("-") or "custodian"
    return f"{share.index:02d}-{slug}.txt"


def rehearsal_plan(config: CeremonyConfig, rehearsal_dir: Path) -> out.OutputPlan:
    """Rehearsal outputs: same file names, inside ``rehearsal_dir`` instead of the real folder."""
    return out.OutputPlan(rehearsal_dir / config.outputs.directory.name, config.outputs.file_names())


def _staging_plan(config: CeremonyConfig, rehearsal: bool, rehearsal_dir: Path | None) -> out.OutputPlan:
    if rehearsal:
        base = (
            rehearsal_dir if rehearsal_dir is not None else Path(tempfile.mkdtemp(prefix="nusec-rehearsal-"))
        )
        return rehearsal_plan(config, base.resolve())
    return out.OutputPlan(config.outputs.directory, config.outputs.file_names())


def refuse_finished(hsm: Pkcs11Backend, labels: list[str], *, any_root: bool = False) -> None:
    """``FinishedCeremonyError`` if the token records a finished ceremony owning one of ``labels``
    (with ``any_root``: any finished ceremony's root key at all, whatever its label: a root
    ceremony starts on a fresh root token)."""
    for record in ceremony_records(hsm):
        mine = sorted(set(record.keys) & set(labels))
        if any_root and not mine:
            mine = sorted(label for label, info in record.keys.items() if info.get("role") == ROOT)
        if mine:
            raise FinishedCeremonyError(
                f"token '{hsm.token_label}' holds key '{mine[0]}' of the finished {record.kind} ceremony "
                f"'{record.name}' (record {record.label}); a finished ceremony is never re-run: use a fresh"
                " token, or an intermediate ceremony for a new ICA"
            )


def check_reusable(
    hsm: Pkcs11Backend, label: str, earlier: Journal | None, config_sha256: str, policy: KeyPolicy
) -> KeyPairInfo | None:
    """The existing key ``label`` if ``--reuse`` may take it back, None if there is none.

    Accepted only if this config's interrupted run journaled that very public key on this very
    token, and the key reads back as the policy requires (``LOCAL``, ``ALWAYS_SENSITIVE``,
    ``WRAP_WITH_TRUSTED``, ``MODIFIABLE`` false, ...); otherwise ``ReuseRefusedError``."""
    from ceremony.errors import ReuseRefusedError

    info = hsm.find_ec_keypair(label)
    if info is None:
        return None
    where = f"key '{label}' on token '{hsm.token_label}'"
    entry = (
        earlier.keys.get(label) if earlier is not None and earlier.config_sha256 == config_sha256 else None
    )
    if entry is None:
        raise ReuseRefusedError(
            f"{where} was not made by an interrupted run of this config (no journal entry); not reusing it"
        )
    if (
        entry.get("spki_sha256") != spki_sha256(info.public_key)
        or entry.get("token_label") != hsm.token_label
    ):
        raise ReuseRefusedError(
            f"{where} is not the key the interrupted run journaled (public key differs); not reusing it"
        )
    if entry.get("token_serial") != hsm.token_info()["token_serial"]:
        raise ReuseRefusedError(f"{where}: the journal names another token (serial differs); not reusing it")
    unmet = _unmet(hsm.key_attributes(label), policy)
    if unmet:
        raise ReuseRefusedError(f"{where} reads back with {unmet}; not reusing it")
    return info


def _acked(acknowledge: Acknowledge | None, step: str, shown: Mapping[str, Any]) -> dict[str, Any]:
    """The ``acks`` field of a step's line: each witness's initials for what they were shown."""
    if acknowledge is None:
        return {}
    return {"acks": acknowledge(step, shown)}


def run_ceremony(
    loaded: LoadedConfig,
    *,
    rehearsal: bool = False,
    reuse: bool = False,
    rehearsal_dir: Path | None = None,
    show_share: ShareSink | None = None,
    acknowledge: Acknowledge | None = None,
    now: datetime | None = None,
    say: Say = log.info,
) -> CeremonyResult:
    """Run the whole ceremony described by ``loaded`` (see the module docstring for the steps).

    ``rehearsal=True``: two throwaway SoftHSM2 tokens (root and issuing) are made in
    ``rehearsal_dir`` (default: a new temporary folder) and the outputs go there too; the
    config's HSM sections are not used, and duty conflicts are allowed. ``acknowledge`` asks
    the witnesses to confirm each step (their initials go into its transcript line).
    Raises ``CeremonyError`` or ``pki.errors.PkiError`` with a one-line message; on failure
    nothing is published and the staging folder is wiped.
    """
    config = loaded.config
    backup = config.backup
    root_policy = ica_policy = KeyPolicy.ca_key()

    # --- 0. every check that needs no HSM action --------------------------------------------
    if backup.delivery == "print" and show_share is None:
        raise ConfigError("backup.delivery is 'print' but nothing can show the shares here; use 'files'")
    loaded.check_duties(rehearsal=rehearsal)
    check_clock(config, now or datetime.now(UTC))
    plan = _staging_plan(config, rehearsal, rehearsal_dir)
    out.refuse_existing(plan)
    passphrase = backup.passphrase.read("backup.passphrase").encode("utf-8") if backup.passphrase else b""
    rehearsal_token: RehearsalToken | None = None
    rehearsal_issuing: RehearsalToken | None = None
    if rehearsal:
        softhsm_dir = plan.final_dir.parent / "softhsm"
        say(f"rehearsal: throwaway SoftHSM2 root and issuing tokens in {softhsm_dir}")
        rehearsal_token = create_rehearsal_token(softhsm_dir, config.hsm.token_label)
        rehearsal_issuing = create_rehearsal_token(
            softhsm_dir, config.issuing_hsm.token_label, pin_prefix="issuing-"
        )
        root_token, issuing_token = rehearsal_token.as_ceremony_token(), rehearsal_issuing.as_ceremony_token()
    else:
        root_token = configured_token(config.hsm, with_so_pin=True)
        issuing_token = configured_token(config.issuing_hsm, with_so_pin=True)
    labels = [config.root.key_label, config.ica.key_label]

    # Lock the outputs' folder, then open and log in: wrong PIN / missing token stop here.
    with out.exclusive(plan), open_token(root_token) as root_hsm, open_token(issuing_token) as issuing_hsm:
        for hsm, role in ((root_hsm, "root"), (issuing_hsm, "issuing")):
            require_role(hsm, role)  # the module can do what the role needs, before any write
            refuse_finished(hsm, labels, any_root=role == "root")
        journal, earlier = Journal.resume_or_start(
            journal_path(plan.final_dir), kind="ceremony", config_sha256=loaded.sha256
        )
        existing = [
            label
            for label, hsm in ((config.root.key_label, root_hsm), (config.ica.key_label, issuing_hsm))
            if hsm.find_ec_keypair(label) is not None
        ]
        if existing and not reuse:
            raise KeyExistsError(
                f"key '{existing[0]}' already exists on its token (interrupted earlier run?);"
                " re-run with --reuse to take back that run's keys"
            )
        reused_root = check_reusable(root_hsm, config.root.key_label, earlier, loaded.sha256, root_policy)
        reused_ica = check_reusable(issuing_hsm, config.ica.key_label, earlier, loaded.sha256, ica_policy)
        # A token object under the KEK label is not ours (our KEKs are session objects): destroy
        # it, record it. Then prove each SO PIN now, not at step 6 (a session KEK made and destroyed).
        stale_keks = []
        for hsm in (root_hsm, issuing_hsm):
            stale_kek = hsm.find_secret_key(backup.kek_label)
            if stale_kek is not None:
                hsm.destroy_secret_key(stale_kek)
                stale_keks.append(hsm.token_label)
            hsm.destroy_secret_key(hsm.generate_aes_kek(None, trusted=True))
        destroyed = out.start_staging(plan)
        transcript = TranscriptWriter(
            plan.staged("transcript"), operator=config.ceremony.operator, witnesses=config.ceremony.witnesses
        )
        try:
            opening: dict[str, Any] = {
                "kind": "ceremony",
                "tool": tool_version(),
                "environment": environment(),
                "name": config.ceremony.name,
                "config_sha256": loaded.sha256,
                "config_file": str(loaded.source) if loaded.source else None,
                "config_text": loaded.text,
                "rehearsal": rehearsal,
                "duty_conflicts": config.duty_conflicts(),
                "clock": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "tokens": {"root": root_hsm.token_info(), "issuing": issuing_hsm.token_info()},
                "inventory": {"root": root_hsm.inventory(), "issuing": issuing_hsm.inventory()},
                "module": str(root_token.module),
                "token_label": root_token.label,
                "issuing_token_label": issuing_token.label,
                "reuse_requested": reuse,
                "existing_keys": existing,
                "stale_kek_destroyed_on": stale_keks,
                "stale_staging_destroyed": _destroyed_record(destroyed, earlier),
                "so_pin_checked": True,
            }
            transcript.append(
                "open", {**opening, **_acked(acknowledge, "open", {"config_sha256": loaded.sha256})}
            )

            # --- 1. root key ----------------------------------------------------------------
            say(
                f"step 1/8: root key pair '{config.root.key_label}'"
                f" on the root token '{root_hsm.token_label}'"
            )
            root_key = make_key(
                root_hsm, config.root.key_label, root_policy, reused_root, journal, "root_key"
            )
            rec = key_record(root_hsm, root_key, root_policy, reused_root is not None, ROOT)
            transcript.append("root_key", {**rec, **_acked(acknowledge, "root_key", rec)})

            # --- 2. root certificate (linted before and after the HSM signs) -----------------
            say("step 2/8: root certificate (pkilint on a throwaway-key copy, HSM signs, pkilint again)")
            lint_log: list[tuple[str, str]] = []
            start, end = config.root.validity()
            journal.intend("root_cert", label=config.root.key_label)
            root_cert = create_root_certificate(
                root_hsm,
                config.root.key_label,
                x509_name(config.root.subject),
                validity=end - start,
                not_before=start,
                lint_log=lint_log,
            )
            out.write_atomic(plan.staged("root_cert"), cert_pem(root_cert))
            rec = _cert_record(root_cert, lint_log)
            transcript.append(
                "root_cert",
                {**rec, **_acked(acknowledge, "root_cert", rec)},
                outputs={"root_cert": plan.staged("root_cert")},
            )

            # --- 3. ICA key on the issuing token --------------------------------------------
            say(
                f"step 3/8: ICA key pair '{config.ica.key_label}'"
                f" on the issuing token '{issuing_hsm.token_label}'"
            )
            ica_key = make_key(issuing_hsm, config.ica.key_label, ica_policy, reused_ica, journal, "ica_key")
            rec = key_record(issuing_hsm, ica_key, ica_policy, reused_ica is not None, "ica")
            transcript.append("ica_key", {**rec, **_acked(acknowledge, "ica_key", rec)})

            # --- 4. ICA certificate signed by the root key ----------------------------------
            say("step 4/8: ICA certificate signed by the root key (linted before and after)")
            ica_cert, lint_log = sign_ica_certificate(
                root_hsm,
                config.root,
                root_cert,
                ica_key.public_key,
                config.ica,
                journal,
                plan.staged("ica_cert"),
            )
            rec = _cert_record(ica_cert, lint_log)
            transcript.append(
                "ica_cert",
                {**rec, **_acked(acknowledge, "ica_cert", rec)},
                outputs={"ica_cert": plan.staged("ica_cert")},
            )

            # --- 5. chain -------------------------------------------------------------------
            say("step 5/8: chain (ICA, then root)")
            out.write_atomic(plan.staged("chain"), cert_pem(ica_cert) + cert_pem(root_cert))
            transcript.append("chain", {"order": ["ica", "root"]}, outputs={"chain": plan.staged("chain")})

            # --- 6. backup: KEK from the HSM's RNG -> shares -> session KEKs -> wrap -> destroy --
            say(
                f"step 6/8: backup KEK, {backup.threshold}-of-{len(backup.custodians)} shares,"
                " wrap both CA keys"
            )
            kek = bytearray(root_hsm.random_bytes(32))
            try:
                check = kek_check_value(bytes(kek))
                shares = split_kek(bytes(kek), backup.custodians, backup.threshold, passphrase)
                if combine_shares([s.mnemonic for s in shares[: backup.threshold]], passphrase) != bytes(kek):
                    raise BackupError("self-check failed: the first M shares do not rebuild the KEK")
                journal.backup_made(kek_check=check, share_sha256=[s.fingerprint() for s in shares])
                journal.intend("backup", labels=labels)
                wrapped_root = _wrap_under_session_kek(
                    root_hsm, bytes(kek), config.root.key_label, backup.kek_label
                )
                wrapped_ica = _wrap_under_session_kek(
                    issuing_hsm, bytes(kek), config.ica.key_label, backup.kek_label
                )
            finally:
                kek[:] = bytes(len(kek))
            out.write_atomic(plan.staged("wrapped_root_key"), wrapped_root)
            out.write_atomic(plan.staged("wrapped_ica_key"), wrapped_ica)
            rec = {
                "kek": (
                    "AES-256 from the root token's RNG; imported into each token as a trusted session"
                    " object (SO login, then user login on the same session), never a token object;"
                    " destroyed after wrapping"
                ),
                "kek_check": check,
                "mechanism": WRAP_MECHANISM,
                "scheme": "SLIP-39 (shamir-mnemonic), one group",
                "threshold": backup.threshold,
                "passphrase": backup.passphrase is not None,
                "custodians": [
                    {"name": s.custodian, "index": s.index, "share_sha256": s.fingerprint()} for s in shares
                ],
                "wrapped": {
                    "root": {"label": config.root.key_label, "file": plan.names["wrapped_root_key"]},
                    "ica": {"label": config.ica.key_label, "file": plan.names["wrapped_ica_key"]},
                },
                "inventory": {"root": root_hsm.inventory(), "issuing": issuing_hsm.inventory()},
            }
            transcript.append(
                "backup",
                {**rec, **_acked(acknowledge, "backup", {"kek_check": check})},
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

            # --- 8. close the transcript with the root key, publish, record on the tokens ----
            say("step 8/8: transcript signed by the new root key; publishing the outputs folder")
            closing = {
                "root_cert_sha256": cert_sha256(root_cert),
                "ica_cert_sha256": cert_sha256(ica_cert),
                "root_spki_sha256": spki_sha256(root_key.public_key),
                "ica_spki_sha256": spki_sha256(ica_key.public_key),
            }
            closing.update(_acked(acknowledge, "close", closing))
            transcript_sha = transcript.close(
                lambda digest: root_hsm.sign_digest(config.root.key_label, digest),
                root_key.public_key,
                closing,
            )
            out.publish(plan)
        except BaseException:
            transcript.abandon()
            out.discard_staging(plan)
            raise
        keys = {
            config.root.key_label: {"role": ROOT, "spki_sha256": spki_sha256(root_key.public_key)},
            config.ica.key_label: {
                "role": "ica",
                "spki_sha256": spki_sha256(ica_key.public_key),
                **ca_urls(config.ica),
            },
        }
        for hsm, mine in ((root_hsm, config.root.key_label), (issuing_hsm, config.ica.key_label)):
            write_ceremony_record(
                hsm,
                kind="ceremony",
                name=config.ceremony.name,
                keys={mine: keys[mine]},
                transcript_sha256=transcript_sha,
            )
        journal.finish()

    reused = tuple(
        label for label, r in ((root_key.label, reused_root), (ica_key.label, reused_ica)) if r is not None
    )
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
        root_spki_sha256=spki_sha256(root_key.public_key),
        ica_spki_sha256=spki_sha256(ica_key.public_key),
        root_key_label=config.root.key_label,
        ica_key_label=config.ica.key_label,
        token_label=root_token.label,
        issuing_token_label=issuing_token.label,
        module=root_token.module,
        rehearsal=rehearsal,
        reused_keys=reused,
        rehearsal_token=rehearsal_token,
        rehearsal_issuing_token=rehearsal_issuing,
    )


def make_key(
    hsm: Pkcs11Backend, label: str, policy: KeyPolicy, reused: KeyPairInfo | None, journal: Journal, step: str
) -> KeyPairInfo:
    """The key pair ``label``: the checked interrupted run's key, or a new one journaled before
    and after it is made (intent first, then its public key)."""
    if reused is not None:
        return reused
    journal.intend(step, label=label, token_label=hsm.token_label)
    info = hsm.generate_ec_keypair(label, policy=policy)
    journal.key_made(
        label,
        token_serial=hsm.token_info()["token_serial"],
        token_label=hsm.token_label,
        spki_sha256=spki_sha256(info.public_key),
    )
    return info


def ca_urls(ca: CaSection) -> dict[str, str]:
    """The CA's configured CRL DP / AIA URLs, for its on-token record (``pki.hsm.roles.issuer_urls``)."""
    return {k: v for k, v in (("crl_url", ca.crl_url), ("issuer_url", ca.issuer_url)) if v}


def _issuer(hsm: Pkcs11Backend, ca: CaSection | Any, cert: x509.Certificate) -> Issuer:
    """The CA ``ca`` (anything with ``key_label``, ``crl_url``, ``issuer_url``) as an ``Issuer``."""
    return Issuer(hsm, ca.key_label, cert, crl_url=ca.crl_url, issuer_url=ca.issuer_url).check()


def sign_ica_certificate(
    root_hsm: Pkcs11Backend,
    root_ca: CaSection | Any,
    root_cert: x509.Certificate,
    ica_public_key: ec.EllipticCurvePublicKey,
    ica: CaSection,
    journal: Journal,
    staged: Path,
) -> tuple[x509.Certificate, list[tuple[str, str]]]:
    """The ICA certificate signed by the root key in the HSM (linted before and after, intent
    journaled first), checked against the root certificate, then staged. Shared by the root and
    the intermediate ceremonies, so both sign an ICA the same way."""
    root = _issuer(root_hsm, root_ca, root_cert)
    lint_log: list[tuple[str, str]] = []
    start, end = ica.validity()
    journal.intend("ica_cert", label=root_ca.key_label)
    ica_cert = issue_ica_certificate(
        root,
        ica_public_key,
        x509_name(ica.subject),
        validity=end - start,
        not_before=start,
        lint_log=lint_log,
    )
    try:
        ica_cert.verify_directly_issued_by(root_cert)
    except (ValueError, TypeError, InvalidSignature):
        raise CeremonyError("the ICA certificate does not verify against the root certificate") from None
    out.write_atomic(staged, cert_pem(ica_cert))
    return ica_cert, lint_log


def _wrap_under_session_kek(hsm: Pkcs11Backend, kek: bytes, label: str, kek_label: str) -> bytes:
    """Import ``kek`` as a trusted session object, wrap ``label`` under it, destroy it."""
    handle = hsm.import_aes_kek(kek, kek_label, trusted=True)
    try:
        return hsm.wrap_private_key(label, handle)
    finally:
        hsm.destroy_secret_key(handle)


def _destroyed_record(
    destroyed: list[dict[str, object]] | None, earlier: Journal | None
) -> dict[str, Any] | None:
    """What the wiped stale staging folder held, and which backups the interrupted run made."""
    if destroyed is None:
        return None
    return {
        "files": destroyed,
        "method": "overwritten with zeros, fsync'd, unlinked",
        "backups": earlier.backups if earlier is not None else [],
    }
