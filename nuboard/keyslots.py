"""KeyStore OTP slots as NuSec uses them: one constant each, for the host and (through
``snippets/common/nusec_slots.h``, checked against this module by tests/sim) the board C.

Slots 0 and 1 are the mask ROM's: it reads its secure-boot root public key (X in 0, Y in 1) from
them, and secure boot is on once they are programmed (SecureBootDemo/NuBL2: ``KS->OTPSTS & 0x3``,
``KS_WriteOTP(0/1, KS_META_256 | KS_META_ECC | KS_META_BOOT)``). Nothing but the provisioning of
that root key may write them, so the board identity key goes into slot 2.
"""

from __future__ import annotations

ROM_ROOT_SLOT_X = 0
ROM_ROOT_SLOT_Y = 1
ROM_ROOT_SLOTS = (ROM_ROOT_SLOT_X, ROM_ROOT_SLOT_Y)
FIRST_FREE_SLOT = 2
#: KeyStore OTP slot of the identity key AUTH_PRI_NuLink3 (never a ROM slot).
IDENTITY_SLOT = 2
