"""Build a batch: init (the few HSM operations), per-chunk native work across processes, seal.

HSM operations per batch: init = 1 RNG read + 2 wraps (batch seed, DEK); build = 2 unwraps;
seal = 1 signature. Everything per board (seed, key pair, image, digest, key wrap, manifest line)
is done by the native batch calls inside worker processes, one chunk at a time, so memory stays
flat however large the batch. Deterministic: a chunk's bytes depend only on ``batch.json`` and the
two secrets, so a chunk redone after an interruption is identical, and a finished batch is skipped.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from nucore import keywrap, otp
from pki import merkle
from pki.batch import keygen
from pki.batch.batchdir import UIDS_BIN, BatchInfo, read_batch, write_atomic
from pki.batch.errors import OtpBatchError
from pki.batch.manifest import encode_line
from pki.batch.seal import Seal, chunk_roots, make_statement, read_seal, statement_digest, write_seal
from pki.batch.spec import BatchSpec
from pki.hsm import KeyBackend

#: progress callback: (boards done so far, total boards)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BuildResult:
    batch_dir: Path
    count: int
    chunks_built: int
    chunks_skipped: int
    merkle_root: bytes
    sealed_now: bool
    seconds: float
    keygen: str


def init_batch(spec: BatchSpec, batch_dir: Path, backend: KeyBackend) -> BatchInfo:
    """Create the batch folder and ``batch.json`` once; on a re-run, check the spec is unchanged."""
    if (batch_dir / "batch.json").exists():
        info = read_batch(batch_dir)
        if info.spec_sha256 != spec.digest():
            raise OtpBatchError(f"batch: {batch_dir} was started with a different spec; use a new folder")
        return info
    if batch_dir.exists() and any(batch_dir.iterdir()):
        raise OtpBatchError(f"batch: {batch_dir} exists, is not empty and is not a batch folder")
    kek = backend.find_secret_key(spec.hsm.kek_label)
    if kek is None:
        raise OtpBatchError(f"HSM: no KEK labelled {spec.hsm.kek_label!r} on the token")
    backend.public_key(spec.hsm.signer_label)  # fail now, not after hours of work, if the signer is missing
    rnd = backend.random_bytes(16 + 32 + 32)
    batch_id, seed, dek = rnd[:16], rnd[16:48], rnd[48:]
    info = BatchInfo(
        root=batch_dir,
        batch_id=batch_id,
        count=spec.count,
        chunk_size=spec.chunk_size,
        uid_list=spec.uids is not None,
        spec_sha256=spec.digest(),
        shared=spec.shared,
        kek_label=spec.hsm.kek_label,
        signer_label=spec.hsm.signer_label,
        wrapped_seed=backend.wrap_bytes(kek, seed),
        wrapped_dek=backend.wrap_bytes(kek, dek),
    )
    del seed, dek, rnd
    for sub in ("images", "manifest"):
        (batch_dir / sub).mkdir(parents=True, exist_ok=True)
    if spec.uids is not None:
        write_atomic(batch_dir / UIDS_BIN, b"".join(spec.uids))
    info.write()  # last: its presence means the folder is a complete, initialised batch
    return info


@dataclass(frozen=True)
class _Secrets:
    """The unwrapped batch secrets; lives only in the build's (and its workers') memory."""

    prk: bytes
    dek: bytes

    def __repr__(self) -> str:
        return "_Secrets(<redacted>)"


def build_chunk(info: BatchInfo, secrets: _Secrets, c: int, *, force_python_keygen: bool = False) -> int:
    """All per-board work for chunk ``c``; writes its images then its manifest. Returns boards done."""
    start, n = c * info.chunk_size, info.chunk_len(c)
    uids = info.uids(start, n)
    seeds = keygen.board_seeds(secrets.prk, start, uids if uids is not None else [b""] * n)
    privs, pubs = keygen.keygen_batch(seeds, force_python=force_python_keygen)
    del seeds
    xy = b"".join(pubs[65 * k + 1 : 65 * k + 65] for k in range(n))
    sh = info.shared
    images, digests = otp.pack_batch(
        root_pub=sh.root_pub,
        root_cert_sha256=sh.root_cert_sha256,
        ica_cert_sha256=sh.ica_cert_sha256,
        ica_cert=sh.ica_cert,
        secure_boot_pubs=xy,
        uids=b"".join(uids) if uids is not None else b"\xff" * (otp.UID_LEN * n),
        policy=sh.policy,
        flags=sh.flags,
    )
    wrapped = keywrap.wrap_batch(secrets.dek, keygen.pkcs8_blobs(privs), keygen.PKCS8_LEN)
    del privs
    w = keywrap.wrapped_len(keygen.PKCS8_LEN)
    lines = [
        encode_line(
            start + k,
            uids[k] if uids is not None else None,
            pubs[65 * k : 65 * k + 65],
            digests[32 * k : 32 * k + 32],
            wrapped[w * k : w * k + w],
        )
        for k in range(n)
    ]
    write_atomic(info.images_path(c), images)
    write_atomic(info.manifest_path(c), b"\n".join(lines) + b"\n")
    return n


_worker: tuple[BatchInfo, _Secrets] | None = None


def _init_worker(info: BatchInfo, secrets: _Secrets) -> None:
    global _worker
    _worker = (info, secrets)


def _run_chunk(c: int) -> int:
    assert _worker is not None
    return build_chunk(_worker[0], _worker[1], c)


def _unwrap_secrets(info: BatchInfo, backend: KeyBackend) -> _Secrets:
    kek = backend.find_secret_key(info.kek_label)
    if kek is None:
        raise OtpBatchError(f"HSM: no KEK labelled {info.kek_label!r} on the token")
    seed = backend.unwrap_bytes(kek, info.wrapped_seed)
    dek = backend.unwrap_bytes(kek, info.wrapped_dek)
    if len(seed) != 32 or len(dek) != 32:
        raise OtpBatchError("HSM: the unwrapped batch secrets have the wrong length")
    return _Secrets(prk=keygen.seed_prk(seed, info.batch_id), dek=dek)


def pending_chunks(info: BatchInfo) -> list[int]:
    return [c for c in range(info.chunks) if not info.manifest_path(c).exists()]


def _clean_partials(info: BatchInfo) -> None:
    for sub in ("images", "manifest"):
        for part in (info.root / sub).glob("*.part"):
            part.unlink()


def _run(info: BatchInfo, secrets: _Secrets, todo: list[int], jobs: int, progress: Progress | None) -> None:
    done = info.count - sum(info.chunk_len(c) for c in todo)
    if progress:
        progress(done, info.count)
    if jobs <= 1 or len(todo) <= 1:
        for c in todo:
            done += build_chunk(info, secrets, c)
            if progress:
                progress(done, info.count)
        return
    ctx = multiprocessing.get_context("fork")  # workers inherit the code; secrets go via initargs
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(info, secrets)
    ) as ex:
        queue = iter(todo)
        running: set[Future[int]] = set()
        try:
            for c in queue:  # keep at most 2*jobs chunks in flight, so a huge batch never queues all
                running.add(ex.submit(_run_chunk, c))
                if len(running) >= 2 * jobs:
                    finished, running = _drain(running, FIRST_COMPLETED)
                    done += sum(f.result() for f in finished)
                    if progress:
                        progress(done, info.count)
            while running:
                finished, running = _drain(running, FIRST_COMPLETED)
                done += sum(f.result() for f in finished)
                if progress:
                    progress(done, info.count)
        except BrokenProcessPool:
            raise OtpBatchError("a worker process died; re-run the same build to resume") from None
        except BaseException:
            ex.shutdown(wait=True, cancel_futures=True)
            raise


def _drain(running: set[Future[int]], how: str) -> tuple[set[Future[int]], set[Future[int]]]:
    finished, rest = wait(running, return_when=how)
    return set(finished), set(rest)


def seal_batch(info: BatchInfo, backend: KeyBackend) -> tuple[bytes, bool]:
    """Compute the Merkle root and sign it in the HSM, unless a valid seal for it exists."""
    root = merkle.root(list(chunk_roots(info)))
    statement = make_statement(info, root)
    existing = read_seal(info)
    if existing is not None and existing.statement == statement:
        existing.verify_signature(backend.public_key(info.signer_label))
        return root, False
    signature = backend.sign_digest(info.signer_label, statement_digest(statement))
    seal = Seal(statement=statement, signature=signature, signer_pub=backend.public_key(info.signer_label))
    seal.verify_signature()
    write_seal(seal, info)
    return root, True


def build_batch(
    spec: BatchSpec,
    batch_dir: Path,
    backend: KeyBackend,
    *,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> BuildResult:
    """Create or resume the batch in ``batch_dir`` and seal it. Safe to re-run at any point."""
    t0 = time.perf_counter()
    info = init_batch(spec, batch_dir, backend)
    _clean_partials(info)
    todo = pending_chunks(info)
    if todo:
        secrets = _unwrap_secrets(info, backend)
        _run(info, secrets, todo, jobs or os.cpu_count() or 1, progress)
        del secrets
    elif progress:
        progress(info.count, info.count)
    root, sealed_now = seal_batch(info, backend)
    return BuildResult(
        batch_dir=batch_dir,
        count=info.count,
        chunks_built=len(todo),
        chunks_skipped=info.chunks - len(todo),
        merkle_root=root,
        sealed_now=sealed_now,
        seconds=time.perf_counter() - t0,
        keygen=keygen.keygen_backend(),
    )
