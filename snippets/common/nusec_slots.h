/* KeyStore OTP slots as NuSec uses them (twin of nuboard/keyslots.py; tests/sim check that the
 * two agree). Slots 0 and 1 hold the mask ROM's secure-boot root key (SecureBootDemo: secure boot
 * is on when KS_OTPSTS & 0x3): no board code ever writes them. The board identity key lives in a
 * slot the ROM does not read. */
#ifndef NUSEC_SLOTS_H
#define NUSEC_SLOTS_H

#define NUSEC_KS_ROM_ROOT_SLOT_X 0u
#define NUSEC_KS_ROM_ROOT_SLOT_Y 1u
#define NUSEC_KS_FIRST_FREE_SLOT 2u
#define NUSEC_KS_IDENTITY_SLOT 2u

#endif
