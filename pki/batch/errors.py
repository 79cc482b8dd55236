"""The one error type of the bulk OTP job: a one-line, secret-free message naming the problem."""

from __future__ import annotations

from pki.errors import PkiError


class OtpBatchError(PkiError):
    """A batch spec, batch folder, image or claim was rejected; ``str()`` is safe to print."""
