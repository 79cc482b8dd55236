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


class DiskError(ProvisionError):
    """A local file could not be written or read (disk full, permissions); the message names the
    path. Nothing on the board depends on the write that failed. Exit 1; re-running resumes."""

    exit_code = 1


class BoardTampered(OtpConflict):
    """The board holds material this tool did not put there and the service never certified (a
    key in the identity slot with no keygen record). Stops before any certificate request. Exit 5."""


class FirmwareDidNotBoot(VerificationError):
    """The signed firmware, read back intact, did not answer after a reset. The board is left
    unlocked so it can be reflashed with a working image. Exit 3."""
