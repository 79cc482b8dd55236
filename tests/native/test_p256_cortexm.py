"""The P-256 C builds for the board: arm-none-eabi-gcc, Cortex-M33, 32-bit limbs, no warnings."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parents[2] / "csrc"


def _compiler(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        msg = f"{name} not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.mark.parametrize("variant", [[], ["-DNC_P256_NO_GTABLE"]], ids=["comb-table", "no-table"])
@pytest.mark.parametrize("source", sorted(p.name for p in CSRC.glob("nc_p256*.c")))
def test_p256_compiles_for_cortex_m33(tmp_path: Path, source: str, variant: list[str]) -> None:
    cc = _compiler("arm-none-eabi-gcc")
    run = subprocess.run(
        [
            cc,
            "-mcpu=cortex-m33",
            "-mthumb",
            "-O2",
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            *variant,
            f"-I{CSRC}",
            "-c",
            str(CSRC / source),
            "-o",
            str(tmp_path / "out.o"),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0 and not run.stderr, run.stderr


def test_p256_32bit_limbs_on_host_agree(tmp_path: Path) -> None:
    """32-bit limbs (what the M33 runs), with and without the comb table, and the portable 64-bit
    carry chains (no x86 intrinsics) all agree with the host build."""
    cc = _compiler("gcc")
    main = tmp_path / "main.c"
    main.write_text(
        """
#include <stdio.h>
#include "nc_p256.h"
int main(void) {
    uint8_t seed[32], priv[32], pub[65], sig[64], sec[32], d[32] = {1, 2, 3};
    for (int i = 0; i < 32; i++) seed[i] = (uint8_t)i;
    if (nc_p256_keygen(seed, priv, pub) || nc_p256_sign(priv, d, 0, 0, sig) || nc_p256_verify(pub, d, sig)
        || nc_p256_ecdh(priv, pub, sec)) return 1;
    for (int i = 0; i < 65; i++) printf("%02x", pub[i]);
    for (int i = 0; i < 64; i++) printf("%02x", sig[i]);
    for (int i = 0; i < 32; i++) printf("%02x", sec[i]);
    /* the batch paths too (batched affine comb, or without the table the Jacobian fallback) */
    static uint8_t seeds[32 * 20], privs[32 * 20], pubs[65 * 20], ds[32 * 20], sigs[64 * 20];
    for (int i = 0; i < 32 * 20; i++) seeds[i] = (uint8_t)(7 * i + 1), ds[i] = (uint8_t)(3 * i);
    if (nc_p256_keygen_batch(seeds, 20, privs, pubs) || nc_p256_sign_batch(privs, 32, ds, 0, 0, 20, sigs, 0))
        return 1;
    for (int i = 0; i < 65 * 20; i++) printf("%02x", pubs[i]);
    for (int i = 0; i < 64 * 20; i++) printf("%02x", sigs[i]);
    printf("\\n");
    return 0;
}
"""
    )
    sources = [str(main), *map(str, sorted(CSRC.glob("nc_p256*.c"))), str(CSRC / "nc_hash.c")]
    outputs = []
    variants: tuple[list[str], ...] = (
        [],
        ["-DNC_P256_NO_INTRIN"],
        ["-DNC_P256_NO_ADX"],
        ["-DNC_P256_LIMB32"],
        ["-DNC_P256_LIMB32", "-DNC_P256_NO_GTABLE"],
    )
    for i, flags in enumerate(variants):
        exe = tmp_path / f"p256_{i}"
        subprocess.run(
            [
                cc,
                "-std=c99",
                "-O2",
                "-Wall",
                "-Wextra",
                "-Werror",
                *flags,
                f"-I{CSRC}",
                *sources,
                "-o",
                str(exe),
            ],
            check=True,
        )
        outputs.append(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout)
    assert len(set(outputs)) == 1 and len(outputs[0]) > 300

    from nucore import p256

    key = p256.PrivateKey.from_seed(bytes(range(32)))
    assert outputs[0].startswith(key.public_key().to_sec1().hex())
