"""Checks of a provisioned simulated board made with outside oracles (openssl, imgtool, the
service's own status over mTLS) on what the board's state file holds."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nuboard import layout
from nucore import otp
from nusec.provision import link
from nusec.provision.client import TlsConfig
from nusec.provision.otp_writer import ProgramLog
from nusec.provision.report import Event, ProvisionResult
from tests.provision.conftest import BoardFile
from tests.tools import tool

IMGTOOL = tool("imgtool")
ARLOCK_OFF = 0x34


def service_board(url: str, tls: TlsConfig, uid_hex: str) -> dict[str, Any]:
    """The service's record of a board (``GET /v1/boards/{uid}``: state and step history)."""
    with httpx.Client(base_url=url, verify=tls.ssl_context()) as c:
        r = c.get(f"/v1/boards/{uid_hex}")
        r.raise_for_status()
        out: dict[str, Any] = r.json()
        return out


@dataclass(frozen=True)
class ServedNubl2:
    image: bytes
    xy: bytes


def service_nubl2(url: str, tls: TlsConfig) -> ServedNubl2:
    """The service's signed NuBL2 and ROM root key (``GET /v1/nubl2``), read without the desktop."""
    with httpx.Client(base_url=url, verify=tls.ssl_context()) as c:
        r = c.get("/v1/nubl2")
        r.raise_for_status()
        body = r.json()
    key = serialization.load_pem_public_key(body["public_key_pem"].encode())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return ServedNubl2(base64.b64decode(body["image_b64"]), _xy(key))


def _xy(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)[1:]


def service_state(url: str, tls: TlsConfig, uid_hex: str) -> str:
    return str(service_board(url, tls, uid_hex)["state"])


def sim_program_counts(sim_dir: Path, board: str) -> tuple[list[int], list[int]]:
    """PROGRAM commands that reached each OTP data word and each OTP lock word, as the simulated
    board's state file keeps them across runs (``NvState.program_counts``)."""
    counts = json.loads((sim_dir / f"{board}.json").read_text())["program_counts"]
    return list(counts["otp_words"]), list(counts["otp_locks"])


def assert_openssl_verifies(root_pem: Path, leaf_der: bytes, ica_der: bytes, tmp: Path) -> None:
    """``openssl verify`` accepts the leaf certificate under ``root_pem`` with the ICA as untrusted."""
    leaf = x509.load_der_x509_certificate(leaf_der)
    ica = x509.load_der_x509_certificate(ica_der)
    (tmp / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp / "ica.pem").write_bytes(ica.public_bytes(serialization.Encoding.PEM))
    out = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(root_pem),
            "-untrusted",
            str(tmp / "ica.pem"),
            str(tmp / "leaf.pem"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def assert_imgtool_verifies(sb_point: bytes, image: bytes, tmp: Path) -> None:
    """``imgtool verify`` accepts the MCUboot ``image`` with the 65-byte secure-boot public point."""
    pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sb_point)
    (tmp / "sb.pem").write_bytes(
        pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp / "flash.bin").write_bytes(image)
    out = subprocess.run(
        [str(IMGTOOL), "verify", "-k", str(tmp / "sb.pem"), str(tmp / "flash.bin")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def assert_provisioned(
    sim_dir: Path, board: str, result: ProvisionResult, root_pem: Path, url: str, tls: TlsConfig, tmp: Path
) -> None:
    """The issue's 'done when', checked on the board's own state."""
    assert result.ok, result.error
    assert result.locked and result.key_confirmed
    state = BoardFile.load(sim_dir, board)
    image = otp.parse(state.otp, check_digest=True)
    assert image.uid.hex().upper() == result.uid
    # 1. openssl verify accepts the board certificate read back from OTP (ICA also from OTP)
    assert image.board_cert is not None
    assert_openssl_verifies(root_pem, image.board_cert, image.ica_cert, tmp)
    # 2. the firmware in flash verifies against the secure-boot key in OTP (imgtool)
    signed = Path(str(result.firmware_signed)).read_bytes()
    assert state.flash(len(signed)) == signed
    assert_imgtool_verifies(b"\x04" + image.secure_boot_pub, state.flash(len(signed)), tmp)
    # 2b. the ROM root key in KeyStore OTP 0/1 is the service's NuBL2 key, never a board key, and
    # the NuBL2 in flash is the service's image and verifies with it (imgtool)
    nubl2 = service_nubl2(url, tls)
    rom_key = state.rom_root_key()
    assert rom_key == nubl2.xy, "KS OTP slots 0/1 do not hold the service's NuBL2 key"
    leaf = x509.load_der_x509_certificate(image.board_cert).public_key()
    assert isinstance(leaf, ec.EllipticCurvePublicKey)
    assert rom_key not in (_xy(leaf), image.secure_boot_pub, image.root_pub)
    assert state.flash(len(nubl2.image), base=layout.NUBL2_BASE) == nubl2.image
    assert_imgtool_verifies(b"\x04" + nubl2.xy, nubl2.image, tmp)
    # 3. key confirmation: the service holds the agreed key
    assert service_state(url, tls, image.uid.hex().upper()) == "key_agreed"
    # 4. the board is locked
    assert (state.config[ARLOCK_OFF] & 0xFF) != 0x5A
    # every written OTP entry is locked, and no OTP address was programmed twice
    written = [n for n in range(256) if state.otp[8 * n : 8 * n + 8] != b"\xff" * 8]
    assert set(written) <= set(state.locked_entries())
    # (the tool's own log may have been lost with its journal; the board's counters never are)
    assert ProgramLog(Path(str(result.journal)) / "otp_program_log.jsonl").max_count() <= 1
    words, locks = sim_program_counts(sim_dir, board)
    assert max(words) == 1 and max(locks) == 1


def count_step_transfers(mp: pytest.MonkeyPatch) -> tuple[Callable[[Event], None], dict[str, int]]:
    """An event sink that counts the simulator's probe transfers per provisioning step, and the dict
    it fills (used to place link drops mid-step). Patches ``SwdLink.open`` through ``mp`` to see
    the board behind each link."""
    links: list[link.SwdLink] = []
    real_open = link.SwdLink.open
    marks: dict[str, int] = {}
    counts: dict[str, int] = {}

    def on_event(ev: Event) -> None:
        if ev.kind in ("step_start", "step_done") and links and ev.step:
            board = links[-1].session.probe.board  # type: ignore[union-attr]
            if ev.kind == "step_start":
                marks[ev.step] = board.faults.transfers
            else:
                counts[ev.step] = board.faults.transfers - marks[ev.step]

    def tracking_open(self: link.SwdLink) -> link.SwdLink:
        links.append(real_open(self))
        return self

    mp.setattr(link.SwdLink, "open", tracking_open)
    return on_event, counts


def service_certificates(pki_dir: Path, uid_hex: str) -> int:
    """Certificates the service's CA issued for this board, counted in the service's own store
    (its SQLite file, opened read-only): one per board is the rule."""
    import sqlite3

    db = sqlite3.connect(f"file:{pki_dir / 'service.db'}?mode=ro", uri=True)
    try:
        (n,) = db.execute(
            "SELECT count(*) FROM pki_certificate c JOIN pki_board b ON c.board_id = b.id "
            "WHERE upper(b.uid) = ?",
            (uid_hex.upper(),),
        ).fetchone()
    finally:
        db.close()
    return int(n)


def failures_reported(url: str, tls: TlsConfig, uid_hex: str) -> int:
    """How many 'failed' steps the service recorded for the board."""
    return sum(1 for s in service_board(url, tls, uid_hex)["steps"] if s["step"] == "failed")
