"""The PKCS#11 ``KeyBackend`` (python-pkcs11): SoftHSM2 by default, any PKCS#11 module by path.

Why it looks like this:

- Tokens are found by label (slot ids move when tokens are initialised).
- Thread safety: PKCS#11 sessions must not be used by two threads at once, and the login state
  is per application and token. So all backends opened in one process on the same token share
  ONE logged-in read/write session guarded by one ``threading.RLock``; every method takes the
  lock for its whole PKCS#11 conversation. A second ``Pkcs11Backend`` on the same token checks
  its PIN against the first (constant-time, on a SHA-256 of it) instead of logging in again.
- The library is initialised once per module path. SoftHSM2 reads ``SOFTHSM2_CONF`` at
  ``C_Initialize``; if the variable changed since (tests give every token dir its own conf),
  the library is re-initialised and backends still open on the old configuration are marked
  closed (their next call raises ``HsmError``).
- Marking a KEK trusted (``CKA_TRUSTED``) needs a security-officer login, which PKCS#11 allows
  only when no user is logged in: the shared session is closed, an SO session creates the KEK
  as a public (``CKA_PRIVATE`` false) *session* object, then that same session is logged out
  and the user logged in (``security_officer_then_user``). The KEK is never a token object, so
  it is never written to the token's storage. Private session objects (ephemeral pairs, derived
  keys) made before the switch are gone; their handles raise ``HsmError``.
- Error messages name the operation and the PKCS#11 error class, never a PIN.
- Speed: SoftHSM2's object search is linear in the token's objects, so the private-key object
  and the public key of each label used for signing are cached per token session (cleared on
  destroy and re-login; a handle invalidated by another process is looked up again). If another
  process replaces a key under the same label, the CA's post-signing verification catches it.
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import logging
import os
import secrets
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

import pkcs11
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from pkcs11 import KDF, Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11e
from pkcs11.util.ec import encode_named_curve_parameters

from nucore.p256 import signature_to_der
from pki.ecpoint import key_id_of, point_of
from pki.errors import (
    DuplicateKeyError,
    HsmError,
    KeyNotFoundError,
    KeyNotWrappableError,
    PinIncorrectError,
    PinLockedError,
    Pkcs11ModuleError,
    TokenNotFoundError,
    UnwrapError,
)
from pki.hsm.backend import (
    DIGEST_LEN,
    P256_POINT_LEN,
    EphemeralKeyPair,
    KeyPairInfo,
    KeyPolicy,
    SecretKey,
    SecretKeyKind,
)
from pki.hsm.uri import Pkcs11Uri, parse_pkcs11_uri, resolve_pin, resolve_so_pin

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_P256_PARAMS = encode_named_curve_parameters("1.2.840.10045.3.1.7")
_MAX_WRAP_BYTES = 1024


def _hsm_error(what: str, exc: BaseException) -> HsmError:
    """Map a python-pkcs11 exception to a one-line ``pki.errors`` exception (no secrets)."""
    name = type(exc).__name__
    if isinstance(exc, p11e.PinIncorrect | p11e.PinLenRange | p11e.PinInvalid):
        return PinIncorrectError(f"{what}: the token refused the PIN")
    if isinstance(exc, p11e.PinLocked):
        return PinLockedError(f"{what}: the token's PIN is locked")
    if isinstance(exc, p11e.NoSuchKey):
        return KeyNotFoundError(f"{what}: no such key")
    if isinstance(exc, p11e.KeyNotWrappable | p11e.KeyUnextractable):
        return KeyNotWrappableError(f"{what}: the token refuses to wrap this key ({name})")
    if isinstance(exc, p11e.WrappedKeyInvalid | p11e.WrappedKeyLenRange | p11e.EncryptedDataInvalid):
        return UnwrapError(f"{what}: the wrapped blob is invalid for this KEK ({name})")
    return HsmError(f"{what} failed: {name}")


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    try:
        yield
    except p11e.PKCS11Error as exc:
        raise _hsm_error(what, exc) from None


def _public_from_point(ec_point: bytes) -> ec.EllipticCurvePublicKey:
    """CKA_EC_POINT (DER OCTET STRING 04 41 04..., or a bare point) -> public key."""
    raw = ec_point
    if len(raw) == P256_POINT_LEN + 2 and raw[0] == 0x04 and raw[1] == P256_POINT_LEN:
        raw = raw[2:]
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise HsmError("token returned an EC point that is not on P-256") from None


# --- library and shared sessions ----------------------------------------------------------------


class _Library:
    """Loaded PKCS#11 modules, (re)initialised for the current SOFTHSM2_CONF."""

    lock: ClassVar[threading.Lock] = threading.Lock()
    conf_at_init: ClassVar[dict[str, str | None]] = {}
    sessions: ClassVar[dict[tuple[str, str], _TokenSession]] = {}

    @classmethod
    def get(cls, module_path: str) -> Any:
        """The initialised ``pkcs11.lib`` for ``module_path`` (call with ``cls.lock`` held)."""
        if not Path(module_path).is_file():
            raise Pkcs11ModuleError(f"PKCS#11 module not found: {module_path}")
        conf = os.environ.get("SOFTHSM2_CONF")
        try:
            lib = pkcs11.lib(module_path)
            if cls.conf_at_init.get(module_path, "\0unset") != conf:
                for key, shared in list(cls.sessions.items()):
                    if key[0] == module_path:
                        shared.invalidate()
                        del cls.sessions[key]
                lib.reinitialize()
        except p11e.PKCS11Error as exc:
            raise Pkcs11ModuleError(
                f"cannot initialise PKCS#11 module {module_path}: {type(exc).__name__}"
            ) from None
        except OSError as exc:
            raise Pkcs11ModuleError(f"cannot load PKCS#11 module {module_path}: {exc.strerror}") from None
        cls.conf_at_init[module_path] = conf
        return lib

    @classmethod
    def find_token(cls, lib: Any, token_label: str) -> Any:
        with _mapped(f"looking up token {token_label!r}"):
            tokens = list(lib.get_tokens(token_label=token_label))
        if not tokens:
            raise TokenNotFoundError(f"no PKCS#11 token labelled {token_label!r}")
        if len(tokens) > 1:
            raise HsmError(f"several PKCS#11 tokens are labelled {token_label!r}")
        return tokens[0]


class _TokenSession:
    """One logged-in R/W session per (module, token), shared by every backend on that token."""

    def __init__(self, module_path: str, token: Any, pin: str) -> None:
        self.module_path = module_path
        self.token = token
        self.token_label: str = token.label
        self.lock = threading.RLock()
        self.refs = 0
        self.generation = 0
        self.valid = True
        # label -> private key object, for signing without a C_FindObjects per call (SoftHSM2's
        # search is linear in the token's objects). Cleared on destroy and on re-login.
        self.signer_cache: dict[str, Any] = {}
        self.public_cache: dict[str, ec.EllipticCurvePublicKey] = {}
        self._pin = pin
        self._pin_digest = hashlib.sha256(pin.encode()).digest()
        self.session: Any = self._open_user()

    def _open_user(self) -> Any:
        with _mapped(f"logging in to token {self.token_label!r}"):
            return self.token.open(rw=True, user_pin=self._pin)

    def pin_matches(self, pin: str) -> bool:
        return hmac.compare_digest(self._pin_digest, hashlib.sha256(pin.encode()).digest())

    def invalidate(self) -> None:
        self.valid = False

    def close(self) -> None:
        with self.lock:
            if self.valid:
                self.valid = False
                try:
                    self.session.close()
                except p11e.PKCS11Error:
                    pass

    def security_officer_then_user(self, so_pin: str, action: Callable[[Any], _T]) -> _T:
        """Run ``action(so_session)`` with the SO logged in, then log the *same* session out and
        the user in, and keep it as the shared session.

        Why: a trusted KEK must be made by the SO (only the SO may set ``CKA_TRUSTED``) but used
        by the user (only the user sees the private CA keys), and it must never be a token object
        (SoftHSM2 writes public token objects in clear). A public session object made by the SO
        survives ``C_Logout`` (PKCS#11 destroys only *private* session objects then), so it stays
        usable by the user in this session and vanishes, never written, when the session ends."""
        with self.lock:
            with _mapped("closing the user session"):
                self.session.close()
            self.generation += 1
            self.signer_cache.clear()
            self.public_cache.clear()
            try:
                with _mapped(f"security-officer login to token {self.token_label!r}"):
                    so_session = self.token.open(rw=True, so_pin=so_pin)
            except BaseException:
                self.session = self._open_user()
                raise
            try:
                result = action(so_session)
                _relogin_as_user(self.module_path, so_session.handle, self._pin, self.token_label)
            except BaseException:
                try:
                    so_session.close()
                except p11e.PKCS11Error:
                    pass
                self.session = self._open_user()
                raise
            self.session = so_session
            return result

    def as_security_officer(self, so_pin: str, action: Callable[[Any], _T]) -> _T:
        """Run ``action(so_session)`` with the SO logged in, then log the user back in."""
        with self.lock:
            with _mapped("closing the user session"):
                self.session.close()
            self.generation += 1
            self.signer_cache.clear()
            self.public_cache.clear()
            try:
                with _mapped(f"security-officer login to token {self.token_label!r}"):
                    so_session = self.token.open(rw=True, so_pin=so_pin)
                try:
                    return action(so_session)
                finally:
                    with _mapped("security-officer logout"):
                        so_session.close()
            finally:
                self.session = self._open_user()


#: CKA_APPLICATION of the ceremony's on-token records.
RECORD_APPLICATION = "nusec"

#: Boolean attributes read back from private keys (names as in PKCS#11, without ``CKA_``).
KEY_BOOL_ATTRIBUTES = (
    "TOKEN",
    "PRIVATE",
    "MODIFIABLE",
    "COPYABLE",
    "DESTROYABLE",
    "SENSITIVE",
    "ALWAYS_SENSITIVE",
    "EXTRACTABLE",
    "NEVER_EXTRACTABLE",
    "LOCAL",
    "WRAP_WITH_TRUSTED",
    "ALWAYS_AUTHENTICATE",
    "SIGN",
    "SIGN_RECOVER",
    "DECRYPT",
    "UNWRAP",
    "DERIVE",
)


def read_bool_attributes(obj: Any) -> dict[str, bool | None]:
    """``KEY_BOOL_ATTRIBUTES`` of one object; an attribute the module lacks reads as None."""
    out: dict[str, bool | None] = {}
    for name in KEY_BOOL_ATTRIBUTES:
        try:
            out[name] = bool(obj[getattr(Attribute, name)])
        except (p11e.AttributeTypeInvalid, p11e.AttributeSensitive, p11e.FunctionFailed, KeyError):
            out[name] = None
    return out


_CKU_USER = 1
_CKR_OK = 0
_CKR_USER_NOT_LOGGED_IN = 0x101


def _relogin_as_user(module_path: str, session_handle: int, pin: str, token_label: str) -> None:
    """``C_Logout`` then ``C_Login(CKU_USER)`` on one open session (python-pkcs11 has no call for
    it), through the same loaded module (``dlopen`` of the same path shares its state)."""
    native = ctypes.CDLL(module_path)
    logout = native.C_Logout
    logout.argtypes = [ctypes.c_ulong]
    logout.restype = ctypes.c_ulong
    login = native.C_Login
    login.argtypes = [ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong]
    login.restype = ctypes.c_ulong
    rv = logout(session_handle)
    if rv not in (_CKR_OK, _CKR_USER_NOT_LOGGED_IN):
        raise HsmError(f"security-officer logout on token {token_label!r} failed: CKR 0x{rv:08X}")
    raw = pin.encode()
    rv = login(session_handle, _CKU_USER, raw, len(raw))
    if rv != _CKR_OK:
        raise HsmError(f"logging the user back in to token {token_label!r} failed: CKR 0x{rv:08X}")


@dataclass(eq=False)
class _Handle:
    obj: Any
    generation: int


# --- the backend --------------------------------------------------------------------------------


class Pkcs11Backend:
    """``KeyBackend`` over a PKCS#11 token (thread-safe; see the module docstring)."""

    def __init__(self, module_path: str, token_label: str, pin: str, *, so_pin: str | None = None) -> None:
        self._so_pin = so_pin
        self._closed = False
        with _Library.lock:
            lib = _Library.get(module_path)
            key = (module_path, token_label)
            shared = _Library.sessions.get(key)
            if shared is not None and shared.valid:
                if not shared.pin_matches(pin):
                    raise PinIncorrectError(f"logging in to token {token_label!r}: the token refused the PIN")
            else:
                shared = _TokenSession(module_path, _Library.find_token(lib, token_label), pin)
                _Library.sessions[key] = shared
            shared.refs += 1
        self._shared = shared
        self.module_path = module_path
        self.token_label = token_label
        self._finalizer = weakref.finalize(self, Pkcs11Backend._release, shared)

    @property
    def has_so_pin(self) -> bool:
        """Whether this backend was given the security-officer PIN (trusted KEKs need it)."""
        return bool(self._so_pin)

    @classmethod
    def from_uri(cls, uri: str | Pkcs11Uri) -> Pkcs11Backend:
        """Open the token named by a ``pkcs11:`` URI; PIN from ``pin-source`` or the environment,
        SO PIN (optional) from ``NUSEC_HSM_SO_PIN[_FILE]``."""
        parsed = parse_pkcs11_uri(uri) if isinstance(uri, str) else uri
        if not parsed.token:
            raise TokenNotFoundError("the PKCS#11 URI names no token (add token=LABEL)")
        return cls(parsed.module(), parsed.token, resolve_pin(parsed), so_pin=resolve_so_pin())

    @staticmethod
    def _release(shared: _TokenSession) -> None:
        with _Library.lock:
            shared.refs -= 1
            if shared.refs <= 0:
                shared.close()
                key = (shared.module_path, shared.token_label)
                if _Library.sessions.get(key) is shared:
                    del _Library.sessions[key]

    # --- plumbing ---

    @contextmanager
    def _session(self, what: str) -> Iterator[Any]:
        """The shared session, locked, with python-pkcs11 errors mapped."""
        if self._closed:
            raise HsmError(f"{what}: the HSM backend is closed")
        with self._shared.lock:
            if not self._shared.valid:
                raise HsmError(f"{what}: the HSM session was closed (PKCS#11 library re-initialised)")
            with _mapped(what):
                yield self._shared.session

    def _obj(self, handle: object, what: str) -> Any:
        if not isinstance(handle, _Handle):
            raise HsmError(f"{what}: handle does not belong to a PKCS#11 backend")
        if handle.generation != self._shared.generation:
            raise HsmError(f"{what}: the session object is gone (the session was re-opened)")
        return handle.obj

    def _secret_obj(self, session: Any, key: SecretKey, what: str) -> Any:
        """The object behind ``key``; token keys are looked up again after a session re-open."""
        handle = key.handle
        if isinstance(handle, _Handle) and handle.generation != self._shared.generation:
            if key.persistent and key.label:
                handle.obj = self._one(session, key.label, ObjectClass.SECRET_KEY, what)
                handle.generation = self._shared.generation
        return self._obj(handle, what)

    @staticmethod
    def _find(session: Any, label: str, cls: ObjectClass) -> list[Any]:
        return list(session.get_objects({Attribute.LABEL: label, Attribute.CLASS: cls}))

    def _one(self, session: Any, label: str, cls: ObjectClass, what: str) -> Any:
        found = self._find(session, label, cls)
        if not found:
            raise KeyNotFoundError(f"{what}: no key labelled {label!r} on token {self.token_label!r}")
        if len(found) > 1:
            raise HsmError(f"{what}: several objects labelled {label!r}")
        return found[0]

    def _label_taken(self, session: Any, label: str) -> bool:
        return any(
            self._find(session, label, cls)
            for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY, ObjectClass.SECRET_KEY)
        )

    def _pair_info(self, session: Any, label: str, what: str) -> KeyPairInfo:
        priv = self._one(session, label, ObjectClass.PRIVATE_KEY, what)
        pubs = self._find(session, label, ObjectClass.PUBLIC_KEY)
        if not pubs:
            raise KeyNotFoundError(f"{what}: key {label!r} has no public half on the token")
        public_key = _public_from_point(bytes(pubs[0][Attribute.EC_POINT]))
        return KeyPairInfo(label=label, key_id=bytes(priv[Attribute.ID]), public_key=public_key)

    # --- EC key pairs ---

    def generate_ec_keypair(
        self,
        label: str,
        key_id: bytes | None = None,
        *,
        policy: KeyPolicy = KeyPolicy(),  # noqa: B008 - frozen dataclass
        reuse: bool = False,
    ) -> KeyPairInfo:
        what = f"generating key pair {label!r}"
        log.debug("%s on token %r", what, self.token_label)
        if not label:
            raise HsmError(f"{what}: a key label is required")
        with self._session(what) as session:
            if self._label_taken(session, label):
                if reuse:
                    return self._pair_info(session, label, what)
                raise DuplicateKeyError(
                    f"a key labelled {label!r} already exists on token {self.token_label!r}"
                    " (use reuse to keep it)"
                )
            if key_id is not None and list(session.get_objects({Attribute.ID: key_id})):
                raise DuplicateKeyError(
                    f"a key with id {key_id.hex()} already exists on token {self.token_label!r}"
                )
            tmp_id = key_id if key_id is not None else secrets.token_bytes(20)
            pub, priv = self._generate_pair(session, label, tmp_id, policy, what)
            public_key = _public_from_point(bytes(pub[Attribute.EC_POINT]))
            final_id = tmp_id
            if key_id is None and not policy.frozen:
                final_id = key_id_of(public_key)
                try:
                    priv[Attribute.ID] = final_id
                    pub[Attribute.ID] = final_id
                except p11e.PKCS11Error:
                    final_id = tmp_id  # module does not let CKA_ID change; keep the random id
            return KeyPairInfo(label=label, key_id=final_id, public_key=public_key)

    @staticmethod
    def _pair_templates(policy: KeyPolicy, tight: bool) -> tuple[dict[Attribute, Any], dict[Attribute, Any]]:
        """Public and private templates. The *policy* attributes are always set; ``tight`` also
        switches off capabilities the policy does not need (ENCRYPT, WRAP, DECRYPT, UNWRAP,
        DERIVE). Without ``tight`` those are left to the module (``pkcs11.DEFAULT``), because
        some modules (tpm2-pkcs11) dispute them when they are set explicitly."""
        off: Any = False if tight else pkcs11.DEFAULT
        public: dict[Attribute, Any] = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: False,
            Attribute.VERIFY: True,
            Attribute.ENCRYPT: off,
            Attribute.WRAP: off,
            Attribute.DERIVE: off,
        }
        private: dict[Attribute, Any] = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: policy.extractable or policy.wrap_with_trusted,
            Attribute.SIGN: True,
            Attribute.SIGN_RECOVER: off,
            Attribute.DECRYPT: off,
            Attribute.UNWRAP: off,
            Attribute.DERIVE: True if policy.derive else off,
        }
        if policy.wrap_with_trusted:
            private[Attribute.WRAP_WITH_TRUSTED] = True
        if policy.frozen:
            for template in (public, private):
                template[Attribute.MODIFIABLE] = False
                template[Attribute.COPYABLE] = False
        return public, private

    def _generate_pair(
        self, session: Any, label: str, key_id: bytes, policy: KeyPolicy, what: str
    ) -> tuple[Any, Any]:
        """Generate with the tight template; if the module disputes it, once more with the policy
        attributes only. Either way the result is read back by the caller, not trusted."""
        params = session.create_domain_parameters(KeyType.EC, {Attribute.EC_PARAMS: _P256_PARAMS}, local=True)
        for tight in (True, False):
            public, private = self._pair_templates(policy, tight)
            try:
                pair: tuple[Any, Any] = params.generate_keypair(
                    store=True, label=label, id=key_id, public_template=public, private_template=private
                )
                return pair
            except (
                p11e.TemplateInconsistent,
                p11e.AttributeValueInvalid,
                p11e.AttributeTypeInvalid,
                p11e.GeneralError,  # tpm2-pkcs11: "User specified and TPM specified attr mismatch"
            ):
                if not tight:
                    raise
        raise HsmError(f"{what}: unreachable")  # pragma: no cover

    def key_attributes(self, label: str) -> dict[str, bool | None]:
        """Every boolean attribute of the private key ``label`` as the token reports it (None:
        the module does not have that attribute). Recorded in transcripts as read, not as meant."""
        what = f"reading the attributes of key {label!r}"
        with self._session(what) as session:
            priv = self._one(session, label, ObjectClass.PRIVATE_KEY, what)
            return read_bool_attributes(priv)

    # --- what is on the token (transcripts, preflight, role checks) ---

    def token_info(self) -> dict[str, str]:
        """Library and token identity as the module reports it (CK_INFO, CK_TOKEN_INFO)."""
        with self._session("reading token information"):
            tok = self._shared.token
            with _Library.lock:
                lib = _Library.get(self.module_path)

            def text(value: Any) -> str:
                return (
                    value.decode(errors="replace").strip() if isinstance(value, bytes) else str(value).strip()
                )

            return {
                "library": self.module_path,
                "library_manufacturer": text(lib.manufacturer_id),
                "library_description": text(lib.library_description),
                "library_version": ".".join(str(v) for v in lib.library_version),
                "cryptoki_version": ".".join(str(v) for v in lib.cryptoki_version),
                "token_label": text(tok.label),
                "token_manufacturer": text(tok.manufacturer_id),
                "token_model": text(tok.model),
                "token_serial": text(tok.serial),
                "token_hardware_version": ".".join(str(v) for v in tok.hardware_version),
                "token_firmware_version": ".".join(str(v) for v in tok.firmware_version),
            }

    def mechanisms(self) -> set[str]:
        """Names of the mechanisms the token's slot offers (``CKM_`` dropped, as python-pkcs11)."""
        with self._session("listing mechanisms"):
            names: set[str] = set()
            for mech in self._shared.token.slot.get_mechanisms():
                names.add(mech.name if isinstance(mech, Mechanism) else f"0x{int(mech):08X}")
            return names

    def inventory(self) -> list[dict[str, Any]]:
        """Every object the user session sees (token and session objects): class, label, id,
        whether it is a token object, and for private and secret keys their boolean attributes.
        Never a value."""
        rows: list[dict[str, Any]] = []
        with self._session("listing the token's objects") as session:
            for obj in session.get_objects():
                cls = obj[Attribute.CLASS]
                row: dict[str, Any] = {
                    "class": cls.name if isinstance(cls, ObjectClass) else str(cls),
                    "label": str(obj[Attribute.LABEL]),
                    "token": bool(obj[Attribute.TOKEN]),
                }
                try:
                    row["id"] = bytes(obj[Attribute.ID]).hex()
                except (p11e.AttributeTypeInvalid, KeyError):
                    row["id"] = None
                if cls in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY):
                    row["attributes"] = read_bool_attributes(obj)
                rows.append(row)
        return sorted(rows, key=lambda r: (r["class"], r["label"], r["id"] or ""))

    def put_record(self, label: str, value: bytes) -> None:
        """Store a public, unmodifiable ``CKO_DATA`` token object (application ``nusec``): the
        ceremony's on-token record of what it finished. Refuses a label that exists."""
        what = f"writing record {label!r}"
        with self._session(what) as session:
            if list(session.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: label})):
                raise DuplicateKeyError(
                    f"a record labelled {label!r} already exists on token {self.token_label!r}"
                )
            session.create_object(
                {
                    Attribute.CLASS: ObjectClass.DATA,
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: False,
                    Attribute.MODIFIABLE: False,
                    Attribute.LABEL: label,
                    Attribute.APPLICATION: RECORD_APPLICATION,
                    Attribute.VALUE: value,
                }
            )

    def records(self) -> dict[str, bytes]:
        """Every ``CKO_DATA`` token object of application ``nusec``: label -> value."""
        with self._session("reading records") as session:
            return {
                str(obj[Attribute.LABEL]): bytes(obj[Attribute.VALUE])
                for obj in session.get_objects({Attribute.CLASS: ObjectClass.DATA})
                if str(obj[Attribute.APPLICATION]) == RECORD_APPLICATION
            }

    def find_ec_keypair(self, label: str) -> KeyPairInfo | None:
        what = f"looking up key {label!r}"
        with self._session(what) as session:
            if not self._find(session, label, ObjectClass.PRIVATE_KEY):
                return None
            return self._pair_info(session, label, what)

    def public_key(self, label: str) -> ec.EllipticCurvePublicKey:
        what = f"reading public key {label!r}"
        with self._session(what) as session:
            cached = self._shared.public_cache.get(label)
            if cached is not None:
                return cached
            pubs = self._find(session, label, ObjectClass.PUBLIC_KEY)
            if not pubs:
                raise KeyNotFoundError(f"{what}: no key labelled {label!r} on token {self.token_label!r}")
            public_key = _public_from_point(bytes(pubs[0][Attribute.EC_POINT]))
            self._shared.public_cache[label] = public_key
            return public_key

    def sign_digest_raw(self, label: str, digest: bytes) -> bytes:
        what = f"signing with key {label!r}"
        if len(digest) != DIGEST_LEN:
            raise HsmError(f"{what}: digest must be {DIGEST_LEN} bytes (SHA-256), got {len(digest)}")
        with self._session(what) as session:
            cache = self._shared.signer_cache
            priv = cache.get(label)
            if priv is not None:
                try:
                    raw = bytes(priv.sign(digest, mechanism=Mechanism.ECDSA))
                except (p11e.ObjectHandleInvalid, p11e.KeyHandleInvalid):
                    priv = None  # destroyed behind our back (another process): look it up again
                    cache.pop(label, None)
            if priv is None:
                priv = self._one(session, label, ObjectClass.PRIVATE_KEY, what)
                raw = bytes(priv.sign(digest, mechanism=Mechanism.ECDSA))
                cache[label] = priv
        if len(raw) != 64:
            raise HsmError(f"{what}: token returned a {len(raw)}-byte signature")
        return raw

    def sign_digest(self, label: str, digest: bytes) -> bytes:
        return signature_to_der(self.sign_digest_raw(label, digest))

    def destroy_keypair(self, label: str) -> None:
        what = f"destroying key pair {label!r}"
        with self._session(what) as session:
            self._shared.signer_cache.pop(label, None)
            self._shared.public_cache.pop(label, None)
            objs = self._find(session, label, ObjectClass.PRIVATE_KEY) + self._find(
                session, label, ObjectClass.PUBLIC_KEY
            )
            if not objs:
                raise KeyNotFoundError(f"{what}: no key labelled {label!r} on token {self.token_label!r}")
            for obj in objs:
                obj.destroy()

    def list_labels(self) -> list[str]:
        with self._session("listing keys") as session:
            labels: set[str] = set()
            for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY):
                for obj in session.get_objects({Attribute.CLASS: cls, Attribute.TOKEN: True}):
                    labels.add(str(obj[Attribute.LABEL]))
            return sorted(labels)

    # --- ECDH ---

    def generate_ephemeral_keypair(self) -> EphemeralKeyPair:
        with self._session("generating an ephemeral key pair") as session:
            params = session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: _P256_PARAMS}, local=True
            )
            pub, priv = params.generate_keypair(
                store=False,
                public_template={Attribute.TOKEN: False, Attribute.VERIFY: True},
                private_template={
                    Attribute.TOKEN: False,
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.DERIVE: True,
                    Attribute.SIGN: False,
                },
            )
            public_key = _public_from_point(bytes(pub[Attribute.EC_POINT]))
            return EphemeralKeyPair(
                public_key=public_key, handle=_Handle((pub, priv), self._shared.generation)
            )

    def ecdh_derive_aes(
        self,
        private: EphemeralKeyPair | str,
        peer_point: bytes,
        *,
        label: str | None = None,
        persistent: bool = False,
    ) -> SecretKey:
        what = "ECDH key derivation"
        if len(peer_point) != P256_POINT_LEN or peer_point[0] != 0x04:
            raise HsmError(f"{what}: peer point must be a {P256_POINT_LEN}-byte uncompressed P-256 point")
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), peer_point)
        except ValueError:
            raise HsmError(f"{what}: peer point is not on P-256") from None
        if persistent and not label:
            raise HsmError(f"{what}: a persistent derived key needs a label")
        with self._session(what) as session:
            if isinstance(private, EphemeralKeyPair):
                priv = self._obj(private.handle, what)[1]
            else:
                priv = self._one(session, private, ObjectClass.PRIVATE_KEY, what)
                if not hasattr(priv, "derive_key"):  # python-pkcs11 adds the method only with CKA_DERIVE
                    raise HsmError(f"{what}: key {private!r} is not allowed to derive (CKA_DERIVE false)")
            if persistent and label and self._label_taken(session, label):
                raise DuplicateKeyError(
                    f"a key labelled {label!r} already exists on token {self.token_label!r}"
                )
            template: dict[Attribute, Any] = {
                Attribute.TOKEN: persistent,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.ENCRYPT: True,
                Attribute.DECRYPT: True,
                Attribute.WRAP: False,
                Attribute.UNWRAP: False,
                Attribute.SIGN: False,
                Attribute.VERIFY: False,
            }
            if label:
                template[Attribute.LABEL] = label
            key = priv.derive_key(
                KeyType.AES,
                256,
                mechanism_param=(KDF.NULL, None, peer_point),
                template=template,
            )
            return SecretKey(
                label=label,
                kind=SecretKeyKind.AES,
                persistent=persistent,
                handle=_Handle(key, self._shared.generation),
            )

    def aes_ecb_encrypt_block(self, key: SecretKey, block: bytes) -> bytes:
        what = "AES-ECB encryption"
        if len(block) != 16:
            raise HsmError(f"{what}: block must be 16 bytes, got {len(block)}")
        with self._session(what) as session:
            obj = self._secret_obj(session, key, what)
            return bytes(obj.encrypt(block, mechanism=Mechanism.AES_ECB))

    def destroy_ephemeral(self, pair: EphemeralKeyPair) -> None:
        what = "destroying an ephemeral key pair"
        with self._session(what):
            handle = pair.handle
            if not isinstance(handle, _Handle) or handle.generation != self._shared.generation:
                return  # already gone with its session
            for obj in handle.obj:
                try:
                    obj.destroy()
                except p11e.ObjectHandleInvalid:
                    pass
            handle.generation = -1

    # --- secret keys, KEKs, wrapping ---

    @staticmethod
    def _kek_template(label: str | None, persistent: bool, trusted: bool) -> dict[Attribute, Any]:
        template: dict[Attribute, Any] = {
            Attribute.TOKEN: persistent,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.WRAP: True,
            Attribute.UNWRAP: True,
            Attribute.ENCRYPT: True,
            Attribute.DECRYPT: True,
            Attribute.SIGN: False,
            Attribute.VERIFY: False,
            Attribute.DERIVE: False,
        }
        if trusted:
            template[Attribute.TRUSTED] = True
            template[Attribute.PRIVATE] = False  # so the user session can find what the SO made
        else:
            template[Attribute.PRIVATE] = True
        if label:
            template[Attribute.LABEL] = label
        return template

    def _trusted_kek(self, label: str | None, make: Callable[[Any, dict[Attribute, Any]], Any]) -> SecretKey:
        """A trusted KEK as a *session* object (see ``security_officer_then_user``): it is never
        written to the token and vanishes when the session closes or the process dies."""
        if not self._so_pin:
            raise HsmError(
                "a trusted KEK needs the security-officer PIN (NUSEC_HSM_SO_PIN or NUSEC_HSM_SO_PIN_FILE)"
            )
        name = label or f"nusec-kek-{secrets.token_hex(8)}"
        with self._session("creating a trusted KEK") as session:
            if self._label_taken(session, name):
                raise DuplicateKeyError(
                    f"a key labelled {name!r} already exists on token {self.token_label!r}"
                )
            template = self._kek_template(name, False, True)
            obj = self._shared.security_officer_then_user(self._so_pin, lambda so: make(so, template))
            return SecretKey(name, SecretKeyKind.AES, False, _Handle(obj, self._shared.generation))

    def generate_aes_kek(
        self, label: str | None = None, *, trusted: bool = False, persistent: bool = True, reuse: bool = False
    ) -> SecretKey:
        what = f"generating KEK {label!r}"
        log.debug("%s on token %r", what, self.token_label)
        if trusted:
            persistent = False  # a trusted KEK is only ever a session object
        if persistent and not label:
            raise HsmError(f"{what}: a persistent KEK needs a label")
        if label:
            existing = self.find_secret_key(label)
            if existing is not None:
                if reuse:
                    return existing
                raise DuplicateKeyError(
                    f"a key labelled {label!r} already exists on token {self.token_label!r}"
                )
        if trusted:
            return self._trusted_kek(
                label, lambda so, tpl: so.generate_key(KeyType.AES, 256, store=False, template=tpl)
            )
        with self._session(what) as session:
            obj = session.generate_key(
                KeyType.AES, 256, store=persistent, template=self._kek_template(label, persistent, False)
            )
            return SecretKey(label, SecretKeyKind.AES, persistent, _Handle(obj, self._shared.generation))

    def import_aes_kek(
        self, value: bytes, label: str | None = None, *, trusted: bool = False, persistent: bool = False
    ) -> SecretKey:
        what = "importing a KEK"
        if len(value) != 32:
            raise HsmError(f"{what}: KEK value must be 32 bytes (AES-256)")
        if trusted:
            persistent = False  # a trusted KEK is only ever a session object
        if persistent and not label:
            raise HsmError(f"{what}: a persistent KEK needs a label")

        def attrs(template: dict[Attribute, Any]) -> dict[Attribute, Any]:
            full = dict(template)
            full[Attribute.CLASS] = ObjectClass.SECRET_KEY
            full[Attribute.KEY_TYPE] = KeyType.AES
            full[Attribute.VALUE] = value
            return full

        if trusted:
            return self._trusted_kek(label, lambda so, tpl: so.create_object(attrs(tpl)))
        with self._session(what) as session:
            if label and self._label_taken(session, label):
                raise DuplicateKeyError(
                    f"a key labelled {label!r} already exists on token {self.token_label!r}"
                )
            obj = session.create_object(attrs(self._kek_template(label, persistent, False)))
            return SecretKey(label, SecretKeyKind.AES, persistent, _Handle(obj, self._shared.generation))

    def find_secret_key(self, label: str) -> SecretKey | None:
        what = f"looking up secret key {label!r}"
        with self._session(what) as session:
            found = self._find(session, label, ObjectClass.SECRET_KEY)
            if not found:
                return None
            if len(found) > 1:
                raise HsmError(f"{what}: several objects labelled {label!r}")
            obj = found[0]
            kind = (
                SecretKeyKind.AES if obj[Attribute.KEY_TYPE] == KeyType.AES else SecretKeyKind.GENERIC_SECRET
            )
            return SecretKey(label, kind, bool(obj[Attribute.TOKEN]), _Handle(obj, self._shared.generation))

    def destroy_secret_key(self, key: SecretKey) -> None:
        what = f"destroying secret key {key.label!r}"
        with self._session(what) as session:
            self._secret_obj(session, key, what).destroy()

    def wrap_private_key(self, label: str, kek: SecretKey) -> bytes:
        what = f"wrapping key {label!r}"
        with self._session(what) as session:
            priv = self._one(session, label, ObjectClass.PRIVATE_KEY, what)
            return bytes(
                self._secret_obj(session, kek, what).wrap_key(priv, mechanism=Mechanism.AES_KEY_WRAP_PAD)
            )

    def unwrap_private_key(
        self,
        wrapped: bytes,
        kek: SecretKey,
        label: str,
        public_key: ec.EllipticCurvePublicKey,
        key_id: bytes | None = None,
        *,
        policy: KeyPolicy = KeyPolicy(),  # noqa: B008 - frozen dataclass
    ) -> KeyPairInfo:
        what = f"unwrapping key {label!r}"
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
            public_key.curve, ec.SECP256R1
        ):
            raise HsmError(f"{what}: public key must be EC P-256")
        kid = key_id if key_id is not None else key_id_of(public_key)
        with self._session(what) as session:
            if self._label_taken(session, label):
                raise DuplicateKeyError(
                    f"a key labelled {label!r} already exists on token {self.token_label!r}"
                )
            kek_obj = self._secret_obj(session, kek, what)
            base: dict[Attribute, Any] = {
                # python-pkcs11 adds every capability flag; a private EC key has no
                # ENCRYPT/VERIFY/WRAP attribute, so SoftHSM2 refuses them: drop them.
                Attribute.ENCRYPT: pkcs11.DEFAULT,
                Attribute.VERIFY: pkcs11.DEFAULT,
                Attribute.WRAP: pkcs11.DEFAULT,
                Attribute.SIGN: True,
                Attribute.SIGN_RECOVER: False,
                Attribute.DECRYPT: False,
                Attribute.UNWRAP: False,
                Attribute.DERIVE: policy.derive,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: policy.extractable or policy.wrap_with_trusted,
                Attribute.WRAP_WITH_TRUSTED: policy.wrap_with_trusted,
            }
            # Frozen policy: MODIFIABLE false. Not COPYABLE too: SoftHSM2 2.6.1's C_UnwrapKey
            # refuses the pair (AttributeReadOnly) *after* creating a partial object, so asking
            # would leave debris on the token (tests/pki/test_hsm_pkcs11.py shows it). What was
            # set is read back by the caller (``key_attributes``), never assumed.
            extra: dict[Attribute, Any] = {Attribute.MODIFIABLE: False} if policy.frozen else {}
            try:
                priv = kek_obj.unwrap_key(
                    ObjectClass.PRIVATE_KEY,
                    KeyType.EC,
                    wrapped,
                    label=label,
                    id=kid,
                    store=True,
                    mechanism=Mechanism.AES_KEY_WRAP_PAD,
                    template={**base, **extra},
                )
            except p11e.PKCS11Error as exc:
                err = _hsm_error(what, exc)
                if type(err) is HsmError:
                    err = UnwrapError(f"{what}: the token refused to unwrap ({type(exc).__name__})")
                raise err from None
            # The unwrapped private key must belong to the given public key (checked before the
            # public half is stored); on any failure nothing is left behind on the token.
            pub = None
            try:
                probe = secrets.token_bytes(DIGEST_LEN)
                raw = bytes(priv.sign(probe, mechanism=Mechanism.ECDSA))
                try:
                    public_key.verify(signature_to_der(raw), probe, ec.ECDSA(Prehashed(hashes.SHA256())))
                except InvalidSignature:
                    raise UnwrapError(
                        f"{what}: the unwrapped key does not match the given public key"
                    ) from None
                pub = session.create_object(
                    {
                        Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                        Attribute.KEY_TYPE: KeyType.EC,
                        Attribute.TOKEN: True,
                        Attribute.PRIVATE: False,
                        Attribute.LABEL: label,
                        Attribute.ID: kid,
                        Attribute.VERIFY: True,
                        Attribute.EC_PARAMS: _P256_PARAMS,
                        Attribute.EC_POINT: b"\x04\x41" + point_of(public_key),
                    }
                )
            except BaseException:
                for obj in (pub, priv):
                    if obj is not None:
                        obj.destroy()
                raise
            return KeyPairInfo(label=label, key_id=kid, public_key=public_key)

    def _import_generic(self, session: Any, secret: bytes) -> Any:
        return session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
                Attribute.TOKEN: False,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: True,
                Attribute.VALUE: secret,
            }
        )

    def wrap_bytes(self, kek: SecretKey, secret: bytes) -> bytes:
        what = "wrapping secret bytes"
        if not 8 <= len(secret) <= _MAX_WRAP_BYTES or len(secret) % 8:
            # SoftHSM2 2.6.1 zero-pads CKM_AES_KEY_WRAP_PAD input to 8 bytes before wrapping, so
            # other lengths would not come back exactly (nor match RFC 5649 elsewhere).
            raise HsmError(f"{what}: secret must be a multiple of 8 bytes, 8..{_MAX_WRAP_BYTES}")
        with self._session(what) as session:
            kek_obj = self._secret_obj(session, kek, what)
            tmp = self._import_generic(session, secret)
            try:
                return bytes(kek_obj.wrap_key(tmp, mechanism=Mechanism.AES_KEY_WRAP_PAD))
            finally:
                tmp.destroy()

    def _unwrap_secret(
        self,
        kek: SecretKey,
        wrapped: bytes,
        key_type: KeyType,
        template: dict[Attribute, Any],
        what: str,
        label: str | None = None,
    ) -> Any:
        with self._session(what) as session:
            kek_obj = self._secret_obj(session, kek, what)
            if label and template.get(Attribute.TOKEN) and self._label_taken(session, label):
                raise DuplicateKeyError(
                    f"a key labelled {label!r} already exists on token {self.token_label!r}"
                )
            try:
                return kek_obj.unwrap_key(
                    ObjectClass.SECRET_KEY,
                    key_type,
                    wrapped,
                    label=label,
                    mechanism=Mechanism.AES_KEY_WRAP_PAD,
                    store=bool(template.get(Attribute.TOKEN)),
                    template=template,
                )
            except p11e.PKCS11Error as exc:
                err = _hsm_error(what, exc)
                if type(err) is HsmError:
                    err = UnwrapError(f"{what}: the token refused to unwrap ({type(exc).__name__})")
                raise err from None

    def unwrap_bytes(self, kek: SecretKey, wrapped: bytes) -> bytes:
        what = "unwrapping secret bytes"
        log.debug("%s (%d wrapped bytes) on token %r into host memory", what, len(wrapped), self.token_label)
        obj = self._unwrap_secret(
            kek,
            wrapped,
            KeyType.GENERIC_SECRET,
            {Attribute.TOKEN: False, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
            what,
        )
        with self._session(what):
            try:
                return bytes(obj[Attribute.VALUE])
            finally:
                obj.destroy()

    def unwrap_to_key(
        self,
        kek: SecretKey,
        wrapped: bytes,
        *,
        kind: SecretKeyKind = SecretKeyKind.AES,
        label: str | None = None,
        persistent: bool = False,
    ) -> SecretKey:
        what = "unwrapping into a key"
        if persistent and not label:
            raise HsmError(f"{what}: a persistent key needs a label")
        key_type = KeyType.AES if kind is SecretKeyKind.AES else KeyType.GENERIC_SECRET
        template: dict[Attribute, Any] = {
            Attribute.TOKEN: persistent,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
        }
        obj = self._unwrap_secret(kek, wrapped, key_type, template, what, label)
        return SecretKey(label, kind, persistent, _Handle(obj, self._shared.generation))

    # --- life cycle ---

    def random_bytes(self, n: int) -> bytes:
        if n <= 0:
            raise HsmError("random_bytes needs a positive length")
        with self._session("reading the token's RNG") as session:
            return bytes(session.generate_random(n * 8))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Pkcs11Backend(module={self.module_path!r}, token={self.token_label!r})"


def open_backend(uri: str | Pkcs11Uri) -> Pkcs11Backend:
    """Open a PKCS#11 backend from a ``pkcs11:`` URI (PIN from pin-source / environment)."""
    return Pkcs11Backend.from_uri(uri)
