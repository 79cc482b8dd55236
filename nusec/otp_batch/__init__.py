"""The desktop's side of a bulk OTP batch: claiming one image for one board (``claim``).

The batch format, build, seal and verify are OEM work and live in ``pki.batch``.
"""

from __future__ import annotations

from nusec.otp_batch.claim import ClaimedImage, claim_next_image, peek_next_image, read_claims

__all__ = ["ClaimedImage", "claim_next_image", "peek_next_image", "read_claims"]
