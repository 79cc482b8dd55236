"""Errors raised by ``pki``: one class per problem, one-line messages, never a PIN or key bytes.

Callers (ceremony, service, CLI) catch ``PkiError`` to turn any of these into a clear one-line
message and a non-zero exit (or an RFC 9457 problem); the subclasses let them pick an HTTP status.
"""

from __future__ import annotations


class PkiError(Exception):
    """Base of every error raised by ``pki``; ``str(err)`` is a one-line, secret-free message."""


# --- HSM layer -------------------------------------------------------------------------------


class HsmError(PkiError):
    """A PKCS#11 operation failed for a reason not covered by a narrower class."""


class Pkcs11UriError(HsmError):
    """A ``pkcs11:`` URI is malformed, or carries a clear PIN (``pin-value`` is refused)."""


class PinSourceError(HsmError):
    """No PIN could be obtained (no ``pin-source`` file, no ``NUSEC_HSM_PIN``) or the file is unreadable."""


class Pkcs11ModuleError(HsmError):
    """The PKCS#11 module (shared library) does not exist or cannot be loaded."""


class TokenNotFoundError(HsmError):
    """No token with the requested label is present in any slot."""


class PinIncorrectError(HsmError):
    """The token refused the user (or security-officer) PIN."""


class PinLockedError(HsmError):
    """The token's PIN is locked after too many wrong attempts."""


class KeyNotFoundError(HsmError):
    """No key with the requested label (and id) exists on the token."""


class DuplicateKeyError(HsmError):
    """A key with that label/id already exists and ``reuse=True`` was not given."""


class KeyNotWrappableError(HsmError):
    """The token refused to wrap the key (not extractable, or the KEK is not trusted)."""


class UnwrapError(HsmError):
    """The token refused to unwrap: wrong KEK, corrupted blob, or a template it does not accept."""


# --- CA / CSR / lint -------------------------------------------------------------------------


class CaError(PkiError):
    """Certificate or CRL issuance was refused (bad profile input, mismatched issuer, ...)."""


class LintError(CaError):
    """pkilint reported ERROR-level findings; the message names the first ones."""

    def __init__(self, message: str, findings: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.findings = findings


class CsrError(CaError):
    """A CSR was refused by policy; subclasses say why."""


class CsrMalformedError(CsrError):
    """The CSR is not parseable DER/PEM PKCS#10."""


class CsrSignatureError(CsrError):
    """The CSR's proof-of-possession signature does not verify with its own public key."""


class CsrKeyTypeError(CsrError):
    """The CSR's key is not an EC P-256 key."""


class CsrSubjectError(CsrError):
    """The CSR's subject does not carry the registered board UID."""


class CsrExtensionError(CsrError):
    """The CSR requests an extension (or attribute) that is not on the allow-list."""


# --- store -----------------------------------------------------------------------------------


class StoreError(PkiError):
    """The certificate store refused a write (duplicate serial, unknown board, ...)."""
