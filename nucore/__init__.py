"""nucore: the thin typed Python face over NuSec's native C core (``csrc/``), and the formats
every actor shares (r||s <-> DER signatures in ``p256``, OTP words in ``otp``, MCUboot images in
``mcuboot``), so each has one owner that the OEM service, the desktop and the simulator import.

This is the bottom layer: it imports nothing from ``pki``, ``ceremony`` or ``nusec``, so all
of them may import it. One module per primitive, in the manner of pyca/cryptography's
``hazmat``; callers never touch the cffi binding (``nucore._native``) directly.
"""

from nucore.errors import NativeError

__all__ = ["NativeError"]
