"""Building a batch against a real SoftHSM2 token: verified offline, keys checked in the HSM,
identical to the pure-Python reference, deterministic, resumable, and every flipped byte caught."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from nucore import otp
from pki.batch import (
    BatchSpec,
    OtpBatchError,
    build_batch,
    check_board_key,
    image_proof,
    load_spec,
    read_batch_info,
    unwrap_board_key,
    verify_batch,
    verify_one,
)
from pki.batch.build import _unwrap_secrets
from pki.batch.reference import reference_chunk
from pki.batch.verify import verify_image_alone
from pki.errors import UnwrapError
from pki.hsm.pkcs11 import Pkcs11Backend
from tests.otp.conftest import SIGNER, SpecMaker


def _snapshot(d: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(d)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def test_build_verify_and_hsm_sample(spec: BatchSpec, backend: Pkcs11Backend, tmp_path: Path) -> None:
    out = tmp_path / "batch"
    res = build_batch(spec, out, backend, jobs=1)
    assert (res.count, res.chunks_built, res.chunks_skipped, res.sealed_now) == (50, 4, 0, True)
    assert res.keygen == "native"
    rep = verify_batch(out, signer_pub=backend.public_key(SIGNER))
    assert rep.count == 50 and rep.signer_pinned and rep.merkle_root == res.merkle_root.hex()
    info = read_batch_info(out)
    # every image: strict parse, blank UID (count mode), batch flag, key on the curve
    for i in range(50):
        img = verify_one(out, i, backend.public_key(SIGNER))
        assert img.uid == b"\xff" * 12 and img.flags == otp.OtpFlags.BATCH and img.board_cert is None
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + img.secure_boot_pub)
    assert len({verify_one(out, i).secure_boot_pub for i in range(50)}) == 50
    # a sample of wrapped keys unwrapped IN the HSM, used to sign there, checked against the public key
    for i in (0, 17, 33, 49):
        check_board_key(backend, out, i)
    assert info.count == 50


def test_wrapped_key_swapped_between_boards_is_refused_by_the_hsm(
    spec: BatchSpec, backend: Pkcs11Backend, tmp_path: Path
) -> None:
    out = tmp_path / "batch"
    build_batch(spec, out, backend, jobs=1)
    path = out / "manifest" / "000000.jsonl"
    lines = path.read_bytes().split(b"\n")
    w0 = lines[0].split(b'"wrapped_key":"')[1][:160]
    w1 = lines[1].split(b'"wrapped_key":"')[1][:160]
    lines[0] = lines[0].replace(w0, w1)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(UnwrapError, match="does not match"):
        unwrap_board_key(backend, out, 0, "swapped")
    with pytest.raises(OtpBatchError, match="Merkle root"):
        verify_batch(out)


def test_uid_list_mode(make_spec: SpecMaker, backend: Pkcs11Backend, tmp_path: Path) -> None:
    uids = [hashlib.sha256(b"board%d" % i).digest()[:12] for i in range(20)]
    (tmp_path / "uids.txt").write_text("\n".join(u.hex() for u in uids) + "\n")
    spec = load_spec(make_spec(count=None, uids="uids.txt", chunk_size=8))
    out = tmp_path / "batch"
    build_batch(spec, out, backend, jobs=2)
    verify_batch(out, signer_pub=backend.public_key(SIGNER))
    assert [verify_one(out, i).uid for i in range(20)] == uids
    check_board_key(backend, out, 13)


def test_native_equals_pure_python_reference(spec: BatchSpec, backend: Pkcs11Backend, tmp_path: Path) -> None:
    out = tmp_path / "batch"
    build_batch(spec, out, backend, jobs=1)
    info = read_batch_info(out)
    secrets = _unwrap_secrets(info, backend)
    ref = tmp_path / "ref"
    shutil.copytree(out, ref)
    ref_info = read_batch_info(ref)
    for c in range(info.chunks):
        ref_info.manifest_path(c).unlink()
        ref_info.images_path(c).unlink()
        assert reference_chunk(ref_info, secrets.prk, secrets.dek, c) == info.chunk_len(c)
    for c in range(info.chunks):
        assert info.images_path(c).read_bytes() == ref_info.images_path(c).read_bytes()
        assert info.manifest_path(c).read_bytes() == ref_info.manifest_path(c).read_bytes()


def test_rerun_over_finished_batch_changes_nothing(
    spec: BatchSpec, backend: Pkcs11Backend, tmp_path: Path
) -> None:
    out = tmp_path / "batch"
    build_batch(spec, out, backend, jobs=2)
    before = _snapshot(out)
    res = build_batch(spec, out, backend, jobs=2)
    assert (res.chunks_built, res.chunks_skipped, res.sealed_now) == (0, 4, False)
    assert _snapshot(out) == before  # same bytes and not even rewritten (mtimes equal)


@pytest.mark.parametrize("jobs", [1, 2])
def test_interrupted_build_resumes_identically(
    make_spec: SpecMaker, backend: Pkcs11Backend, tmp_path: Path, jobs: int
) -> None:
    spec = load_spec(make_spec(chunk_size=2))  # 25 chunks, so an interrupt lands mid-batch
    full = tmp_path / "full"
    build_batch(spec, full, backend, jobs=1)
    part = tmp_path / "part"
    part.mkdir()
    shutil.copy2(full / "batch.json", part / "batch.json")  # same batch, same secrets
    (part / "images").mkdir()
    (part / "manifest").mkdir()
    calls = 0

    def interrupt(done: int, total: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_batch(spec, part, backend, jobs=jobs, progress=interrupt)
    assert not (part / "seal.json").exists()
    done = sorted(p.name for p in (part / "manifest").glob("*.jsonl"))
    assert 0 < len(done) < 25
    # a crash in the middle of writing a chunk leaves only .part files behind
    (part / "images" / "000024.bin.part").write_bytes(b"half-written")
    res = build_batch(spec, part, backend, jobs=jobs)
    assert res.chunks_built == 25 - len(done)
    assert not list(part.rglob("*.part"))
    for sub in ("images", "manifest"):
        for f in sorted((full / sub).iterdir()):
            assert (part / sub / f.name).read_bytes() == f.read_bytes(), f"{sub}/{f.name} differs"
    assert res.merkle_root.hex() == verify_batch(full).merkle_root
    verify_batch(part, signer_pub=backend.public_key(SIGNER))


def test_changed_spec_and_foreign_folder_refused(
    make_spec: SpecMaker, spec: BatchSpec, backend: Pkcs11Backend, tmp_path: Path
) -> None:
    out = tmp_path / "batch"
    build_batch(spec, out, backend, jobs=1)
    with pytest.raises(OtpBatchError, match="different spec"):
        build_batch(load_spec(make_spec(count=51)), out, backend, jobs=1)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(OtpBatchError, match="not a batch folder"):
        build_batch(spec, other, backend, jobs=1)


def test_missing_hsm_keys_fail_before_any_write(
    make_spec: SpecMaker, backend: Pkcs11Backend, tmp_path: Path
) -> None:
    out = tmp_path / "batch"
    bad = load_spec(
        make_spec(hsm={"uri": "pkcs11:token=otp-test", "kek_label": "nope", "signer_label": SIGNER})
    )
    with pytest.raises(OtpBatchError, match="no KEK labelled 'nope'"):
        build_batch(bad, out, backend, jobs=1)
    assert not out.exists() or not any(out.iterdir())


def _flip(path: Path, offset: int) -> bytes:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    return bytes(data)


@pytest.fixture
def built(spec: BatchSpec, backend: Pkcs11Backend, tmp_path: Path) -> Path:
    out = tmp_path / "batch"
    build_batch(spec, out, backend, jobs=1)
    return out


def test_every_flipped_image_byte_is_detected(built: Path) -> None:
    """One flip in each of the 2048 bytes of a board's image (the last, partial chunk)."""
    path = built / "images" / "000003.bin"
    original = path.read_bytes()
    base = 1 * otp.IMAGE_SIZE  # board 49 = chunk 3, slot 1
    info = read_batch_info(built)
    proof = image_proof(built, 49)  # the image checked alone: its line, audit path and the seal
    image = original[base : base + otp.IMAGE_SIZE]
    verify_image_alone(image, proof, info)
    for off in range(otp.IMAGE_SIZE):
        bad = bytearray(image)
        bad[off] ^= 0x01
        with pytest.raises(OtpBatchError, match="image 49"):
            verify_image_alone(bytes(bad), proof, info)
    for off in range(0, otp.IMAGE_SIZE, 127):  # the whole-batch check too (slower: a sample)
        _flip(path, base + off)
        with pytest.raises(OtpBatchError):
            verify_batch(built)
        path.write_bytes(original)
    verify_batch(built)


def test_every_flipped_manifest_byte_is_detected(built: Path) -> None:
    path = built / "manifest" / "000001.jsonl"
    original = path.read_bytes()
    first_line = original.index(b"\n") + 1  # the whole first line and its newline
    for off in range(first_line):
        _flip(path, off)
        with pytest.raises(OtpBatchError):
            verify_batch(built)
        path.write_bytes(original)
    verify_batch(built)


@pytest.mark.parametrize("name", ["batch.json", "seal.json"])
def test_flipped_batch_or_seal_byte_is_detected(built: Path, name: str) -> None:
    path = built / name
    original = path.read_bytes()
    for off in range(0, len(original), max(1, len(original) // 97)):
        if original[off : off + 1] in (b" ", b"\n"):
            continue  # JSON whitespace: no information in it
        _flip(path, off)
        with pytest.raises(OtpBatchError):
            verify_batch(built)
        path.write_bytes(original)


def test_wrong_pinned_signer_and_unsealed_batch(built: Path) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(OtpBatchError, match="signature does not verify"):
        verify_batch(built, signer_pub=other)
    os.remove(built / "seal.json")
    with pytest.raises(OtpBatchError, match="not sealed"):
        verify_batch(built)


def test_missing_chunk_is_reported(built: Path) -> None:
    os.remove(built / "manifest" / "000002.jsonl")
    with pytest.raises(OtpBatchError, match="chunk 2 is missing"):
        verify_batch(built)
