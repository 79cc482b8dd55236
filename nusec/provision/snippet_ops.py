"""The things the flow asks of the KeyGen snippet (``nusec.board.snippet``), with the provisioning
rules on top.

The identity slot comes from the board layer (``nuboard.keyslots.IDENTITY_SLOT``), never
re-typed here. Whether a key already in that slot may be used is the flow's decision (keygen
intent in the journal, or a certificate of the service for that very key); this module only
reports what the board holds and generates on request. The snippet is (re)loaded into SRAM on
every call, since SRAM does not survive a power cycle or a resumed run. Bytes the snippet client
moves are added to the link's probe counter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nuboard.keyslots import IDENTITY_SLOT
from nusec.provision.errors import ProvisionError

if TYPE_CHECKING:
    from nusec.board.snippet import KeyGenSnippet
    from nusec.provision.link import SwdLink

__all__ = ["IDENTITY_SLOT", "existing_identity_key", "generate_identity_key", "identity_slot", "sign"]


def identity_slot() -> int:
    """The KeyStore OTP slot of the identity key (``nuboard.keyslots``, never a ROM slot)."""
    return IDENTITY_SLOT


def _loaded(link: SwdLink) -> KeyGenSnippet:
    from nusec.board.snippet import KeyGenSnippet, SnippetError

    snippet = KeyGenSnippet(link.target)
    try:
        snippet.load()
    except SnippetError as exc:
        raise ProvisionError(f"KeyGen snippet: {exc}") from None
    return snippet


def _count(link: SwdLink, snippet: KeyGenSnippet) -> None:
    link.memory.bytes += snippet.bytes_sent + snippet.bytes_received


def existing_identity_key(link: SwdLink) -> bytes | None:
    """AUTH_PUB (65-byte SEC1) of the key already in the identity slot, or None when it is empty."""
    from nusec.board.snippet import SnippetError

    snippet = _loaded(link)
    slot = identity_slot()
    try:
        if not snippet.status().slot_used(slot):
            return None
        return b"\x04" + snippet.public_key(slot)
    except SnippetError as exc:
        raise ProvisionError(f"KeyGen snippet refused: {exc}") from None
    finally:
        _count(link, snippet)


def generate_identity_key(link: SwdLink) -> bytes:
    """Generate the identity key in the (empty) identity slot; its AUTH_PUB (65-byte SEC1)."""
    from nusec.board.snippet import SnippetError

    snippet = _loaded(link)
    try:
        return b"\x04" + snippet.keygen(identity_slot())
    except SnippetError as exc:
        raise ProvisionError(f"KeyGen snippet refused: {exc}") from None
    finally:
        _count(link, snippet)


def sign(link: SwdLink, data: bytes) -> bytes:
    """The board's raw r‖s signature over SHA-256(``data``) with the identity key."""
    from nusec.board.snippet import SnippetError

    snippet = _loaded(link)
    try:
        return snippet.sign_cri(data, identity_slot())
    except SnippetError as exc:
        raise ProvisionError(f"KeyGen snippet refused to sign: {exc}") from None
    finally:
        _count(link, snippet)
