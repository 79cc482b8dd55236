"""The provisioning steps, in the seed's order, as data.

Why data: the runner, the journal, the progress display, ``--dry-run``, the docs table and the
kill-at-step-k tests all iterate over this one list, so they cannot disagree about what the
steps are or which of them change the board for good.

``irreversible`` marks steps that write something that cannot be undone (OTP, the secure lock);
every check a step depends on runs in an earlier step, so a forged answer stops the run before
any of them. ``board`` marks steps that need the debugger (SWD); after the lock only the UART
remains.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Access(Enum):
    """Which link a step uses to reach the board."""

    NONE = "none"  # service or local files only
    SWD = "swd"  # the debugger (pyocd)
    UART = "uart"  # the board firmware's command channel


@dataclass(frozen=True)
class Step:
    """One arrow (or a tight group of arrows) of the seed sequence."""

    id: str
    title: str
    seed: str  # the seed arrow(s) this step carries out
    access: Access
    irreversible: bool = False


STEPS: tuple[Step, ...] = (
    Step("register", "Register board UID", "n ->> o: register the board by UID", Access.SWD),
    Step("ca_chain", "Get RootCA/ICA chain", "o ->> n: Send RootCA/ICA Certificate", Access.NONE),
    Step(
        "nubl2",
        "Get signed NuBL2 and ROM root key",
        "o ->> n: NuBL2 (signed by the OEM's NuBL2 key in the HSM), NuBL2_PUB",
        Access.NONE,
    ),
    Step(
        "otp_ca",
        "Write RootCA/ICA material to OTP",
        "n ->> p: Program RootCA/ICA Certificate (OTP)",
        Access.SWD,
        irreversible=True,
    ),
    Step(
        "keygen", "Run KeyGen snippet, get AUTH_PUB", "n ->> p: KeyGen snippet; p ->> n: AUTH_PUB", Access.SWD
    ),
    Step("csr", "Board signs CSR", "n ->> p: CertificationRequestInfo; p ->> n: Signature; CSR", Access.SWD),
    Step("certify", "Get board certificate", "n ->> o: CSR; o ->> n: NuLink3 Certificate", Access.SWD),
    Step(
        "otp_cert",
        "Write board certificate to OTP",
        "n ->> p: Program NuLink3 Certificate (OTP)",
        Access.SWD,
        irreversible=True,
    ),
    Step(
        "sb_key",
        "Get secure-boot public key",
        "n ->> o: secure boot key; o ->> n: SecureBoot_PUB",
        Access.NONE,
    ),
    Step("sign_fw", "Get firmware signed", "n ->> o: firmware; o ->> n: firmware (signed)", Access.NONE),
    Step(
        "otp_sb_key",
        "Burn secure-boot key to OTP",
        "n ->> p: Burn SecureBoot_PUB_NuLink3 (OTP)",
        Access.SWD,
        irreversible=True,
    ),
    Step(
        "flash_fw",
        "Burn NuBL2 and signed firmware to flash",
        "n ->> p: Burn NuBL2 and NuLink3 firmware (signed)",
        Access.SWD,
    ),
    Step(
        "rom_key",
        "Burn ROM root key to KS OTP slots 0/1",
        "n ->> p: Burn NuBL2_PUB as the ROM's root key (KeyStore OTP slots 0/1)",
        Access.SWD,
        irreversible=True,
    ),
    Step(
        "lock",
        "Enable secure lock",
        "p ->> p: Enable secure lock (restricting debugger access)",
        Access.SWD,
        irreversible=True,
    ),
    Step("reset", "Reset into secure boot", "board secure-boots the signed firmware", Access.UART),
    Step("ecdh", "Authenticated ECDH, key confirmation", "p <-> o: ECDH -> AES_NuLink3", Access.UART),
)

STEP_IDS: tuple[str, ...] = tuple(s.id for s in STEPS)


def step_by_id(step_id: str) -> Step:
    """The step called ``step_id``; ``KeyError`` names the known ids otherwise."""
    for s in STEPS:
        if s.id == step_id:
            return s
    raise KeyError(f"unknown step {step_id!r} (known: {', '.join(STEP_IDS)})")


def step_index(step_id: str) -> int:
    """0-based position of a step in the seed order."""
    return STEP_IDS.index(step_by_id(step_id).id)
