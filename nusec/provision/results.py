"""What each provisioning step finished with, as typed records (stored in the journal as JSON).

Why records, not dicts: later steps read what earlier ones found (the identity key, the
secure-boot key, the signed image's hash); a typo in a dict key or a damaged journal line would
surface as a ``KeyError`` deep in a step. ``from_json`` checks every field once, and a record
that does not parse is treated as "step not finished" (it is redone, checking the board).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar


class BadRecord(ValueError):
    """A journal record that lacks a field or holds a value of the wrong kind."""


@dataclass(frozen=True)
class StepResult:
    """Base of every step's record; ``bytes`` fields travel as hex."""

    step: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.hex() if isinstance(v, bytes) else v
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        kw: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                if f.default is not dataclasses.MISSING:
                    continue
                raise BadRecord(f"{cls.step}: record lacks {f.name!r}")
            v = data[f.name]
            kind = str(f.type)
            try:
                if kind == "bytes":
                    v = bytes.fromhex(str(v))
                elif kind == "int":
                    if isinstance(v, bool) or not isinstance(v, int):
                        raise TypeError
                elif kind == "bool":
                    if not isinstance(v, bool):
                        raise TypeError
                elif kind == "float":
                    v = float(v)
                elif kind == "str":
                    if not isinstance(v, str):
                        raise TypeError
            except (TypeError, ValueError):
                raise BadRecord(f"{cls.step}: field {f.name!r} holds {v!r}") from None
            kw[f.name] = v
        return cls(**kw)

    def summary(self) -> str:
        """A short line for the progress display and ``--json`` (``detail``)."""
        short = {k: v for k, v in self.to_json().items() if k not in ("auth_pub", "xy")}
        return json.dumps(short, separators=(",", ":"))[:200]


@dataclass(frozen=True)
class Registered(StepResult):
    step: ClassVar[str] = "register"
    state: str


@dataclass(frozen=True)
class ChainChecked(StepResult):
    step: ClassVar[str] = "ca_chain"
    root_sha256: str
    ica_sha256: str


@dataclass(frozen=True)
class OtpWritten(StepResult):
    """One OTP-writing step: words programmed now, words found already equal, entries locked now."""

    step: ClassVar[str] = "otp"
    programmed_words: int
    already_equal: int = 0
    locked_entries: int = 0
    digest: str = ""  # the image digest, once the secure-boot key step wrote it


@dataclass(frozen=True)
class KeyMade(StepResult):
    """The board's identity key: where it came from (``generated`` now, ``resumed`` after an
    interrupted keygen whose intent was journaled, ``certified``: matches the service's certificate)."""

    step: ClassVar[str] = "keygen"
    auth_pub: bytes  # 65-byte SEC1 point
    slot: int
    origin: str


@dataclass(frozen=True)
class Nubl2Fetched(StepResult):
    """The signed NuBL2 and the ROM root key it verified with on this desktop."""

    step: ClassVar[str] = "nubl2"
    image_sha256: str
    key_xy: bytes  # 64-byte X||Y: what rom_key burns into KS OTP slots 0/1
    size: int
    version: str


@dataclass(frozen=True)
class RomKeyBurned(StepResult):
    step: ClassVar[str] = "rom_key"
    slots_programmed: int
    resumed: bool


@dataclass(frozen=True)
class CsrMade(StepResult):
    step: ClassVar[str] = "csr"
    csr_sha256: str
    needed: bool = True  # False: the service already holds a certificate for this key


@dataclass(frozen=True)
class Certified(StepResult):
    """The board certificate and where it was found (``issued`` now, ``service`` already issued,
    ``otp`` already in OTP)."""

    step: ClassVar[str] = "certify"
    serial: str
    cert_sha256: str
    source: str


@dataclass(frozen=True)
class SecureBootKey(StepResult):
    step: ClassVar[str] = "sb_key"
    xy: bytes  # 64-byte X||Y
    batch_id: str = ""
    index: int = -1


@dataclass(frozen=True)
class FirmwareSigned(StepResult):
    """The signed image, tied to the input file it was made from (a different ``--firmware``
    on a re-run of an unlocked board gets signed and flashed again)."""

    step: ClassVar[str] = "sign_fw"
    input_sha256: str
    header_size: int
    image_sha256: str
    size: int
    version: str


@dataclass(frozen=True)
class Flashed(StepResult):
    step: ClassVar[str] = "flash_fw"
    image_sha256: str
    bytes: int
    pages_erased: int
    seconds: float
    nubl2_sha256: str = ""


@dataclass(frozen=True)
class Locked(StepResult):
    """The lock, and what was proven just before it: the image read back intact and the firmware
    answering on its channel after a reset."""

    step: ClassVar[str] = "lock"
    locked: bool
    firmware: str = ""
    reflashed: bool = False


@dataclass(frozen=True)
class Booted(StepResult):
    step: ClassVar[str] = "reset"
    firmware: str


@dataclass(frozen=True)
class KeyAgreed(StepResult):
    step: ClassVar[str] = "ecdh"
    confirmed: bool
    session_id: str = ""
    note: str = ""


@dataclass(frozen=True)
class Recovered(StepResult):
    """A step a locked board proves done (nothing before the lock can be re-read over SWD), whose
    record was rebuilt from the board and the service after the journal was lost."""

    step: ClassVar[str] = "recovered"
    how: str


R = TypeVar("R", bound=StepResult)
