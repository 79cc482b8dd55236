"""The signed NuBL2 as the mask ROM will see it: one check for the ceremony that signs it and the
service that serves it (the desktop checks it again with ``nucore.mcuboot`` before burning).

NuBL2 is the first-stage bootloader (``snippets/nubl2``). The ROM verifies it with the root key in
KeyStore OTP slots 0/1, so an image that does not verify with the OEM's NuBL2 key, or that is laid
out for another slot, would leave every board it reaches unbootable.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nuboard import layout
from nucore import mcuboot
from pki.errors import PkiError


class Nubl2Error(PkiError):
    """The NuBL2 image is not one the ROM would start with this key."""


def verify_nubl2(image: bytes, key: ec.EllipticCurvePublicKey) -> mcuboot.Image:
    """The parsed image if it verifies with ``key``, KEYHASH included, and fits the NuBL2 slot."""
    try:
        parsed = mcuboot.verify(image, key, require_keyhash=True)
    except mcuboot.McubootError as exc:
        raise Nubl2Error(f"NuBL2 image: {exc}") from None
    if parsed.header.header_size != layout.NUBL2_HEADER_SIZE:
        raise Nubl2Error(f"NuBL2 image: header size {parsed.header.header_size:#x}, expected 0x400")
    if parsed.end > layout.NUBL2_SLOT_SIZE or len(image) > layout.NUBL2_SLOT_SIZE:
        raise Nubl2Error("NuBL2 image: larger than the NuBL2 slot")
    return parsed


def load_signed_nubl2(path: Path, key_of: Callable[[str], ec.EllipticCurvePublicKey], label: str) -> bytes:
    """The signed NuBL2 at ``path``, proven to verify with the HSM key ``label`` (``key_of`` reads
    its public half from the token): a planted or damaged image never reaches a board."""
    try:
        image = path.read_bytes()
    except OSError as exc:
        raise Nubl2Error(f"nubl2_image: cannot read {path}: {exc.strerror or exc}") from None
    try:
        key = key_of(label)
    except Exception as exc:  # HsmError, or the PKCS#11 library's own (no such key)
        raise Nubl2Error(f"nubl2_key_label: no key {label!r} on the token ({type(exc).__name__})") from None
    try:
        verify_nubl2(image, key)
    except Nubl2Error as exc:
        raise Nubl2Error(f"nubl2_image {path}: {exc} with HSM key {label!r}") from None
    return image


def sign_nubl2(
    raw: bytes,
    key: ec.EllipticCurvePublicKey,
    sign_digest: Callable[[bytes], bytes],
    version: str = "1.0.0",
) -> bytes:
    """The raw NuBL2 binary (linked for the APROM base + 0x400) as a signed MCUboot image, as
    SecureBootDemo's FwSign.sh makes it (header 0x400, SHA256 + KEYHASH + ECDSA TLVs), checked
    with ``key`` before it is returned. ``sign_digest`` is the HSM's (DER signature)."""
    from pki.service.firmware import FirmwareError, ImageVersion, sign_image

    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        signed = sign_image(
            raw,
            public_key_der=spki,
            sign_digest=sign_digest,
            version=ImageVersion.parse(version),
            header_size=layout.NUBL2_HEADER_SIZE,
            slot_address=layout.NUBL2_BASE,
            max_size=layout.NUBL2_SLOT_SIZE - 0x1000,
        )
    except FirmwareError as exc:
        raise Nubl2Error(f"NuBL2 binary: {exc}") from None
    verify_nubl2(signed.image, key)
    return signed.image
