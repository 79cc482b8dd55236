"""What every ceremony type shares: people, tokens, the transcript's opening line, publishing.

Why: the root ceremony, an intermediate (new ICA), a root CRL and the batch keys are different
scripts, but each one opens the same way (checks before any HSM action, tokens opened, the
environment and token identities recorded), ends the same way (transcript signed, folder
published in one rename, a record left on the token), and never leaves a half-written folder.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ceremony import outputs as out
from ceremony.config import CeremonyInfo, HsmSection
from ceremony.errors import CeremonyError
from ceremony.hsm import RehearsalToken, configured_token, create_rehearsal_token, open_token
from ceremony.transcript import TranscriptWriter, spki_sha256
from pki.hsm.pkcs11 import Pkcs11Backend


def load_certificate(path: Path, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CeremonyError(f"{what}: cannot load {path}: {exc}") from None


def ec_public(cert: x509.Certificate, what: str) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CeremonyError(f"{what}: the certificate's key is not EC")
    return key


def tool_version() -> str:
    """``nusec <version>`` as installed (recorded in transcripts)."""
    try:
        return f"nusec {importlib.metadata.version('nusec')}"
    except importlib.metadata.PackageNotFoundError:
        return "nusec (not installed)"


def environment() -> dict[str, Any]:
    """Host, OS and tool versions, for the opening line of every transcript."""
    versions: dict[str, str | None] = {}
    for dist in (
        "nusec",
        "python-pkcs11",
        "cryptography",
        "shamir-mnemonic",
        "pkilint",
        "pydantic",
        "PyYAML",
    ):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "host": platform.node(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
    }


@dataclass
class Tokens:
    """The tokens a ceremony opened, by role (``root``, ``issuing``), and the rehearsal ones."""

    open: dict[str, Pkcs11Backend] = field(default_factory=dict)
    rehearsal: dict[str, RehearsalToken] = field(default_factory=dict)

    def info(self) -> dict[str, Any]:
        return {role: hsm.token_info() for role, hsm in self.open.items()}

    def inventory(self) -> dict[str, Any]:
        return {role: hsm.inventory() for role, hsm in self.open.items()}

    def open_record(self, kind: str, loaded: Any, *, rehearsal: bool, **extra: Any) -> dict[str, Any]:
        """The transcript's ``open`` record every ceremony type starts with: which tool on which
        host, the reviewed config (text and digest), and the tokens as they are before any step;
        ``extra`` adds what this type checked before it started (e.g. the root's SPKI digest)."""
        return {
            "kind": kind,
            "tool": tool_version(),
            "environment": environment(),
            "name": loaded.config.ceremony.name,
            "config_sha256": loaded.sha256,
            "config_text": loaded.text,
            "rehearsal": rehearsal,
            "tokens": self.info(),
            "inventory": self.inventory(),
            **extra,
        }


@contextmanager
def opened_tokens(
    sections: dict[str, HsmSection], *, rehearsal: bool, rehearsal_dir: Path, with_so_pin: bool
) -> Iterator[Tokens]:
    """Open each role's token (the configured one, or in a rehearsal the throwaway SoftHSM2
    token of that label in ``rehearsal_dir/softhsm``, made by the root rehearsal or now)."""
    tokens = Tokens()
    with ExitStack() as stack:
        for role, section in sections.items():
            if rehearsal:
                prefix = "" if role == "root" else "issuing-"
                fake = create_rehearsal_token(
                    rehearsal_dir / "softhsm", section.token_label, pin_prefix=prefix
                )
                tokens.rehearsal[role] = fake
                token = fake.as_ceremony_token()
            else:
                token = configured_token(section, with_so_pin=with_so_pin)
            tokens.open[role] = stack.enter_context(open_token(token))
        yield tokens


def now_utc(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


@contextmanager
def staged_transcript(plan: out.OutputPlan, people: CeremonyInfo) -> Iterator[TranscriptWriter]:
    """A fresh staging folder (a stale one wiped) with a new transcript; on any failure the
    transcript is abandoned and the staging folder wiped, so nothing half-written remains."""
    out.start_staging(plan)
    transcript = TranscriptWriter(
        plan.staged("transcript"), operator=people.operator, witnesses=people.witnesses
    )
    try:
        yield transcript
    except BaseException:
        transcript.abandon()
        out.discard_staging(plan)
        raise


def key_matches(hsm: Pkcs11Backend, label: str, public_key: ec.EllipticCurvePublicKey, what: str) -> None:
    """The key ``label`` on ``hsm`` is the one in the certificate (the root for an ICA or CRL)."""
    if hsm.find_ec_keypair(label) is None:
        raise CeremonyError(f"{what}: no key '{label}' on token '{hsm.token_label}'")
    if spki_sha256(hsm.public_key(label)) != spki_sha256(public_key):
        raise CeremonyError(
            f"{what}: key '{label}' on token '{hsm.token_label}' is not the certificate's key"
        )
