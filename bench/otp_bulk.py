"""Bulk OTP images per second: the native batch path vs a straightforward pure-Python + cryptography
implementation of the same work, measured in the same run, plus peak RSS at 10k and 100k boards.

Work per board (both paths): HKDF seed -> P-256 key pair -> OTP image (struct layout + SHA-256
digest) -> AES-256-KWP of the PKCS#8 private key under the batch DEK -> manifest line, written to
chunk files. Both paths produce byte-identical chunks (checked here). The HSM part (3 wraps /
unwraps and one signature per batch) is timed separately in the end-to-end figure.

Usage: python bench/otp_bulk.py [--count 10000] [--big 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from pki.batch import build_batch, ensure_batch_keys, load_spec, read_batch_info  # noqa: E402
from pki.batch.build import _run, _unwrap_secrets, build_chunk, init_batch  # noqa: E402
from pki.batch.keygen import keygen_backend  # noqa: E402
from pki.batch.reference import reference_chunk  # noqa: E402
from pki.hsm.softhsm import softhsm_token  # noqa: E402
from tests.otp.conftest import ca_certificate  # noqa: E402

KEK, SIGNER = "bench-kek", "bench-signer"


def _ca(d: Path) -> None:
    root_key, ica_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = ca_certificate("Bench Root", root_key, "Bench Root", root_key)
    ica = ca_certificate("Bench ICA", ica_key, "Bench Root", root_key)
    (d / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (d / "ica.pem").write_bytes(ica.public_bytes(serialization.Encoding.PEM))


def _spec(d: Path, token_label: str, count: int) -> Path:
    _ca(d)
    path = d / "spec.json"
    path.write_text(
        json.dumps(
            {
                "count": count,
                "root_cert": "root.pem",
                "ica_cert": "ica.pem",
                "hsm": {"uri": f"pkcs11:token={token_label}", "kek_label": KEK, "signer_label": SIGNER},
                "chunk_size": 1024,
            }
        )
    )
    return path


def _fresh_copy(src: Path, dst: Path) -> Path:
    """A second folder of the same batch (same batch.json, so the same secrets), no chunks yet."""
    (dst / "images").mkdir(parents=True)
    (dst / "manifest").mkdir()
    shutil.copy2(src / "batch.json", dst / "batch.json")
    return dst


def _tree_bytes(d: Path) -> list[bytes]:
    return [p.read_bytes() for sub in ("images", "manifest") for p in sorted((d / sub).iterdir())]


def rss_child(count: int) -> None:
    """Run a complete build of ``count`` boards (1 job) and print this process's peak RSS in MB."""
    with tempfile.TemporaryDirectory(prefix="otp-bench-rss-") as tmp:
        t = Path(tmp)
        with softhsm_token(t / "hsm", label="bench-rss") as token, token.open_backend() as backend:
            ensure_batch_keys(backend, KEK, SIGNER)
            spec = load_spec(_spec(t, token.label, count))
            build_batch(spec, t / "batch", backend, jobs=1)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _measure_rss(count: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(count)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--big", type=int, default=100_000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child is not None:
        rss_child(args.rss_child)
        return
    cores = os.cpu_count() or 1
    n = args.count
    with tempfile.TemporaryDirectory(prefix="otp-bench-") as tmp:
        t = Path(tmp)
        with softhsm_token(t / "hsm", label="bench") as token, token.open_backend() as backend:
            ensure_batch_keys(backend, KEK, SIGNER)
            spec = load_spec(_spec(t, token.label, n))
            info = init_batch(spec, t / "native1", backend)
            secrets = _unwrap_secrets(info, backend)

            # Native and reference alternate chunk by chunk, so both see the same machine load
            # (the build host is shared); each side's time is the sum over its chunks.
            info_py = read_batch_info(_fresh_copy(t / "native1", t / "python"))
            native_s = python_s = 0.0
            for c in range(info.chunks):
                t0 = time.perf_counter()
                build_chunk(info, secrets, c)
                t1 = time.perf_counter()
                reference_chunk(info_py, secrets.prk, secrets.dek, c)
                t2 = time.perf_counter()
                native_s += t1 - t0
                python_s += t2 - t1
            native_1, python_1 = n / native_s, n / python_s

            info_rnd = read_batch_info(_fresh_copy(t / "native1", t / "python-random"))
            t0 = time.perf_counter()
            for c in range(info_rnd.chunks):
                reference_chunk(info_rnd, secrets.prk, secrets.dek, c, random_keys=True)
            python_random = n / (time.perf_counter() - t0)

            info_all = read_batch_info(_fresh_copy(t / "native1", t / "nativeN"))
            t0 = time.perf_counter()
            _run(info_all, secrets, list(range(info_all.chunks)), cores, None)
            native_all = n / (time.perf_counter() - t0)

            identical = _tree_bytes(t / "native1") == _tree_bytes(t / "python") == _tree_bytes(t / "nativeN")

            t0 = time.perf_counter()
            res = build_batch(spec, t / "e2e", backend, jobs=cores)
            e2e = time.perf_counter() - t0
            del secrets
    rss_small = _measure_rss(n)
    rss_big = _measure_rss(args.big)
    rows = [
        (f"native, 1 job ({keygen_backend()} keygen)", f"{native_1:,.0f} images/s"),
        (f"native, {cores} jobs", f"{native_all:,.0f} images/s"),
        ("pure Python + cryptography, 1 job", f"{python_1:,.0f} images/s"),
        ("ratio native/python (1 job)", f"{native_1 / python_1:.2f}x  (target >= 2x)"),
        (
            "(context) python with ec.generate_private_key, not reproducible",
            f"{python_random:,.0f} images/s (native {native_1 / python_random:.2f}x)",
        ),
        ("outputs byte-identical", str(identical)),
        (
            f"end-to-end `build` {n:,} boards, {cores} jobs (HSM init+unwrap+seal)",
            f"{e2e:.2f} s ({res.count / e2e:,.0f}/s)",
        ),
        (f"peak RSS, {n:,} boards (1 job, fresh process)", f"{rss_small:.1f} MB"),
        (
            f"peak RSS, {args.big:,} boards (1 job, fresh process)",
            f"{rss_big:.1f} MB ({rss_big / rss_small:.2f}x)",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"bulk OTP images, {n:,} boards, {cores} cores")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    if not identical:
        print("ERROR: native and reference outputs differ", file=sys.stderr)
        sys.exit(1)
    if args.json:
        print(
            json.dumps(
                {
                    "native_1job": round(native_1, 1),
                    "native_all": round(native_all, 1),
                    "python_1job": round(python_1, 1),
                    "rss_mb_10k": round(rss_small, 1),
                    "rss_mb_100k": round(rss_big, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
