"""``claim_next_image``: one board <- one image, recorded, never reused, also under concurrency."""

from __future__ import annotations

import hashlib
import multiprocessing
from pathlib import Path

import pytest

from nusec.otp_batch import claim_next_image
from pki.batch import OtpBatchError, build_batch, load_spec, verify_one
from pki.hsm.pkcs11 import Pkcs11Backend
from tests.otp.conftest import SpecMaker


def _uid(i: int) -> bytes:
    return hashlib.sha256(b"uid%d" % i).digest()[:12]


def test_count_mode_claims(make_spec: SpecMaker, backend: Pkcs11Backend, tmp_path: Path) -> None:
    out = tmp_path / "batch"
    build_batch(load_spec(make_spec(count=5, chunk_size=2)), out, backend, jobs=1)
    got = [claim_next_image(out, _uid(i)) for i in range(5)]
    assert [c.index for c in got] == [0, 1, 2, 3, 4]
    assert not any(c.already_claimed for c in got)
    assert got[2].to_bytes() == verify_one(out, 2).to_bytes()
    again = claim_next_image(out, _uid(2))  # the same board asking again gets the same image
    assert again.index == 2 and again.already_claimed
    with pytest.raises(OtpBatchError, match="all 5 images of the batch are taken"):
        claim_next_image(out, _uid(99))


def test_uid_list_mode_claims(make_spec: SpecMaker, backend: Pkcs11Backend, tmp_path: Path) -> None:
    (tmp_path / "uids.txt").write_text("\n".join(_uid(i).hex() for i in range(6)))
    out = tmp_path / "batch"
    build_batch(load_spec(make_spec(count=None, uids="uids.txt", chunk_size=4)), out, backend, jobs=1)
    c = claim_next_image(out, _uid(4))
    assert c.index == 4 and c.image.uid == _uid(4) and c.sb_pub[1:] == c.image.secure_boot_pub
    with pytest.raises(OtpBatchError, match="not in this batch's UID list"):
        claim_next_image(out, _uid(77))
    with pytest.raises(OtpBatchError, match="12 bytes"):
        claim_next_image(out, b"\x01" * 11)


def test_damaged_image_is_never_handed_out(
    make_spec: SpecMaker, backend: Pkcs11Backend, tmp_path: Path
) -> None:
    out = tmp_path / "batch"
    build_batch(load_spec(make_spec(count=3, chunk_size=4)), out, backend, jobs=1)
    img = out / "images" / "000000.bin"
    data = bytearray(img.read_bytes())
    data[0x90] ^= 0x80  # image 0's secure-boot key
    img.write_bytes(bytes(data))
    with pytest.raises(OtpBatchError, match="image 0"):
        claim_next_image(out, _uid(0))
    with pytest.raises(OtpBatchError, match="image 0"):  # the failed claim recorded nothing
        claim_next_image(out, _uid(1))
    data[0x90] ^= 0x80
    img.write_bytes(bytes(data))
    assert claim_next_image(out, _uid(1)).index == 0


def _claim_many(args: tuple[str, list[int]]) -> list[int]:
    out, ids = args
    return [claim_next_image(Path(out), _uid(i)).index for i in ids]


def test_concurrent_claims_never_share_an_image(
    make_spec: SpecMaker, backend: Pkcs11Backend, tmp_path: Path
) -> None:
    out = tmp_path / "batch"
    build_batch(load_spec(make_spec(count=40, chunk_size=8)), out, backend, jobs=1)
    work = [(str(out), list(range(k, 40, 4))) for k in range(4)]
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.map(_claim_many, work)
    indices = sorted(i for r in results for i in r)
    assert indices == list(range(40))
