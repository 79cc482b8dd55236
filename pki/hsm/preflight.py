"""HSM preflight: does this PKCS#11 module and token do what a role needs, before anything is written?

Why: "any PKCS#11 module" is not true. opencryptoki's soft token lacks the backup's mechanisms,
tpm2-pkcs11 has no AES key generation and refuses keys both sensitive and extractable. Found at
key generation in the middle of a ceremony, such a gap costs a half-done run; found here, it is
one line before the first write.

Each role lists what it needs: mechanisms the slot must offer (``C_GetMechanismList``) and
capabilities probed with *session* objects only (made and destroyed at once, never written to
the token): a P-256 signing key, a CA key (sensitive, extractable only under a trusted KEK,
frozen), a session AES key imported from a value, a trusted KEK (only with the SO PIN), ECDH.

Roles: ``root`` (the offline root token: root key, backup), ``issuing`` (the online token the
ceremony puts the ICA on, backed up the same way), ``service`` (``nusec serve``: signing,
per-board keys, authenticated ECDH), ``batch`` (``nusec otp build``: batch KEK and seal signer).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11e

from pki.errors import HsmError, PinIncorrectError, PinLockedError
from pki.hsm.backend import KeyPolicy
from pki.hsm.pkcs11 import _P256_PARAMS, Pkcs11Backend

ROLES = ("root", "issuing", "service", "batch")

#: Mechanisms each role needs (python-pkcs11 names, ``CKM_`` dropped).
MECHANISMS: dict[str, tuple[str, ...]] = {
    "root": ("EC_KEY_PAIR_GEN", "ECDSA", "AES_KEY_WRAP_PAD"),
    "issuing": ("EC_KEY_PAIR_GEN", "ECDSA", "AES_KEY_WRAP_PAD"),
    "service": ("EC_KEY_PAIR_GEN", "ECDSA", "ECDH1_DERIVE", "AES_ECB", "AES_KEY_WRAP_PAD"),
    "batch": ("AES_KEY_GEN", "AES_KEY_WRAP_PAD", "EC_KEY_PAIR_GEN", "ECDSA"),
}
#: Capabilities each role needs (probes below).
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "root": (
        "session_objects",
        "p256_signing_key",
        "ca_key_policy",
        "session_aes_key",
        "trusted_session_kek",
    ),
    "issuing": (
        "session_objects",
        "p256_signing_key",
        "ca_key_policy",
        "session_aes_key",
        "trusted_session_kek",
    ),
    "service": ("session_objects", "p256_signing_key", "ecdh_session_key"),
    "batch": ("session_objects", "aes_key_generation", "p256_signing_key"),
}


class PreflightError(HsmError):
    """The module or token cannot do what the role needs; the message names the first gap."""


@dataclass
class Check:
    name: str
    kind: str  # "mechanism" | "capability"
    ok: bool | None  # None: not checked (e.g. no SO PIN given)
    detail: str = ""


@dataclass
class PreflightReport:
    role: str
    token: dict[str, str]
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    def missing(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "role": self.role,
            "token": self.token,
            "checks": [c.__dict__ for c in self.checks],
        }

    def raise_if_missing(self) -> None:
        gaps = self.missing()
        if gaps:
            gap = gaps[0]
            raise PreflightError(
                f"token '{self.token.get('token_label')}' ({self.token.get('library_description')}"
                f" {self.token.get('library_version')}) cannot serve as the {self.role} token: "
                f"{gap.kind} {gap.name} is missing ({gap.detail})"
            )


def _probe_signing(session: Any) -> None:
    params = session.create_domain_parameters(KeyType.EC, {Attribute.EC_PARAMS: _P256_PARAMS}, local=True)
    pub, priv = params.generate_keypair(
        store=False,
        public_template={Attribute.TOKEN: False, Attribute.VERIFY: True, Attribute.ENCRYPT: pkcs11.DEFAULT,
                         Attribute.WRAP: pkcs11.DEFAULT, Attribute.DERIVE: pkcs11.DEFAULT},
        private_template={Attribute.TOKEN: False, Attribute.SIGN: True, Attribute.SENSITIVE: True,
                          Attribute.DECRYPT: pkcs11.DEFAULT, Attribute.UNWRAP: pkcs11.DEFAULT,
                          Attribute.DERIVE: pkcs11.DEFAULT},
    )  # fmt: skip
    try:
        priv.sign(hashlib.sha256(b"preflight").digest(), mechanism=Mechanism.ECDSA)
    finally:
        for obj in (priv, pub):
            obj.destroy()


def _probe_ca_key(session: Any) -> None:
    policy = KeyPolicy.ca_key()
    public, private = Pkcs11Backend._pair_templates(policy, tight=False)
    public[Attribute.TOKEN] = private[Attribute.TOKEN] = False
    for template in (public, private):  # a session probe: nothing to freeze
        template.pop(Attribute.MODIFIABLE, None)
        template.pop(Attribute.COPYABLE, None)
    params = session.create_domain_parameters(KeyType.EC, {Attribute.EC_PARAMS: _P256_PARAMS}, local=True)
    pub, priv = params.generate_keypair(store=False, public_template=public, private_template=private)
    for obj in (priv, pub):
        obj.destroy()


def _probe_session_aes(session: Any) -> None:
    obj = session.create_object(
        {
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.KEY_TYPE: KeyType.AES,
            Attribute.TOKEN: False,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.WRAP: True,
            Attribute.UNWRAP: True,
            Attribute.VALUE: os.urandom(32),
        }
    )
    obj.destroy()


def _probe_aes_keygen(session: Any) -> None:
    session.generate_key(KeyType.AES, 256, store=False, template={Attribute.TOKEN: False}).destroy()


def _probe_ecdh(session: Any) -> None:
    params = session.create_domain_parameters(KeyType.EC, {Attribute.EC_PARAMS: _P256_PARAMS}, local=True)
    pub, priv = params.generate_keypair(
        store=False,
        public_template={Attribute.TOKEN: False},
        private_template={Attribute.TOKEN: False, Attribute.DERIVE: True, Attribute.SIGN: pkcs11.DEFAULT},
    )
    for obj in (priv, pub):
        obj.destroy()


def _probe_session_objects(session: Any) -> None:
    """The least a module must do for every probe below (and for the backup's KEK): keep an
    object in the session only."""
    session.create_object(
        {Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: False, Attribute.VALUE: b"nusec preflight"}
    ).destroy()


_PROBES: dict[str, Callable[[Any], None]] = {
    "session_objects": _probe_session_objects,
    "p256_signing_key": _probe_signing,
    "ca_key_policy": _probe_ca_key,
    "session_aes_key": _probe_session_aes,
    "aes_key_generation": _probe_aes_keygen,
    "ecdh_session_key": _probe_ecdh,
}


def preflight(backend: Pkcs11Backend, role: str) -> PreflightReport:
    """Check ``backend``'s module and token for ``role``; never writes a token object."""
    if role not in ROLES:
        raise HsmError(f"unknown HSM role {role!r} (one of: {', '.join(ROLES)})")
    report = PreflightReport(role=role, token=backend.token_info())
    offered = backend.mechanisms()
    for mech in MECHANISMS[role]:
        report.checks.append(
            Check(
                mech,
                "mechanism",
                mech in offered,
                "offered" if mech in offered else "not offered by the slot",
            )
        )
    sessions_ok = True
    for name in CAPABILITIES[role]:
        if not sessions_ok:
            report.checks.append(
                Check(name, "capability", None, "not probed: the module keeps no session objects")
            )
            continue
        if name == "trusted_session_kek":
            report.checks.append(_check_trusted(backend))
            continue
        try:
            with backend._session(f"preflight probe {name}") as session:
                _PROBES[name](session)
            report.checks.append(Check(name, "capability", True, "probed with session objects"))
        except (p11e.PKCS11Error, HsmError) as exc:
            report.checks.append(Check(name, "capability", False, f"the module refused: {_reason(exc)}"))
            sessions_ok = name != "session_objects"
    return report


def _check_trusted(backend: Pkcs11Backend) -> Check:
    name = "trusted_session_kek"
    if not backend.has_so_pin:
        return Check(name, "capability", None, "not checked: no SO PIN (NUSEC_HSM_SO_PIN[_FILE])")
    try:
        backend.destroy_secret_key(backend.generate_aes_kek(None, trusted=True))
    except (PinIncorrectError, PinLockedError):
        raise  # a wrong SO PIN is the operator's mistake, not the module's gap
    except (p11e.PKCS11Error, HsmError) as exc:
        return Check(name, "capability", False, f"the module refused: {_reason(exc)}")
    return Check(name, "capability", True, "SO-made trusted session KEK, used by the user, destroyed")


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return text.rsplit(": ", 1)[-1] if isinstance(exc, HsmError) else type(exc).__name__


def require(backend: Pkcs11Backend, role: str) -> PreflightReport:
    """``preflight`` that raises ``PreflightError`` (one line) naming the first gap."""
    report = preflight(backend, role)
    report.raise_if_missing()
    return report
