"""The main job end to end on embedded defaults, as one straight function of visible stages.

ceremonies (rehearsal SoftHSM2 tokens: root, then a new ICA by an intermediate ceremony, a root
CRL, the batch keys) -> bulk OTP batch -> OEM service on loopback (HTTPS, mutual TLS, SQLite) on
the issuing token only -> provision simulated boards through pyocd (online, and one from the
batch) -> inspect them. Every artifact lands
in one work folder and is named in the summary, so it can be checked with OpenSSL and imgtool.

The demo is a rehearsal: its tokens, PINs and keys are throwaway. It uses the separate-token
layout of a real OEM: the ceremony makes the root key on an offline root token and the ICA key on
an online issuing token; the batch keys, the service and every later stage use the issuing token
only, and the service refuses a token holding a root key.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

log = logging.getLogger(__name__)

MARKER = ".nusec-demo"
DEFAULT_BOARDS = ("demo-b1", "demo-b2")
FIRMWARE = Path(__file__).resolve().parent / "board" / "bin" / "firmware_bl2.bin"
NUBL2 = FIRMWARE.with_name("nubl2.bin")  # the first-stage bootloader the nubl2-key ceremony signs


class DemoError(Exception):
    """A demo stage failed; the message names the stage and the reason."""


@dataclass
class DemoSummary:
    workdir: Path
    root_cert: Path | None = None
    ica_cert: Path | None = None
    transcript: Path | None = None
    boards: list[dict[str, Any]] = field(default_factory=list)
    batch: Path | None = None
    batch_images: int = 0
    #: the other ceremonies' transcripts, by type, and the CRLs (root's, the service ICA's)
    transcripts: dict[str, Path] = field(default_factory=dict)
    root_crl: Path | None = None
    ica_crl: Path | None = None
    issuing_token_uri: str | None = None

    def to_json(self) -> dict[str, Any]:
        def s(p: Path | None) -> str | None:
            return None if p is None else str(p)

        return {
            "workdir": str(self.workdir),
            "root_cert": s(self.root_cert),
            "ica_cert": s(self.ica_cert),
            "transcript": s(self.transcript),
            "transcripts": {k: str(v) for k, v in self.transcripts.items()},
            "root_crl": s(self.root_crl),
            "ica_crl": s(self.ica_crl),
            "issuing_token_uri": self.issuing_token_uri,
            "boards": self.boards,
            "batch": s(self.batch),
        }


def prepare_workdir(workdir: Path) -> Path:
    """Start from an empty folder; only a previous demo's folder (it carries a marker) is reused."""
    workdir = workdir.resolve()
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / MARKER).is_file():
            raise DemoError(
                f"{workdir} is not empty and is not a previous demo folder: choose another --workdir"
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("created by `nusec demo`; safe to delete\n")
    return workdir


DEMO_PKI_URL = "http://pki.example.com/nusec-demo"


def _other_config(module: Any, workdir: Path, root_cert: Path) -> Any:
    """Another ceremony type's template, pointed at the demo's root certificate (rehearsal mode
    finds the throwaway tokens by label in ``workdir/softhsm``)."""
    text = module.TEMPLATE.format(date=datetime.now(UTC).strftime("%Y-%m-%d"), module="")
    text = text.replace("certificate: ceremony-out/root-ca.pem", f"certificate: {root_cert}")
    text = text.replace("  image: nubl2.bin ", f"  image: {NUBL2} ")
    if module.__name__ == "ceremony.intermediate":  # where relying parties find the CRLs
        text = text.replace(
            "  # crl_url: http://pki.example.com/root.crl", f"  crl_url: {DEMO_PKI_URL}/root.crl"
        )
        text = text.replace(
            "  # issuer_url: http://pki.example.com/root.cer", f"  issuer_url: {DEMO_PKI_URL}/root.cer"
        )
        text = text.replace(
            "  validity_days: 1825\noutputs:",
            f"  validity_days: 1825\n  crl_url: {DEMO_PKI_URL}/ica-2.crl\n"
            f"  issuer_url: {DEMO_PKI_URL}/ica-2.cer\noutputs:",
        )
    return module.parse(text, base_dir=workdir)


def run_demo(
    workdir: Path,
    *,
    boards: tuple[str, ...] = DEFAULT_BOARDS,
    batch_count: int = 1000,
    batch_board: str | None = "demo-batch1",
    say: Callable[[str], None] = lambda _m: None,
) -> DemoSummary:
    from cryptography.hazmat.primitives import serialization

    from ceremony import batch_keys, crl, intermediate, nubl2_key
    from ceremony.config import default_rehearsal_config
    from ceremony.run import run_ceremony
    from nusec.provision.client import TlsConfig
    from nusec.provision.flow import RunOptions, inspect_board, provision_boards
    from pki.batch import build_batch
    from pki.batch.spec import spec_from_dict
    from pki.ca import Issuer
    from pki.ca.crl import issue_crl
    from pki.hsm.roles import check_service_token
    from pki.service.config import ServiceConfig
    from pki.service.credentials import issue_service_credentials
    from pki.service.db import make_engine, upgrade
    from pki.service.server import run_in_background

    workdir = prepare_workdir(workdir)
    summary = DemoSummary(workdir)

    say("1/5 key ceremonies (rehearsal: offline root token + online issuing token, SoftHSM2)")
    cer = run_ceremony(default_rehearsal_config(workdir), rehearsal=True, rehearsal_dir=workdir)
    token = cer.rehearsal_issuing_token  # the online token: everything below uses it alone
    if token is None:  # pragma: no cover - rehearsal always makes one
        raise DemoError("ceremony: the rehearsal issuing token is missing")
    say("    intermediate ceremony: a new ICA on the issuing token, signed by the offline root")
    ica2 = intermediate.run(
        _other_config(intermediate, workdir, cer.root_cert), rehearsal=True, rehearsal_dir=workdir
    )
    say("    CRL ceremony: the offline root's CRL")
    root_crl = crl.run(_other_config(crl, workdir, cer.root_cert), rehearsal=True, rehearsal_dir=workdir)
    say("    batch-keys ceremony: the OTP batch KEK and seal signer on the issuing token")
    keys = batch_keys.run(
        _other_config(batch_keys, workdir, cer.root_cert), rehearsal=True, rehearsal_dir=workdir
    )
    say("    nubl2-key ceremony: the NuBL2 key (every board's ROM root key) signs NuBL2")
    nubl2 = nubl2_key.run(
        _other_config(nubl2_key, workdir, cer.root_cert), rehearsal=True, rehearsal_dir=workdir
    )
    summary.root_cert, summary.ica_cert, summary.transcript = cer.root_cert, ica2.ica_cert, cer.transcript
    summary.transcripts = {
        "intermediate": ica2.transcript,
        "crl": root_crl.transcript,
        "batch-keys": keys.transcript,
        "nubl2-key": nubl2.transcript,
    }
    summary.root_crl, summary.issuing_token_uri = root_crl.crl, token.uri()
    env = token.environ()
    os.environ.update(env)  # the PKCS#11 library in this process reads SOFTHSM2_CONF from here

    from pki.hsm import Pkcs11Backend
    from pki.hsm.roles import issuer_urls

    ica_cert = x509.load_pem_x509_certificate(ica2.ica_cert.read_bytes())
    root_cert = x509.load_pem_x509_certificate(cer.root_cert.read_bytes())
    backend = Pkcs11Backend.from_uri(token.uri(ica2.ica_key_label))
    try:
        say(f"2/5 bulk OTP batch of {batch_count} images (native core, HSM-wrapped keys, sealed)")
        spec = spec_from_dict(
            {
                "count": batch_count,
                "root_cert": str(cer.root_cert),
                "ica_cert": str(ica2.ica_cert),
                "hsm": {"uri": token.uri(), "kek_label": keys.kek_label, "signer_label": keys.signer_label},
            },
            workdir,
        )
        batch = build_batch(spec, workdir / "batch", backend)  # keys from the ceremony: none created here
        summary.batch, summary.batch_images = batch.batch_dir, batch.count

        ica = Issuer(backend, ica2.ica_key_label, ica_cert, *issuer_urls(backend, ica2.ica_key_label))
        creds = issue_service_credentials(ica, root_cert, workdir / "tls")
        summary.ica_crl = workdir / "ica.crl"
        summary.ica_crl.write_bytes(issue_crl(ica, [], crl_number=1).public_bytes(serialization.Encoding.PEM))
    finally:
        backend.close()

    say("3/5 OEM service on 127.0.0.1 (HTTPS, mutual TLS, SQLite), on the issuing token only")
    check_service_token(str(token.uri(ica2.ica_key_label)), cer.root_cert)  # as `nusec serve` does
    config = ServiceConfig(
        hsm_uri=token.uri(ica2.ica_key_label),
        root_cert=cer.root_cert,
        ica_cert=ica2.ica_cert,
        tls_cert=creds.server_cert,
        tls_key=creds.server_key,
        db_url=f"sqlite:///{workdir / 'service.db'}",
        port=0,
        nubl2_image=nubl2.signed_image,
        nubl2_key_label=nubl2.key_label,
    )
    say("    nusec db upgrade (the service never migrates its database on its own)")
    engine = make_engine(config.db_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    service = run_in_background(config, env=env)
    try:
        say(f"    service at {service.url}")
        log.debug("service at %s on HSM key %s, log %s", service.url, config.hsm_uri, service.log_path)
        sim_dir = workdir / "sim"
        sim_dir.mkdir()
        os.environ["NUSEC_SIM_DIR"] = str(sim_dir)
        tls = TlsConfig(client_cert=creds.operator.cert, client_key=creds.operator.key, ca=cer.root_cert)
        journal = workdir / "journal"
        online = RunOptions(server_url=service.url, firmware_path=FIRMWARE, tls=tls, journal_dir=journal)
        from_batch = replace(online, mode="batch", batch_dir=summary.batch)
        probes = [f"sim:{b}" for b in boards]
        say(f"4/5 provision simulated boards through pyocd: {', '.join(probes)} (online, in parallel)")
        results = [(r, "online") for r in provision_boards(probes, online)]
        if batch_board:
            say(f"    and sim:{batch_board} from the bulk batch (--mode batch)")
            results += [(r, "batch") for r in provision_boards([f"sim:{batch_board}"], from_batch)]
        failed = [r for r, _ in results if not r.ok]
        if failed:
            raise DemoError("; ".join(f"provision {r.probe}: {r.error}" for r in failed))
    finally:
        service.stop()
        if service.log_path is not None and service.log_path.is_file():
            shutil.copyfile(service.log_path, workdir / "service.log")  # kept with the artifacts

    say("5/5 inspect every board (read back OTP, lock state, certificates; checked against the chain)")
    for r, mode in results:
        report = inspect_board(r.probe, ca=cer.root_cert, journal_dir=journal)
        if not report.ok:
            raise DemoError(f"inspect {r.probe}: the board does not check out")
        summary.boards.append(
            {
                "uid": r.uid,
                "probe": r.probe,
                "mode": mode,
                "board_cert": str(r.board_cert),
                "otp_dump": str(r.otp_dump),
                "firmware_signed": str(r.firmware_signed),
                "secure_boot_pub": str(r.secure_boot_pub),
                "locked": r.locked,
                "key_confirmed": r.key_confirmed,
                "inspect_ok": report.ok,
            }
        )
    return summary
