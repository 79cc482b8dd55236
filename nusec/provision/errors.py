"""Why a provisioning run stopped, as exception classes that carry their exit code.

The CLI maps each class to one documented exit code (docs/provisioning.md), so scripts can tell
"retry later" (link, service) from "do not touch this board again without a human" (forged
answer, OTP conflict).
"""

from __future__ import annotations


class ProvisionError(Exception):
    """A step failed; the message is one line naming the problem. Exit code 1."""

    exit_code = 1


class UsageError(ProvisionError):
    """Bad command-line input or configuration, found before anything was touched. Exit 2."""

    exit_code = 2


class VerificationError(ProvisionError):
    """An answer failed a check (forged chain, certificate for another UID/key, key mismatch,
    bad ECDH signature, firmware that does not verify). Nothing irreversible follows. Exit 3."""

    exit_code = 3


class BoardUnreachable(ProvisionError):
    """The board cannot be reached over the probe (link dropped, no such probe, debugger locked
    out). Re-running resumes. Exit 4."""

    exit_code = 4


class OtpConflict(ProvisionError):
    """OTP holds something other than blank or the expected value, or a write did not verify.
    The run stops with no further writes; the board needs a human. Exit 5."""

    exit_code = 5


class ServiceError(ProvisionError):
    """The OEM service refused a request or could not be reached. Re-running resumes. Exit 6."""

    exit_code = 6
