"""The intent journal: what a ceremony run is about to do on its tokens, written before each HSM step.

Why: a run killed half-way leaves keys on the token and nothing published. ``--reuse`` must
take back exactly the keys *this* config's interrupted run made, never a key someone planted
under the same label. So before each HSM step the run writes down its intent (step, label,
token serial, config SHA-256), and once a key exists, its public key; ``--reuse`` accepts a key
only if its public key matches the journal (and its attributes read back as the policy
requires, checked by the caller). The journal also keeps the backup's KEK check value and share
hashes, so the run that wipes an interrupted run's staging folder can record what it destroyed.

The file is ``.<outputs folder>.journal.json`` next to the outputs folder (outside the staging
folder, which a re-run wipes), written atomically (tmp + fsync + rename), mode 0600. It holds no
secret. A finished run removes it: a finished ceremony is recorded on the token instead
(``ceremony.record``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ceremony.errors import CeremonyError
from pki import files

VERSION = 1


def journal_path(final_dir: Path) -> Path:
    """Where the journal of a run publishing ``final_dir`` lives."""
    return final_dir.parent / f".{final_dir.name}.journal.json"


@dataclass
class Journal:
    """The journal of one outputs folder; every change is on disk before the method returns."""

    path: Path
    config_sha256: str
    kind: str
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    backups: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Journal | None:
        """The journal at ``path``, or None if there is none; ``CeremonyError`` if unreadable."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CeremonyError(f"cannot read the ceremony journal {path}: {exc}") from None
        if not isinstance(raw, dict) or raw.get("version") != VERSION:
            raise CeremonyError(f"{path} is not a ceremony journal this tool understands")
        return cls(
            path=path,
            config_sha256=str(raw.get("config_sha256", "")),
            kind=str(raw.get("kind", "")),
            keys=dict(raw.get("keys", {})),
            steps=list(raw.get("steps", [])),
            backups=list(raw.get("backups", [])),
        )

    @classmethod
    def resume_or_start(cls, path: Path, *, kind: str, config_sha256: str) -> tuple[Journal, Journal | None]:
        """(the journal this run writes, the interrupted run's journal if any).

        The new journal carries over only the earlier journal's backups (what may still be in
        the staging folder) and, if the config is the same, its keys (what ``--reuse`` may take
        back). A journal of another config keeps no key: its keys are not this config's."""
        earlier = cls.load(path)
        journal = cls(path=path, config_sha256=config_sha256, kind=kind)
        if earlier is not None:
            journal.backups = list(earlier.backups)
            if earlier.config_sha256 == config_sha256 and earlier.kind == kind:
                journal.keys = dict(earlier.keys)
        journal.save()
        return journal, earlier

    def save(self) -> None:
        data = {
            "version": VERSION,
            "kind": self.kind,
            "config_sha256": self.config_sha256,
            "keys": self.keys,
            "steps": self.steps,
            "backups": self.backups,
        }
        raw = json.dumps(data, sort_keys=True, indent=1).encode("utf-8") + b"\n"
        files.write_atomic(self.path, raw, mode=0o600, overwrite=True)

    def intend(self, step: str, **detail: Any) -> None:
        """Record that ``step`` is about to touch a token."""
        self.steps.append({"step": step, **detail})
        self.save()

    def key_made(self, label: str, *, token_serial: str, token_label: str, spki_sha256: str) -> None:
        """Record a key's public key as soon as it exists on its token."""
        self.keys[label] = {
            "token_serial": token_serial,
            "token_label": token_label,
            "spki_sha256": spki_sha256,
        }
        self.save()

    def backup_made(self, *, kek_check: str, share_sha256: list[str]) -> None:
        """Record a backup (not secret): which KEK and shares may now sit in the staging folder."""
        self.backups.append({"kek_check": kek_check, "share_sha256": share_sha256})
        self.save()

    def finish(self) -> None:
        """The run published its outputs: the journal is no longer needed."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
