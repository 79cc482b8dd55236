"""P-256 throughput on one core: native batch API vs cryptography per item vs `openssl speed`.

Prints ops/s for keygen, sign, verify, ECDH with a variable peer and ECDH against a fixed peer
(batch, with the peer's table built inside the timed region), with the ratios the native-core
issue sets as targets. Like `openssl speed` (which divides by CPU user time unless -elapsed),
rates are per second of this process's CPU time, so other jobs on a shared machine do not
deflate them; each figure is still the best of a few repeats.
With --json the last line is one JSON object:
{"keygen": {"native": OPS, "cryptography": OPS, "openssl": null}, "sign": {...}, "verify": {...},
 "ecdh": {...}, "ecdh_fixed": {...}}
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from nucore import p256
from nucore import p256_batch as pb

OPS = ("keygen", "sign", "verify", "ecdh", "ecdh_fixed")
PREHASHED = ec.ECDSA(Prehashed(hashes.SHA256()))


CLOCK: Callable[[], float] = time.process_time  # --wall switches to time.perf_counter


def best_rate(fn: Callable[[], int], repeats: int) -> float:
    """fn() does some operations and returns how many; best ops/s over ``repeats`` runs."""
    best = 0.0
    for _ in range(repeats):
        t0 = CLOCK()
        count = fn()
        dt = CLOCK() - t0
        best = max(best, count / dt)
    return best


def native_rates(n: int, repeats: int) -> dict[str, float]:
    seeds = os.urandom(32 * n)
    digests = os.urandom(32 * n)
    privs, pubs = pb.keygen_batch(seeds)
    sigs = pb.sign_batch(privs, digests)
    peers = pb.keygen_batch(os.urandom(32 * n))[1]
    fixed = p256.PublicKey.from_sec1(peers[:65])

    def fixed_ecdh() -> int:
        pb.PeerTable(fixed).ecdh_batch(privs)
        return n

    assert all(pb.verify_batch(pubs, digests, sigs))
    return {
        "keygen": best_rate(lambda: (pb.keygen_batch(seeds), n)[1], repeats),
        "sign": best_rate(lambda: (pb.sign_batch(privs, digests), n)[1], repeats),
        "verify": best_rate(lambda: (pb.verify_batch(pubs, digests, sigs), n)[1], repeats),
        "ecdh": best_rate(lambda: (pb.ecdh_batch(privs, peers), n)[1], repeats),
        "ecdh_fixed": best_rate(fixed_ecdh, repeats),
    }


def cryptography_rates(n: int, repeats: int) -> dict[str, float]:
    curve = ec.SECP256R1()
    keys = [ec.generate_private_key(curve) for _ in range(n)]
    peers = [ec.generate_private_key(curve).public_key() for _ in range(n)]
    digests = [os.urandom(32) for _ in range(n)]
    sigs = [k.sign(d, PREHASHED) for k, d in zip(keys, digests, strict=True)]
    pubs = [k.public_key() for k in keys]
    ecdh = ec.ECDH()

    def keygen() -> int:
        for _ in range(n):
            ec.generate_private_key(curve)
        return n

    def sign() -> int:
        for k, d in zip(keys, digests, strict=True):
            k.sign(d, PREHASHED)
        return n

    def verify() -> int:
        for p, s, d in zip(pubs, sigs, digests, strict=True):
            p.verify(s, d, PREHASHED)
        return n

    def exchange() -> int:
        for k, p in zip(keys, peers, strict=True):
            k.exchange(ecdh, p)
        return n

    def exchange_fixed() -> int:
        peer = peers[0]
        for k in keys:
            k.exchange(ecdh, peer)
        return n

    return {
        "keygen": best_rate(keygen, repeats),
        "sign": best_rate(sign, repeats),
        "verify": best_rate(verify, repeats),
        "ecdh": best_rate(exchange, repeats),
        "ecdh_fixed": best_rate(exchange_fixed, repeats),
    }


def openssl_rates(seconds: int, wall: bool) -> dict[str, float | None]:
    """`openssl speed` (single process = one core) for ecdsap256 and ecdhp256."""
    none: dict[str, float | None] = dict.fromkeys(OPS)
    exe = shutil.which("openssl")
    if exe is None:
        return none
    out = subprocess.run(
        [exe, "speed", *(["-elapsed"] if wall else []), "-seconds", str(seconds), "ecdsap256", "ecdhp256"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ecdsa = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", out)
    ecdh = re.search(r"256 bits ecdh \(nistp256\)\s+\S+s\s+([\d.]+)", out)
    if not ecdsa or not ecdh:
        raise SystemExit(f"could not parse `openssl speed` output:\n{out}")
    return {
        "keygen": None,
        "sign": float(ecdsa.group(1)),
        "verify": float(ecdsa.group(2)),
        "ecdh": float(ecdh.group(1)),
        "ecdh_fixed": float(ecdh.group(1)),
    }


def self_check() -> None:
    """The figures are only worth printing if native and cryptography agree."""
    key = p256.PrivateKey.generate()
    ref = ec.derive_private_key(int.from_bytes(key.to_bytes(), "big"), ec.SECP256R1())
    pub = ref.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert key.public_key().to_sec1() == pub
    sig = key.sign(b"bench")
    decode_dss_signature(sig)
    ref.public_key().verify(sig, b"bench", ec.ECDSA(hashes.SHA256()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="items per batch (default 2000)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per figure, best kept (default 3)")
    ap.add_argument("--openssl-seconds", type=int, default=2)
    ap.add_argument(
        "--json", action="store_true", help="print the figures as one JSON object on the last line"
    )
    ap.add_argument("--wall", action="store_true", help="divide by wall-clock time instead of CPU time")
    args = ap.parse_args()
    global CLOCK
    if args.wall:
        CLOCK = time.perf_counter

    self_check()
    load = os.getloadavg()[0]
    native = native_rates(args.n, args.repeats)
    crypto = cryptography_rates(args.n, args.repeats)
    ossl = openssl_rates(args.openssl_seconds, args.wall)

    print(
        f"P-256 ops per {'wall' if args.wall else 'CPU'}-second, one core, n={args.n}, "
        f"best of {args.repeats} "
        f"(load average at start {load:.2f})"
    )
    print(f"{'op':<11}{'native':>11}{'cryptography':>14}{'openssl':>11}{'nat/ossl':>10}{'nat/crypto':>12}")
    for op in OPS:
        o = ossl[op]
        ro = f"{native[op] / o:.2f}x" if o else "-"
        print(
            f"{op:<11}{native[op]:>11.0f}{crypto[op]:>14.0f}{(f'{o:.0f}' if o else '-'):>11}{ro:>10}"
            f"{native[op] / crypto[op]:>11.2f}x"
        )
    checks = {
        "every native op >= 0.5x openssl": all(native[op] >= 0.5 * (ossl[op] or 0) for op in OPS),
        "keygen, sign >= 0.5x cryptography": all(native[op] >= 0.5 * crypto[op] for op in ("keygen", "sign")),
        "fixed-peer ECDH >= 1.5x cryptography ECDH": native["ecdh_fixed"] >= 1.5 * crypto["ecdh"],
    }
    for name, ok in checks.items():
        print(f"target {name}: {'met' if ok else 'NOT met'}")
    if args.json:
        print(
            json.dumps(
                {
                    op: {
                        "native": round(native[op], 1),
                        "cryptography": round(crypto[op], 1),
                        "openssl": ossl[op],
                    }
                    for op in OPS
                }
            )
        )


if __name__ == "__main__":
    main()
