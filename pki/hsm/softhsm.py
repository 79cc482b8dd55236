"""SoftHSM2 helpers: a private SOFTHSM2_CONF + token dir, and tokens initialised and found by label.

Why: tests, the ceremony's rehearsal mode and the demo each need a throwaway token that never
touches the machine's default SoftHSM2 store, and PINs must never appear on a command line
(``softhsm2-util --init-token --pin ...`` would put them in ``ps``). So tokens are initialised
in-process: ``C_InitToken`` (which python-pkcs11 does not wrap) is called through ctypes on the
same loaded module, then the user PIN is set with ``C_InitPIN`` in an SO session.

``SOFTHSM2_CONF`` is process-wide and read at ``C_Initialize``: ``SoftHsmDir.activate()`` sets
it; opening a backend afterwards re-initialises the library if it changed (see ``pki.hsm.pkcs11``).
Several tokens may live in one dir (the ceremony's "restore into a fresh token").

Typical use (tests/ceremony/service)::

    from pki.hsm.softhsm import SoftHsmDir
    hsm = SoftHsmDir.create(tmp_path / "hsm")          # writes softhsm2.conf, sets SOFTHSM2_CONF
    token = hsm.init_token("nusec-test")               # random PINs, kept in memory only
    with token.open_backend() as backend: ...
    env = token.environ()                              # SOFTHSM2_CONF + NUSEC_HSM_PIN[_FILE] for a subprocess

``softhsm_token`` is a context manager doing the same and restoring SOFTHSM2_CONF afterwards.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pkcs11
from pkcs11 import TokenFlag
from pkcs11 import exceptions as p11e

from pki.errors import HsmError, Pkcs11ModuleError, TokenNotFoundError
from pki.hsm.pkcs11 import Pkcs11Backend, _Library
from pki.hsm.uri import DEFAULT_MODULE_PATH, PIN_ENV, PIN_FILE_ENV, SO_PIN_ENV, Pkcs11Uri

#: Name of the conf file written into a SoftHsmDir.
CONF_NAME = "softhsm2.conf"
_CKR_OK = 0
_init_lock = threading.Lock()


@dataclass(frozen=True)
class SoftHsmToken:
    """An initialised SoftHSM2 token. PINs are kept in memory only (never in repr or logs)."""

    label: str
    conf_path: Path
    module_path: str
    pin: str = field(repr=False)
    so_pin: str = field(repr=False)

    def uri(self, pin_file: Path | None = None) -> Pkcs11Uri:
        """``pkcs11:token=LABEL?module-path=...[&pin-source=file:...]`` for this token."""
        return Pkcs11Uri(
            token=self.label,
            module_path=self.module_path,
            pin_source=f"file:{pin_file}" if pin_file is not None else None,
        )

    def open_backend(self, *, with_so_pin: bool = True) -> Pkcs11Backend:
        """Activate this token's conf and open a backend on it (with the SO PIN unless told not to)."""
        os.environ["SOFTHSM2_CONF"] = str(self.conf_path)
        return Pkcs11Backend(
            self.module_path, self.label, self.pin, so_pin=self.so_pin if with_so_pin else None
        )

    def write_pin_file(self, path: Path) -> Path:
        """Write the user PIN to ``path`` (mode 0600) for ``pin-source=file:`` / NUSEC_HSM_PIN_FILE."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(self.pin + "\n")
        return path

    def environ(self, *, with_so_pin: bool = False) -> dict[str, str]:
        """Environment for a subprocess (CLI, server) that should reach this token."""
        env = {"SOFTHSM2_CONF": str(self.conf_path), PIN_ENV: self.pin}
        if with_so_pin:
            env[SO_PIN_ENV] = self.so_pin
        env.pop(PIN_FILE_ENV, None)
        return env


@dataclass(frozen=True)
class SoftHsmDir:
    """A private SoftHSM2 configuration: ``root/softhsm2.conf`` and ``root/tokens/``."""

    root: Path
    module_path: str = DEFAULT_MODULE_PATH

    @property
    def conf_path(self) -> Path:
        return self.root / CONF_NAME

    @property
    def token_dir(self) -> Path:
        return self.root / "tokens"

    @classmethod
    def create(cls, root: Path, module_path: str | None = None, *, activate: bool = True) -> SoftHsmDir:
        """Make ``root`` with a conf and an empty token dir (mode 0700); set SOFTHSM2_CONF."""
        module = module_path or os.environ.get("NUSEC_PKCS11_MODULE") or DEFAULT_MODULE_PATH
        if not Path(module).is_file():
            raise Pkcs11ModuleError(f"PKCS#11 module not found: {module} (install softhsm2)")
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        token_dir = root / "tokens"
        token_dir.mkdir(exist_ok=True, mode=0o700)
        (root / CONF_NAME).write_text(
            f"directories.tokendir = {token_dir}\nobjectstore.backend = file\nlog.level = ERROR\n"
            "slots.removable = false\n",
            encoding="utf-8",
        )
        hsm = cls(root=root, module_path=module)
        if activate:
            hsm.activate()
        return hsm

    def activate(self) -> None:
        """Point this process's SOFTHSM2_CONF at this dir (read at the next C_Initialize)."""
        os.environ["SOFTHSM2_CONF"] = str(self.conf_path)

    def _lib(self) -> object:
        self.activate()
        with _Library.lock:
            return _Library.get(self.module_path)

    def token_labels(self) -> list[str]:
        """Labels of the initialised tokens in this dir."""
        lib = self._lib()
        try:
            return sorted(
                slot.get_token().label
                for slot in lib.get_slots(token_present=True)  # type: ignore[attr-defined]
                if slot.get_token().flags & TokenFlag.TOKEN_INITIALIZED
            )
        except p11e.PKCS11Error as exc:
            raise HsmError(f"listing SoftHSM2 tokens failed: {type(exc).__name__}") from None

    def find_token(self, label: str) -> bool:
        """Whether a token with ``label`` exists in this dir."""
        return label in self.token_labels()

    def init_token(self, label: str, pin: str | None = None, so_pin: str | None = None) -> SoftHsmToken:
        """Initialise a fresh token ``label`` in the first free slot (random PINs by default).

        Refuses (``HsmError``) if a token with that label already exists."""
        if not 1 <= len(label.encode()) <= 32:
            raise HsmError("token label must be 1..32 bytes")
        user_pin = pin or secrets.token_urlsafe(12)
        so = so_pin or secrets.token_urlsafe(12)
        for value, what in ((user_pin, "PIN"), (so, "SO PIN")):
            if not 4 <= len(value) <= 255:
                raise HsmError(f"SoftHSM2 {what} must be 4..255 characters")
        with _init_lock:
            lib = self._lib()
            if self.find_token(label):
                raise HsmError(f"a token labelled {label!r} already exists in {self.token_dir}")
            try:
                free = [
                    s
                    for s in lib.get_slots(token_present=True)  # type: ignore[attr-defined]
                    if not s.get_token().flags & TokenFlag.TOKEN_INITIALIZED
                ]
            except p11e.PKCS11Error as exc:
                raise HsmError(f"listing SoftHSM2 slots failed: {type(exc).__name__}") from None
            if not free:
                raise HsmError("SoftHSM2 offers no free slot")
            slot = free[0]
            native = ctypes.CDLL(self.module_path)
            c_init_token = native.C_InitToken
            c_init_token.argtypes = [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
            c_init_token.restype = ctypes.c_ulong
            so_bytes = so.encode()
            rv = c_init_token(slot.slot_id, so_bytes, len(so_bytes), label.encode().ljust(32, b" "))
            if rv != _CKR_OK:
                raise HsmError(f"C_InitToken for {label!r} failed: CKR 0x{rv:08X}")
            token = slot.get_token()
            try:
                with token.open(rw=True, so_pin=so) as session:
                    session.init_pin(user_pin)
            except p11e.PKCS11Error as exc:
                raise HsmError(f"setting the user PIN of {label!r} failed: {type(exc).__name__}") from None
        return SoftHsmToken(
            label=label, conf_path=self.conf_path, module_path=self.module_path, pin=user_pin, so_pin=so
        )

    def token(self, label: str, pin: str, so_pin: str = "") -> SoftHsmToken:
        """Describe an existing token (``TokenNotFoundError`` if absent)."""
        if not self.find_token(label):
            raise TokenNotFoundError(f"no SoftHSM2 token labelled {label!r} in {self.token_dir}")
        return SoftHsmToken(
            label=label, conf_path=self.conf_path, module_path=self.module_path, pin=pin, so_pin=so_pin
        )


@contextmanager
def softhsm_token(root: Path, label: str = "nusec-test") -> Iterator[SoftHsmToken]:
    """A throwaway token in ``root`` for the duration of the block; SOFTHSM2_CONF restored after."""
    previous = os.environ.get("SOFTHSM2_CONF")
    try:
        yield SoftHsmDir.create(root).init_token(label)
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous


def module_available(module_path: str = DEFAULT_MODULE_PATH) -> bool:
    """Whether the PKCS#11 module can be loaded (for ``nusec doctor``)."""
    try:
        pkcs11.lib(module_path)
    except (p11e.PKCS11Error, OSError):
        return False
    return True
