"""How the ceremony reaches its token: the configured HSM, or a throwaway SoftHSM2 token.

Why a separate module: ``run`` and ``restore`` read as steps; which token they talk to (and
where a rehearsal token's PINs live) is decided here, once. All PKCS#11 work is ``pki.hsm``'s.

Rehearsal tokens live in ``<rehearsal dir>/softhsm``: one SoftHSM2 conf and token dir for the
root token (random PINs in ``user.pin`` / ``so.pin``, mode 0600) and the issuing token
(``issuing-user.pin`` / ``issuing-so.pin``). Writing PINs to files is acceptable only
because the token is throwaway; it lets a re-run (``--reuse``) and later demo stages reopen it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pki.hsm.pkcs11 import Pkcs11Backend
from pki.hsm.softhsm import SoftHsmDir
from pki.hsm.uri import PIN_FILE_ENV, SO_PIN_FILE_ENV, Pkcs11Uri

if TYPE_CHECKING:
    from ceremony.config import HsmSection


@dataclass(frozen=True)
class CeremonyToken:
    """A token to open: module, label and PINs (PINs never in repr)."""

    module: Path
    label: str
    user_pin: str = field(repr=False)
    so_pin: str | None = field(repr=False)
    #: SoftHSM2 rehearsal tokens: the private SOFTHSM2_CONF to activate before opening.
    softhsm_conf: Path | None = None


def configured_token(hsm: HsmSection, *, with_so_pin: bool) -> CeremonyToken:
    """The production token named in the config, its PINs read from their sources now (the SO PIN
    only for a step that needs it: marking the backup KEK trusted)."""
    return CeremonyToken(
        module=hsm.module,
        label=hsm.token_label,
        user_pin=hsm.user_pin.read("hsm.user_pin"),
        so_pin=hsm.so_pin.read("hsm.so_pin") if with_so_pin else None,
    )


def open_token(token: CeremonyToken) -> Pkcs11Backend:
    """Open and log in (user PIN; the SO PIN is kept for marking the backup KEK trusted).

    A missing module or token, or a refused PIN, raises a one-line ``pki.errors`` exception."""
    if token.softhsm_conf is not None:
        os.environ["SOFTHSM2_CONF"] = str(token.softhsm_conf)
    return Pkcs11Backend(str(token.module), token.label, token.user_pin, so_pin=token.so_pin)


@dataclass(frozen=True)
class RehearsalToken:
    """A throwaway SoftHSM2 token and where its PINs are."""

    directory: Path
    conf_path: Path
    module: Path
    label: str
    user_pin_file: Path
    so_pin_file: Path

    def as_ceremony_token(self) -> CeremonyToken:
        return CeremonyToken(
            module=self.module,
            label=self.label,
            user_pin=_read_pin(self.user_pin_file),
            so_pin=_read_pin(self.so_pin_file),
            softhsm_conf=self.conf_path,
        )

    def uri(self, key_label: str | None = None) -> str:
        """``pkcs11:token=...;object=...?module-path=...&pin-source=file:...`` for a key on it."""
        return str(
            Pkcs11Uri(
                token=self.label,
                object=key_label,
                module_path=str(self.module),
                pin_source=f"file:{self.user_pin_file}",
            )
        )

    def environ(self) -> dict[str, str]:
        """Environment for a subprocess that should reach this token (PINs by file, not value)."""
        return {
            "SOFTHSM2_CONF": str(self.conf_path),
            PIN_FILE_ENV: str(self.user_pin_file),
            SO_PIN_FILE_ENV: str(self.so_pin_file),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "softhsm2_conf": str(self.conf_path),
            "module": str(self.module),
            "token_label": self.label,
            "user_pin_file": str(self.user_pin_file),
            "so_pin_file": str(self.so_pin_file),
            "uri": self.uri(),
        }


def _read_pin(path: Path) -> str:
    return path.read_text(encoding="utf-8").rstrip("\n")


def _write_pin(path: Path, pin: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(pin + "\n")


def create_rehearsal_token(directory: Path, label: str, *, pin_prefix: str = "") -> RehearsalToken:
    """A SoftHSM2 token ``label`` in ``directory``: made fresh, or reopened if an earlier
    (interrupted) rehearsal in the same folder made it. Several tokens share one directory (the
    rehearsal's root and issuing tokens); ``pin_prefix`` keeps their PIN files apart."""
    directory = directory.resolve()
    user_pin_file = directory / f"{pin_prefix}user.pin"
    so_pin_file = directory / f"{pin_prefix}so.pin"
    softhsm = SoftHsmDir.create(directory)
    if softhsm.find_token(label) and user_pin_file.is_file() and so_pin_file.is_file():
        pass  # reopen: a rehearsal re-run in the same folder
    else:
        token = softhsm.init_token(label)
        _write_pin(user_pin_file, token.pin)
        _write_pin(so_pin_file, token.so_pin)
    return RehearsalToken(
        directory=directory,
        conf_path=softhsm.conf_path,
        module=Path(softhsm.module_path),
        label=label,
        user_pin_file=user_pin_file,
        so_pin_file=so_pin_file,
    )
