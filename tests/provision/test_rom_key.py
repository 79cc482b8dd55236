"""The ROM root key (KeyStore OTP slots 0/1) is the OEM's NuBL2 key and nothing else: a planted
key, a changed NuBL2 and a service without NuBL2 each stop the run before anything irreversible.

Oracles: the board's state file (KS OTP slots, OTP, flash) and the service's own store; the
"board provisioned" case is ``assert_provisioned`` (every provisioning test checks slots 0/1).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nuboard import layout
from nusec.provision import client as client_mod
from nusec.provision import flow, link, rom_key
from nusec.provision.client import TlsConfig
from nusec.provision.report import ProvisionResult
from nusim.board import board_uid
from pki.service.server import ServiceHandle, run_in_background
from tests.provision.conftest import FIRMWARE, BoardFile
from tests.provision.helpers import service_certificates
from tests.service.conftest import Pki


def _run(url: str, tls: TlsConfig, journal: Path, probe: str) -> ProvisionResult:
    return flow.provision_board(probe, url, FIRMWARE, tls, journal)


def _untouched(sim_dir: Path, board: str) -> None:
    """Nothing irreversible reached the board: OTP blank, no flash written."""
    st = BoardFile.load(sim_dir, board)
    assert st.otp == b"\xff" * len(st.otp)
    assert st.flash_pages == {}


def test_planted_rom_key_stops_before_anything_is_written(
    service: ServiceHandle, tls: TlsConfig, sim_dir: Path, tmp_path: Path, pki_files: Pki
) -> None:
    """A board whose slots 0/1 already hold someone's key (it would decide what the part boots
    forever) is refused as tampered, exit 5, before OTP, flash or a certificate."""
    planted = ec.generate_private_key(ec.SECP256R1()).public_key()
    xy = planted.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)[1:]
    with link.SwdLink("sim:pl1") as lk:
        rom_key.burn_rom_root_key(lk.memory, xy)
    assert BoardFile.load(sim_dir, "pl1").rom_root_key() == xy
    res = _run(service.url, tls, tmp_path / "j", "sim:pl1")
    assert res.exit_code == 5 and "board tampered" in str(res.error), res.error
    assert "KeyStore OTP slot(s) 0, 1" in str(res.error) and res.steps[-1].id == "otp_ca"
    _untouched(sim_dir, "pl1")
    assert service_certificates(pki_files.dir, board_uid("pl1").hex().upper()) == 0


def test_changed_nubl2_from_the_service_is_refused_before_the_rom_key(
    service: ServiceHandle,
    tls: TlsConfig,
    sim_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One byte of the served NuBL2 changed (a lying service, a proxy): the desktop's own check
    refuses it at the nubl2 step, before any OTP word, flash page or KeyStore slot is written."""
    real = client_mod.ServiceClient.nubl2

    def one_byte_changed(self: client_mod.ServiceClient) -> client_mod.Nubl2Answer:
        answer = real(self)
        image = bytearray(answer.image)
        image[layout.NUBL2_HEADER_SIZE + 0x40] ^= 0x01
        return dataclasses.replace(answer, image=bytes(image))

    monkeypatch.setattr(client_mod.ServiceClient, "nubl2", one_byte_changed)
    res = _run(service.url, tls, tmp_path / "j", "sim:nb1")
    assert res.exit_code == 3 and res.steps[-1].id == "nubl2", (res.exit_code, res.error)
    assert "NuBL2" in str(res.error)
    if (sim_dir / "nb1.json").exists():
        _untouched(sim_dir, "nb1")
        assert BoardFile.load(sim_dir, "nb1").rom_root_key() is None


def test_service_without_nubl2_answers_503_and_the_desktop_stops(
    pki_files: Pki, tls: TlsConfig, sim_dir: Path, tmp_path: Path
) -> None:
    """Started without ``--nubl2-image`` the service has nothing to serve: ``503
    nubl2-not-configured``, and provisioning stops at the nubl2 step with the board untouched."""
    config = pki_files.config(nubl2_image=None, db_url=f"sqlite:///{tmp_path / 'svc.db'}")
    handle = run_in_background(config, env=pki_files.token.environ(), migrate=True)
    try:
        with httpx.Client(base_url=handle.url, verify=tls.ssl_context()) as c:
            r = c.get("/v1/nubl2")
        assert r.status_code == 503, r.text
        assert r.json()["type"].endswith("/nubl2-not-configured")
        res = _run(handle.url, tls, tmp_path / "j", "sim:nb2")
    finally:
        handle.stop()
    assert not res.ok and res.steps[-1].id == "nubl2", res.error
    assert "nubl2-not-configured" in str(res.error) or "--nubl2-image" in str(res.error), res.error
    if (sim_dir / "nb2.json").exists():
        _untouched(sim_dir, "nb2")
