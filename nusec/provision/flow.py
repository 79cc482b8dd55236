"""The provisioning runner: one visible function per seed arrow, in the seed's order.

Each ``_step_*`` method below is one row of ``steps.STEPS`` and does exactly what its seed arrow
says; every irreversible write (OTP, the secure lock) is a call you can see in the step that
makes it, preceded in the same step or an earlier one by every check it depends on. Steps
record their results in the board's journal; a re-run skips finished steps and repeats the
first unfinished one, which is safe because every board write checks the board first (OTP
entries must be blank or already equal, flash pages already equal are skipped).

Public API (used by ``nusec provision``/``nusec inspect`` and the lead's ``nusec demo``):
``provision_board``, ``provision_boards`` (several probes in parallel, each isolated),
``inspect_board``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from nusec.provision import certs, csr, ecdh, firmware
from nusec.provision.client import ServiceClient, TlsConfig
from nusec.provision.errors import (
    BoardUnreachable,
    OtpConflict,
    ProvisionError,
    ServiceError,
    UsageError,
    VerificationError,
)
from nusec.provision.journal import Journal, remember_probe, uid_for_probe
from nusec.provision.link import BoardChannel, SwdLink, board_errors, open_channel
from nusec.provision.lock import enable_secure_lock
from nusec.provision.otp_writer import OtpWriter, ProgramLog
from nusec.provision.report import BatchClaim, Event, EventSink, ProvisionResult, StepRecord
from nusec.provision.steps import STEPS, Step

#: Entries each OTP-writing step programs and locks (docs/otp-layout.md, "written at step").
OTP_CA_FIELDS = ("header", "root_pub", "root_cert_sha256", "ica_cert_sha256", "uid", "config", "ica_cert")
OTP_CERT_FIELDS = ("board_cert",)
OTP_SB_FIELDS = ("secure_boot_pub", "reserved1", "reserved2", "digest")
BLANK_XY = b"\xff" * 64


def _entries(fields: tuple[str, ...]) -> list[int]:
    from nucore.otp import FIELDS

    return sorted(n for f in fields for n in FIELDS[f].entries)


@dataclass(frozen=True)
class RunOptions:
    """Everything a board's run needs besides the probe id (validated before any board access)."""

    server_url: str
    firmware_path: Path
    tls: TlsConfig
    journal_dir: Path
    mode: str = "online"
    batch_dir: Path | None = None
    dry_run: bool = False
    channel_factory: Callable[[SwdLink, str], BoardChannel] | None = None
    uart_ports: dict[str, str] | None = None
    firmware_header_size: int = 0x20

    def validate(self) -> None:
        if self.mode not in ("online", "batch"):
            raise UsageError(f"--mode must be online or batch, not {self.mode!r}")
        if self.mode == "batch" and (self.batch_dir is None or not self.batch_dir.is_dir()):
            raise UsageError("--mode batch needs --batch DIR (an existing bulk OTP batch folder)")
        if self.mode == "batch":
            assert self.batch_dir is not None
            _check_batch_folder(self.batch_dir)
        if not self.firmware_path.is_file():
            raise UsageError(f"firmware file {self.firmware_path} does not exist")
        if self.tls.ca is None or not self.tls.ca.is_file():
            raise UsageError("--ca FILE (the RootCA certificate, PEM) is required: it is the trust anchor")
        for p in (self.tls.client_cert, self.tls.client_key):
            if p is not None and not p.is_file():
                raise UsageError(f"TLS file {p} does not exist")


def _check_batch_folder(batch_dir: Path) -> None:
    """A batch folder must be a finished, sealed batch before any board is touched."""
    from nusec.otp_batch import OtpBatchError, read_batch_info, read_seal

    try:
        info = read_batch_info(batch_dir)
        sealed = read_seal(info) is not None
    except OtpBatchError as exc:
        raise UsageError(f"--batch {batch_dir}: {exc}") from None
    if not sealed:
        raise UsageError(f"--batch {batch_dir}: the batch is not sealed; finish `nusec otp build` first")


class BoardRun:
    """One board's run. Not shared between threads; ``provision_boards`` makes one per probe."""

    def __init__(self, probe_id: str, opts: RunOptions, on_event: EventSink | None = None) -> None:
        self.probe = probe_id
        self.opts = opts
        self.emit: EventSink = on_event or (lambda _ev: None)
        self.result = ProvisionResult(probe=probe_id, dry_run=opts.dry_run)
        self.link: SwdLink | None = None
        self.client: ServiceClient | None = None
        self.journal: Journal | None = None
        self.uid = b""
        self._channel: BoardChannel | None = None
        self._anchor: x509.Certificate | None = None
        self._step_id: str | None = None
        self._step_bytes0 = 0

    # -- plumbing ------------------------------------------------------------------------------
    def _ev(self, kind: str, step: str | None = None, **kw: Any) -> None:
        self.emit(Event(kind=kind, probe=self.probe, step=step, uid=self.uid.hex().upper() or None, **kw))

    @property
    def j(self) -> Journal:
        assert self.journal is not None
        return self.journal

    @property
    def svc(self) -> ServiceClient:
        assert self.client is not None
        return self.client

    def swd(self) -> SwdLink:
        if self.link is None:
            self.link = SwdLink(self.probe).open()
        return self.link

    def otp(self) -> OtpWriter:
        log = ProgramLog(self.j.artifact("otp_program_log.jsonl"))
        link = self.swd()

        def progress(_kind: str, _addr: int) -> None:
            done = link.memory.bytes - self._step_bytes0
            self._ev("transfer", self._step_id, done=done, probe_bytes=done)

        return OtpWriter(link.isp(), log, on_word=progress)

    def channel(self) -> BoardChannel:
        if self._channel is None:
            if self.opts.channel_factory is not None:
                self._channel = self.opts.channel_factory(self.swd(), self.probe)
            else:
                port = (self.opts.uart_ports or {}).get(self.probe)
                self._channel = open_channel(self.swd(), self.probe, port)
        return self._channel

    def anchor(self) -> x509.Certificate:
        if self._anchor is None:
            assert self.opts.tls.ca is not None
            found = certs.load_pem_certs(self.opts.tls.ca.read_bytes())
            roots = [c for c in found if c.issuer == c.subject]
            if not roots:
                raise UsageError(f"{self.opts.tls.ca} holds no self-signed RootCA certificate")
            self._anchor = roots[0]
        return self._anchor

    def chain(self) -> certs.Chain:
        """The RootCA/ICA pair recorded by the ``ca_chain`` step (re-checked against the anchor)."""
        root = self.j.artifact("root_ca.pem").read_text()
        ica = self.j.artifact("ica.pem").read_text()
        return certs.check_chain(self.anchor(), root, ica)

    def image(self, *, secure_boot_xy: bytes = BLANK_XY, board_cert: bytes | None = None) -> bytes:
        """The board's full OTP image as far as it is known (blank fields for what is not yet)."""
        from nucore import otp

        if self.opts.mode == "batch" and self.j.artifact("batch_image.bin").is_file():
            base = self.j.artifact("batch_image.bin").read_bytes()
            if board_cert is None:
                return base
            f = otp.FIELDS["board_cert"]
            cert = board_cert + b"\xff" * (f.size - len(board_cert))
            return base[: f.offset] + cert + base[f.offset + f.size :]
        chain = self.chain()
        return otp.pack(
            root_pub=chain.root_xy(),
            root_cert_sha256=hashlib.sha256(chain.root_der).digest(),
            ica_cert_sha256=hashlib.sha256(chain.ica_der).digest(),
            secure_boot_pub=secure_boot_xy,
            uid=self.uid,
            ica_cert=chain.ica_der,
            board_cert=board_cert,
        )

    def report(self, step: str, detail: str = "") -> None:
        """Tell the service about a step only the desktop can see (best effort is not enough: a
        refused report stops the run, so the service's state never lags the board's)."""
        self.svc.report_step(self.uid, step, detail)

    # -- identification -------------------------------------------------------------------------
    def identify(self) -> bytes:
        """Read the UID over SWD (FMC READ_UID); after the lock, from the journal or the UART."""
        try:
            link = self.swd()
            if link.debugger_has_access():
                with board_errors("reading the board UID"):
                    uid = link.isp().read_uid()
                remember_probe(self.opts.journal_dir, self.probe, uid)
                return uid
        except BoardUnreachable:
            if self.link is None:
                raise
        known = uid_for_probe(self.opts.journal_dir, self.probe)
        if known is not None:
            return known
        return self.channel().uid()

    # -- the steps, in seed order ------------------------------------------------------------
    def _step_register(self) -> dict[str, Any]:
        status = self.svc.register(self.uid)
        return {"state": status.get("state")}

    def _step_ca_chain(self) -> dict[str, Any]:
        ans = self.svc.ca_chain()
        chain = certs.check_chain(self.anchor(), ans.root_pem, ans.ica_pem)
        self.j.save_artifact("root_ca.pem", chain.root.public_bytes(serialization.Encoding.PEM))
        self.j.save_artifact("ica.pem", chain.ica.public_bytes(serialization.Encoding.PEM))
        return {
            "root_sha256": certs.sha256_der(chain.root).hex(),
            "ica_sha256": certs.sha256_der(chain.ica).hex(),
        }

    def _step_otp_ca(self) -> dict[str, Any]:
        if self.opts.mode == "batch":
            self._claim_batch_image()
        image = self.image()
        self._check_image_matches_chain(image)
        with board_errors("writing RootCA/ICA material to OTP"):
            res = self.otp().write_entries(image, _entries(OTP_CA_FIELDS))  # IRREVERSIBLE
        self.report("ca_written", f"{res.programmed_words} words")
        return {"programmed_words": res.programmed_words, "already_equal": res.already_equal_words}

    def _step_keygen(self) -> dict[str, Any]:
        from nusec.provision import snippet_ops

        with board_errors("running the KeyGen snippet"):
            point = snippet_ops.identity_public_key(self.swd())
        csr.public_key_from_point(point)
        return {"auth_pub": point.hex()}

    def _step_csr(self) -> dict[str, Any]:
        from nusec.provision import snippet_ops

        auth_point = bytes.fromhex(self.j.data("keygen")["auth_pub"])
        auth_pub = csr.public_key_from_point(auth_point)
        with board_errors("having the board sign its CertificationRequestInfo"):
            _info, req = csr.sign_and_assemble(
                self.uid, auth_pub, lambda info: snippet_ops.sign(self.swd(), info)
            )
        self.j.save_artifact("board.csr.pem", csr.csr_pem(req).encode())
        return {"csr_sha256": hashlib.sha256(req.public_bytes(serialization.Encoding.DER)).hexdigest()}

    def _step_certify(self) -> dict[str, Any]:
        auth_point = bytes.fromhex(self.j.data("keygen")["auth_pub"])
        in_otp = self._board_cert_in_otp()
        if in_otp is not None:  # a run whose journal was lost: OTP already holds the certificate
            cert = certs.check_board_cert(self.chain(), in_otp, self.uid, auth_point)
            serial = format(cert.serial_number, "x")
        else:
            ans = self.svc.certify(self.uid, self.j.artifact("board.csr.pem").read_text())
            cert = certs.check_board_cert(self.chain(), ans.certificate_pem, self.uid, auth_point)
            serial = ans.serial
        self.j.save_artifact("board_cert.pem", cert.public_bytes(serialization.Encoding.PEM))
        return {"serial": serial, "cert_sha256": certs.sha256_der(cert).hex(), "from_otp": in_otp is not None}

    def _board_cert_in_otp(self) -> bytes | None:
        """The DER certificate in OTP entries 32-127, or None when they are blank."""
        from nucore import otp

        with board_errors("reading the board certificate area of OTP"):
            words = self.otp().read_entry_words(list(otp.FIELDS["board_cert"].entries))
        raw = b"".join(a.to_bytes(4, "little") + b.to_bytes(4, "little") for a, b in words.values())
        if raw == b"\xff" * len(raw):
            return None
        if raw[:2] != b"\x30\x82":
            raise OtpConflict("OTP board-certificate entries hold something that is not a DER certificate")
        return raw[: 4 + int.from_bytes(raw[2:4], "big")]

    def _step_otp_cert(self) -> dict[str, Any]:
        from nucore import otp

        cert = certs.load_cert(self.j.artifact("board_cert.pem").read_bytes())
        der = cert.public_bytes(serialization.Encoding.DER)
        # Precondition (layout rule 3): the certificate chains to the ICA already in OTP.
        with board_errors("reading the ICA certificate back from OTP"):
            w = self.otp()
            words = w.read_entry_words(list(otp.FIELDS["ica_cert"].entries))
        raw = b"".join(a.to_bytes(4, "little") + b.to_bytes(4, "little") for a, b in words.values())
        chain = self.chain()
        if raw[: len(chain.ica_der)] != chain.ica_der:
            raise OtpConflict(
                "the ICA certificate in OTP is not the chain's ICA: refusing to write the board cert"
            )
        auth_point = bytes.fromhex(self.j.data("keygen")["auth_pub"])
        certs.check_board_cert(chain, cert.public_bytes(serialization.Encoding.PEM), self.uid, auth_point)
        image = self.image(board_cert=der)
        with board_errors("writing the board certificate to OTP"):
            res = w.write_entries(image, _entries(OTP_CERT_FIELDS))  # IRREVERSIBLE
        self.report("cert_written", f"{len(der)} bytes")
        return {"programmed_words": res.programmed_words, "cert_len": len(der)}

    def _step_sb_key(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.opts.mode == "batch":
            xy, extra = self._import_batch_key()
        else:
            xy = self.svc.secure_boot_key(self.uid).public_xy
        key = csr.public_key_from_point(xy)
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.j.save_artifact("secure_boot_pub.pem", pem)
        return {"xy": xy.hex(), **extra}

    def _import_batch_key(self) -> tuple[bytes, dict[str, Any]]:
        """Have the service take over the claimed image's key (unwrapped inside its HSM), so it
        signs this board's firmware with it; its answer must be the image's key."""
        from nucore import otp
        from nusec.otp_batch import key_import_body

        assert self.opts.batch_dir is not None
        xy = otp.parse(self.j.artifact("batch_image.bin").read_bytes(), check_digest=True).secure_boot_pub
        claim = self._batch_claim()
        ans = self.svc.import_secure_boot_key(self.uid, key_import_body(self.opts.batch_dir, claim["index"]))
        if ans.public_xy != xy:
            raise VerificationError(
                "the service holds another secure-boot key than the claimed batch image's"
            )
        return xy, {"batch_id": claim["batch_id"], "index": claim["index"]}

    def _step_sign_fw(self) -> dict[str, Any]:
        xy = bytes.fromhex(self.j.data("sb_key")["xy"])
        signed = self.svc.sign_firmware(
            self.uid, self.opts.firmware_path.read_bytes(), header_size=self.opts.firmware_header_size
        )
        info = firmware.verify_mcuboot_image(signed, xy)  # proves the service's key is the one we burn
        self.j.save_artifact("firmware_signed.bin", signed)
        return {"sha256": info.sha256.hex(), "size": info.size, "version": info.version}

    def _step_otp_sb_key(self) -> dict[str, Any]:
        from nucore import otp

        xy = bytes.fromhex(self.j.data("sb_key")["xy"])
        signed = self.j.artifact("firmware_signed.bin").read_bytes()
        firmware.verify_mcuboot_image(signed, xy)
        cert = certs.load_cert(self.j.artifact("board_cert.pem").read_bytes())
        image = self.image(secure_boot_xy=xy, board_cert=cert.public_bytes(serialization.Encoding.DER))
        parsed = otp.parse(image, check_digest=True)
        if parsed.secure_boot_pub != xy or not self._uid_field_ok(parsed.uid):
            raise VerificationError("OTP image's secure-boot key or UID is not this board's")
        with board_errors("burning the secure-boot key to OTP"):
            w = self.otp()
            current = w.read_image()
            for n in _entries(OTP_CA_FIELDS + OTP_CERT_FIELDS):  # everything before must be in place
                if current[n * 8 : n * 8 + 8] != image[n * 8 : n * 8 + 8]:
                    raise OtpConflict(f"OTP entry {n} does not hold what earlier steps wrote: stopping")
            res = w.write_entries(image, _entries(OTP_SB_FIELDS))  # IRREVERSIBLE
            dump = w.read_image()
        final = otp.parse(dump, check_digest=True)
        if final.secure_boot_pub != xy:
            raise OtpConflict("secure-boot key read back from OTP differs from the one burned")
        self.j.save_artifact("otp_dump.bin", dump)
        self.report("secure_boot_key_written")
        self.report("otp_written", f"digest {final.digest.hex()}")
        return {"programmed_words": res.programmed_words, "digest": final.digest.hex()}

    def _step_flash_fw(self) -> dict[str, Any]:
        from nucore import otp

        signed = self.j.artifact("firmware_signed.bin").read_bytes()
        with board_errors("reading the secure-boot key back from OTP"):
            w = self.otp()
            words = w.read_entry_words(list(otp.FIELDS["secure_boot_pub"].entries))
        otp_xy = b"".join(a.to_bytes(4, "little") + b.to_bytes(4, "little") for a, b in words.values())
        firmware.verify_mcuboot_image(signed, otp_xy)  # what the boot ROM will check
        link = self.swd()

        def progress(done: int, total: int) -> None:
            self._ev("transfer", "flash_fw", done=done, total=total, probe_bytes=link.memory.bytes)

        with board_errors("burning the signed firmware to flash"):
            res = firmware.burn(link.memory, link.isp(), signed, on_progress=progress)
        self.report("firmware_written", f"{len(signed)} bytes")
        return {
            "bytes": res.bytes_programmed,
            "pages_erased": res.pages_erased,
            "seconds": round(res.seconds, 3),
        }

    def _step_lock(self) -> dict[str, Any]:
        link = self.swd()
        if link.debugger_has_access():
            with board_errors("enabling the secure lock"):
                log = ProgramLog(self.j.artifact("otp_program_log.jsonl"))
                enable_secure_lock(link.isp(), log)  # IRREVERSIBLE
            link.hardware_reset()  # the part latches its config words at reset: this applies the lock
        if link.debugger_has_access():
            raise ProvisionError("secure lock programmed and applied, but the debugger can still read memory")
        self.result.locked = True
        self.report("locked")
        return {"locked": True}

    def _step_reset(self) -> dict[str, Any]:
        self.swd().hardware_reset()
        ch = self.channel()
        uid = ch.uid()
        if uid != self.uid:
            raise VerificationError(
                f"board firmware answers UID {uid.hex().upper()}, expected {self.uid.hex().upper()}"
            )
        return {"firmware": ch.version()}

    def _step_ecdh(self) -> dict[str, Any]:
        status = self.svc.status(self.uid)
        if status.get("state") == "key_agreed":
            return {"confirmed": True, "note": "service already holds the agreed key"}
        auth_point = bytes.fromhex(self.j.data("keygen")["auth_pub"])
        sb_xy = bytes.fromhex(self.j.data("sb_key")["xy"])
        attempt = self.j.attempt("ecdh")
        res = ecdh.relay(
            self.uid,
            auth_point,
            sb_xy,
            self.channel(),
            self.svc,
            idempotency_prefix=f"nusec-{self.uid.hex().upper()}-ecdh-{attempt}-{time.time_ns()}",
        )
        self.result.key_confirmed = True
        return {"session_id": res.session_id, "confirmed": res.confirmed}

    # -- checks used by the steps ------------------------------------------------------------
    def _check_image_matches_chain(self, image: bytes) -> None:
        from nucore import otp

        chain = self.chain()
        parsed = otp.parse(image, check_digest=False)
        if parsed.root_pub != chain.root_xy():
            raise VerificationError("OTP image's RootCA key is not the trusted RootCA's")
        if parsed.root_cert_sha256 != hashlib.sha256(chain.root_der).digest():
            raise VerificationError("OTP image's RootCA hash is not the trusted RootCA's")
        if parsed.ica_cert != chain.ica_der:
            raise VerificationError("OTP image's ICA certificate is not the checked ICA")
        if not self._uid_field_ok(parsed.uid):
            raise VerificationError(
                f"OTP image is for UID {parsed.uid.hex().upper()}, not {self.uid.hex().upper()}"
            )

    def _uid_field_ok(self, field: bytes) -> bool:
        """The image's UID field is this board's, or blank for a count-mode batch image (whose
        digest covers the blank field: the claim record and the board certificate bind the UID)."""
        return field == self.uid or (self.opts.mode == "batch" and field == b"\xff" * len(self.uid))

    def _claim_batch_image(self) -> None:
        if self.j.artifact("batch_image.bin").is_file():
            return
        self._batch_claim()

    def _batch_claim(self) -> dict[str, Any]:
        """This board's image of the batch: claimed once (one board <- one image, recorded in the
        batch's claims.sqlite); a resumed run, even with a lost journal, gets the same image back."""
        from nucore import otp
        from nusec.otp_batch import OtpBatchError, claim_next_image

        assert self.opts.batch_dir is not None
        try:
            claimed = claim_next_image(self.opts.batch_dir, self.uid)
        except OtpBatchError as exc:
            raise UsageError(f"batch: {exc}") from None
        image = claimed.to_bytes()
        otp.parse(image, check_digest=True)
        saved = self.j.artifact("batch_image.bin")
        if saved.is_file() and saved.read_bytes() != image:
            raise VerificationError(
                "the batch image claimed for this board differs from the one in its journal"
            )
        claim = {"batch_id": claimed.batch_id, "index": claimed.index}
        self.result.batch_claim = BatchClaim(claimed.batch_id, claimed.index, claimed=True)
        if not saved.is_file():
            self.j.save_artifact("batch_claim.json", json.dumps(claim).encode())
            self.j.save_artifact("batch_image.bin", image)
        return claim

    # -- runner ------------------------------------------------------------------------------
    STEP_FUNCS: ClassVar[dict[str, str]] = {s.id: f"_step_{s.id}" for s in STEPS}

    def run(self) -> ProvisionResult:
        t0 = time.monotonic()
        self._ev("run_start")
        current: Step | None = None
        try:
            self.opts.validate()
            self.uid = self.identify()
            self.result.uid = self.uid.hex().upper()
            self._ev("identified", detail=self.result.uid)
            with (
                Journal(self.opts.journal_dir, self.uid) as journal,
                ServiceClient(self.opts.server_url, self.opts.tls) as client,
            ):
                self.journal, self.client = journal, client
                self.result.journal = journal.dir
                try:
                    if self.opts.dry_run:
                        self._dry_run()
                    else:
                        for step in STEPS:
                            current = step
                            self._run_step(step)
                        current = None
                finally:
                    self._collect_artifacts()
                    if current is not None:
                        self._report_failure(current)
            self.result.ok = True
            self.result.exit_code = 0
            self._ev("run_done", seconds=time.monotonic() - t0)
        except ProvisionError as exc:
            self._fail(current, exc.exit_code, str(exc))
        except ImportError as exc:
            self._fail(current, 1, f"a NuSec component this step needs is missing: {exc}")
        except Exception as exc:
            self._fail(current, 1, f"{type(exc).__name__}: {exc}")
        finally:
            if self.link is not None:
                self.link.close()
            self.result.seconds = time.monotonic() - t0
            self.result.probe_bytes = sum(s.probe_bytes for s in self.result.steps)
        return self.result

    def _fail(self, step: Step | None, code: int, msg: str) -> None:
        self.result.ok = False
        self.result.exit_code = code
        self.result.error = msg
        if step is not None:
            self.result.steps.append(StepRecord(step.id, "failed", detail=msg))
        self._ev("run_failed", step.id if step else None, detail=msg)

    def _report_failure(self, step: Step) -> None:
        """Tell the service which step failed (the message is added by the caller's log)."""
        try:
            self.svc.report_step(self.uid, "failed", f"step {step.id} did not finish")
        except ServiceError:
            pass  # the service being unreachable may be the failure itself

    def _run_step(self, step: Step) -> None:
        if self.j.is_done(step.id):
            self.result.steps.append(StepRecord(step.id, "skipped"))
            if step.id == "lock":
                self.result.locked = True
            if step.id == "ecdh":
                self.result.key_confirmed = True
            self._ev("step_skip", step.id)
            return
        self._ev("step_start", step.id)
        before = self.link.memory.bytes if self.link is not None and self.link.mem is not None else 0
        self._step_id, self._step_bytes0 = step.id, before
        t = time.monotonic()
        self.j.start(step.id)
        data = getattr(self, self.STEP_FUNCS[step.id])()
        self.j.done(step.id, data)
        after = self.link.memory.bytes if self.link is not None and self.link.mem is not None else 0
        rec = StepRecord(step.id, "done", time.monotonic() - t, after - before, json.dumps(data)[:200])
        self.result.steps.append(rec)
        self._ev("step_done", step.id, seconds=rec.seconds, probe_bytes=rec.probe_bytes)

    def _dry_run(self) -> None:
        """Read-only: what the next steps would write. No POST to the service, no board write."""
        ans = self.svc.ca_chain()
        chain = certs.check_chain(self.anchor(), ans.root_pem, ans.ica_pem)
        if not self.j.artifact("root_ca.pem").is_file():
            self.j.save_artifact("root_ca.pem", chain.root.public_bytes(serialization.Encoding.PEM))
            self.j.save_artifact("ica.pem", chain.ica.public_bytes(serialization.Encoding.PEM))
        batch_image = self._peek_batch_image() if self.opts.mode == "batch" else None
        for step in STEPS:
            if self.j.is_done(step.id):
                self.result.steps.append(StepRecord(step.id, "skipped"))
                continue
            detail = step.seed
            if step.id == "otp_ca":
                image = self.image() if batch_image is None else batch_image
                self._check_image_matches_chain(image)
                with board_errors("reading OTP for the dry run"):
                    plan = self.otp().write_entries(image, _entries(OTP_CA_FIELDS), dry_run=True)
                detail = (
                    f"program {plan.programmed_words} words and lock {plan.locked_entries} entries "
                    f"({plan.already_equal_words} words already equal)"
                )
                if self.result.batch_claim is not None:
                    c = self.result.batch_claim
                    verb = "use its claimed" if c.claimed else "claim"
                    detail = f"{verb} image {c.index} of batch {c.batch_id}, then {detail}"
            elif step.irreversible:
                detail = f"IRREVERSIBLE: {step.seed}"
            self.result.steps.append(StepRecord(step.id, "planned", detail=detail))
            self._ev("step_plan", step.id, detail=detail)

    def _peek_batch_image(self) -> bytes:
        """The image a real run would claim (the claims database is only read) for the report."""
        from nucore import otp
        from nusec.otp_batch import OtpBatchError
        from nusec.otp_batch.claim import peek_next_image

        assert self.opts.batch_dir is not None
        try:
            peek = peek_next_image(self.opts.batch_dir, self.uid)
        except OtpBatchError as exc:
            raise UsageError(f"batch: {exc}") from None
        self.result.batch_claim = BatchClaim(peek.batch_id, peek.index, claimed=peek.already_claimed)
        note = "claimed earlier by this board" if peek.already_claimed else "would be claimed (not claimed)"
        self._ev("note", detail=f"batch image {peek.index} of batch {peek.batch_id}: {note}")
        image = peek.to_bytes()
        otp.parse(image, check_digest=True)
        return image

    def _collect_artifacts(self) -> None:
        claim = self.j.artifact("batch_claim.json")
        if self.result.batch_claim is None and claim.is_file():
            rec = json.loads(claim.read_text())
            self.result.batch_claim = BatchClaim(str(rec["batch_id"]), int(rec["index"]), claimed=True)
        for name, attr in (
            ("board_cert.pem", "board_cert"),
            ("otp_dump.bin", "otp_dump"),
            ("firmware_signed.bin", "firmware_signed"),
            ("secure_boot_pub.pem", "secure_boot_pub"),
        ):
            p = self.j.artifact(name)
            if p.is_file():
                setattr(self.result, attr, p)


def provision_board(
    probe_id: str,
    server_url: str,
    firmware_path: Path,
    tls: TlsConfig,
    journal_dir: Path,
    mode: str = "online",
    on_event: EventSink | None = None,
    *,
    batch_dir: Path | None = None,
    dry_run: bool = False,
    channel_factory: Callable[[SwdLink, str], BoardChannel] | None = None,
) -> ProvisionResult:
    """Provision one board end to end (or resume it). Never raises for board/service problems:
    the result says ``ok``, ``exit_code`` and ``error``; artifact paths are filled in."""
    opts = RunOptions(server_url, firmware_path, tls, journal_dir, mode, batch_dir, dry_run, channel_factory)
    return BoardRun(probe_id, opts, on_event).run()


def provision_boards(
    probe_ids: list[str],
    opts: RunOptions,
    on_event: EventSink | None = None,
) -> list[ProvisionResult]:
    """Several boards at once, one thread each; a failure on one board never touches another."""
    if len(set(probe_ids)) != len(probe_ids):
        raise UsageError("the same --probe is given twice")
    results: dict[str, ProvisionResult] = {}

    def one(pid: str) -> None:
        results[pid] = BoardRun(pid, opts, on_event).run()

    threads = [threading.Thread(target=one, args=(pid,), name=f"provision-{pid}") for pid in probe_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [results[p] for p in probe_ids]


from nusec.provision.inspect import InspectResult, inspect_board  # noqa: E402 - re-exported for the demo

__all__ = [
    "BoardRun",
    "InspectResult",
    "ProvisionResult",
    "RunOptions",
    "inspect_board",
    "provision_board",
    "provision_boards",
]
