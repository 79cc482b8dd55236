"""CRL distribution points and AIA per CA: issued certificates carry them when configured, pkilint
(its CLI, at WARNING) finds nothing on any profile, and `openssl verify -crl_check_all` accepts a
leaf with the root's and the ICA's CRLs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pki.ca import (
    Issuer,
    create_root_certificate,
    issue_board_certificate,
    issue_ica_certificate,
    issue_operator_certificate,
    issue_server_certificate,
)
from pki.ca.crl import issue_crl
from pki.ca.profiles import Role
from pki.hsm.backend import KeyPolicy
from pki.hsm.pkcs11 import Pkcs11Backend
from tests.pki.conftest import name, openssl

LINT = Path(sys.executable).parent / "lint_pkix_cert"
ROOT_CRL, ROOT_CER = "http://pki.example.com/root.crl", "http://pki.example.com/root.cer"
ICA_CRL, ICA_CER = "http://pki.example.com/ica.crl", "http://pki.example.com/ica.cer"


def _pem(path: Path, obj: x509.Certificate | x509.CertificateRevocationList) -> Path:
    path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    return path


def test_crl_dp_and_aia_pass_pkilint_and_openssl_crl_check_all(
    backend: Pkcs11Backend, tmp_path: Path
) -> None:
    backend.generate_ec_keypair("root", policy=KeyPolicy.ca_key())
    root_cert = create_root_certificate(backend, "root", name("DP Root"))
    root = Issuer(backend, "root", root_cert, crl_url=ROOT_CRL, issuer_url=ROOT_CER).check()
    ica_key = backend.generate_ec_keypair("ica", policy=KeyPolicy.ca_key())
    ica_cert = issue_ica_certificate(root, ica_key.public_key, name("DP ICA"))
    ica = Issuer(backend, "ica", ica_cert, crl_url=ICA_CRL, issuer_url=ICA_CER).check()
    leaf_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    leaves = {
        "board": issue_board_certificate(ica, bytes(range(12)), leaf_key),
        "server": issue_server_certificate(
            ica, leaf_key, common_name="oem.example", dns_names=["oem.example"]
        ),
        "operator": issue_operator_certificate(ica, leaf_key, name="alice", role=Role.OPERATOR),
    }
    dp = ica_cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert dp[0].full_name == [x509.UniformResourceIdentifier(ROOT_CRL)]
    aia = ica_cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert aia[0].access_location == x509.UniformResourceIdentifier(ROOT_CER)
    for cert in leaves.values():
        leaf_dp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        assert leaf_dp[0].full_name == [x509.UniformResourceIdentifier(ICA_CRL)]
    for label, cert in {"ica": ica_cert, **leaves}.items():
        res = subprocess.run(
            [str(LINT), "lint", "-s", "WARNING", str(_pem(tmp_path / f"{label}.pem", cert))],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert res.returncode == 0 and "WARNING" not in res.stdout and "ERROR" not in res.stdout, (
            label + res.stdout
        )
    root_pem, ica_pem = _pem(tmp_path / "root.pem", root_cert), tmp_path / "ica.pem"
    root_crl = _pem(tmp_path / "root.crl", issue_crl(root, [], crl_number=1))
    ica_crl = _pem(tmp_path / "ica.crl", issue_crl(ica, [], crl_number=1))
    for label in leaves:
        ok = openssl(
            "verify", "-crl_check_all", "-CAfile", root_pem, "-untrusted", ica_pem,
            "-CRLfile", root_crl, "-CRLfile", ica_crl, tmp_path / f"{label}.pem",
        )  # fmt: skip
        assert ok.returncode == 0 and ": OK" in ok.stdout, ok.stdout + ok.stderr
    # Without the ICA's CRL the check cannot pass: the oracle really checks CRLs.
    bad = openssl(
        "verify", "-crl_check_all", "-CAfile", root_pem, "-untrusted", ica_pem, "-CRLfile", root_crl,
        tmp_path / "board.pem",
    )  # fmt: skip
    assert bad.returncode != 0 and "unable to get certificate CRL" in bad.stdout + bad.stderr
