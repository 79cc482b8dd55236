"""Errors raised by ``ceremony``: one line each, naming the problem, never carrying a secret.

The CLI turns any ``CeremonyError`` (and any ``pki.errors.PkiError``) into ``error: <message>``
on stderr and exit code 1.
"""

from __future__ import annotations


class CeremonyError(Exception):
    """Base of every ceremony error; ``str(err)`` is one secret-free line."""


class ConfigError(CeremonyError):
    """The YAML file is malformed, has an unknown/missing field, or a secret source is unusable."""


class OutputExistsError(CeremonyError):
    """An output (or the outputs folder) already exists; the ceremony never overwrites."""


class KeyExistsError(CeremonyError):
    """A key label from the config already exists on the token and ``--reuse`` was not given."""


class BackupError(CeremonyError):
    """Custodian shares are missing, malformed, too few, or do not belong together."""


class TranscriptError(CeremonyError):
    """A transcript is malformed, its hash chain or signature fails, or an output differs."""


class RestoreError(CeremonyError):
    """A restore could not complete (wrong shares or passphrase, key mismatch, ...)."""


class FinishedCeremonyError(CeremonyError):
    """The token already holds a finished ceremony's keys: never re-run, never "resumed"."""


class ReuseRefusedError(KeyExistsError):
    """``--reuse`` found a key that this config's interrupted run did not make (or that does not
    read back as the policy requires): a planted key is never adopted."""
