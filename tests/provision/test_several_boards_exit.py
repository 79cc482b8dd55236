"""With several boards, ``nusec provision`` exits with the code that most needs a human
(``nusec.exit_codes.PROVISION_PRECEDENCE``): one board tampered (5, set it aside) and one the
service refuses (6, a retry) must exit 5, not the higher 6 that a re-run would clear."""

from __future__ import annotations

import json
from pathlib import Path

from pki.service.server import ServiceHandle
from tests.provision.test_cli import _args, _nusec
from tests.provision.test_recovery import plant_identity_key, uid_of
from tests.service.client import ServiceClient
from tests.service.conftest import Pki


def test_a_board_needing_a_human_is_not_masked_by_a_retry(
    service: ServiceHandle, pki_files: Pki, sim_dir: Path, tmp_path: Path
) -> None:
    plant_identity_key("xh1")  # tampered: exit 5, the board needs a human
    with ServiceClient(service.url, pki_files.chain_pem, pki_files.admin_cert, pki_files.admin_key) as admin:
        admin.register(uid_of("xr1"))  # another owner: the service refuses the operator, exit 6
    out = _nusec([*_args(service, pki_files, tmp_path / "j", "sim:xh1", "sim:xr1"), "--json"], sim_dir)
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    codes = {b["probe"]: (b["exit_code"], b["error"]) for b in doc["boards"]}
    assert codes["sim:xh1"][0] == 5 and "board tampered" in codes["sim:xh1"][1], codes
    assert codes["sim:xr1"][0] == 6 and "belongs to another operator" in codes["sim:xr1"][1], codes
    assert out.returncode == 5 and doc["exit_code"] == 5 and doc["ok"] is False
