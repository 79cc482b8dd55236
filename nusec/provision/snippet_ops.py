"""The two things the flow asks of the KeyGen snippet (``nusec.board.snippet``), with the
provisioning rules on top.

Keygen happens once: a resumed run asks the snippet's STATUS whether the identity key's KeyStore
OTP slot is already used and then only reads its public key, so a second keygen is never
attempted. The snippet is (re)loaded into SRAM on every call, since SRAM does not survive a power
cycle or a resumed run. Bytes the snippet client moves are added to the link's probe counter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nusec.board.keyslots import IDENTITY_SLOT
from nusec.provision.errors import ProvisionError

if TYPE_CHECKING:
    from nusec.board.snippet import KeyGenSnippet
    from nusec.provision.link import SwdLink

__all__ = ["IDENTITY_SLOT", "identity_public_key", "sign"]


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


def identity_public_key(link: SwdLink) -> bytes:
    """AUTH_PUB (65-byte SEC1) of the board's identity key, generated on first use only."""
    from nusec.board.snippet import SnippetError

    snippet = _loaded(link)
    try:
        if snippet.status().slot_used(IDENTITY_SLOT):
            xy = snippet.public_key(IDENTITY_SLOT)
        else:
            xy = snippet.keygen(IDENTITY_SLOT)
    except SnippetError as exc:
        raise ProvisionError(f"KeyGen snippet refused: {exc}") from None
    finally:
        _count(link, snippet)
    return b"\x04" + xy


def sign(link: SwdLink, data: bytes) -> bytes:
    """The board's raw r‖s signature over SHA-256(``data``) with the identity key."""
    from nusec.board.snippet import SnippetError

    snippet = _loaded(link)
    try:
        return snippet.sign_cri(data, IDENTITY_SLOT)
    except SnippetError as exc:
        raise ProvisionError(f"KeyGen snippet refused to sign: {exc}") from None
    finally:
        _count(link, snippet)
