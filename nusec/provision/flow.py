"""The provisioning runner: one visible function per seed arrow, in the seed's order.

Each ``_step_*`` method below is one row of ``steps.STEPS`` and does exactly what its seed arrow
says; every irreversible write (OTP, the secure lock) is a call you can see in the step that
makes it, preceded in the same step or an earlier one by every check it depends on.

A run goes: preflight (``nusec.provision.preflight``: every local input, then the service
authenticated, before any probe is opened) -> read the board (UID over SWD, or over the firmware
channel once locked) -> for each step, in order: if the journal says it finished *and* the board
agrees (``_confirm_*``), skip it; otherwise run it. Every step checks the board before writing
(OTP entries must be blank or already equal, flash pages already equal are skipped), and the
service is asked what it already issued before anything new is requested, so a lost, damaged
or stale journal costs time, never a double burn, a second certificate or a stranded board.

Public API (used by ``nusec provision``/``nusec inspect`` and ``nusec demo``):
``provision_board``, ``provision_boards`` (several probes in parallel, each isolated),
``inspect_board``, ``preflight``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from nuboard import layout
from nuboard.keyslots import ROM_ROOT_SLOTS
from nucore import otp
from nusec.provision import batch, certs, csr, ecdh, firmware, results, rom_key
from nusec.provision import preflight as pre
from nusec.provision.client import ServiceClient, TlsConfig
from nusec.provision.errors import (
    BoardTampered,
    BoardUnreachable,
    FirmwareDidNotBoot,
    OtpConflict,
    ProvisionError,
    ServiceError,
    UsageError,
    VerificationError,
)
from nusec.provision.journal import Journal, JournalError, remember_probe
from nusec.provision.link import (
    BoardChannel,
    SwdLink,
    board_errors,
    find_probe,
    normalise_probe_id,
    open_channel,
)
from nusec.provision.lock import enable_secure_lock
from nusec.provision.otp_writer import OtpWriter, ProgramLog
from nusec.provision.report import BatchClaim, Event, EventSink, ProvisionResult, StepRecord
from nusec.provision.steps import STEPS, Step

log = logging.getLogger(__name__)

#: Entries each OTP-writing step programs and locks (docs/otp-layout.md, "written at step").
OTP_CA_FIELDS = ("header", "root_pub", "root_cert_sha256", "ica_cert_sha256", "uid", "config", "ica_cert")
OTP_CERT_FIELDS = ("board_cert",)
OTP_SB_FIELDS = ("secure_boot_pub", "reserved1", "reserved2", "digest")
#: Steps a locked board proves done: the lock is only ever applied after all of them, and after
#: the firmware was read back and answered on its channel.
BEFORE_RESET = tuple(s.id for s in STEPS[: [s.id for s in STEPS].index("reset")])

R = TypeVar("R", bound=results.StepResult)


class Stale(ProvisionError):
    """A journal record that no longer holds on the board or for these inputs (the message says why)."""


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
    firmware_header_size: int = layout.APP_HEADER_SIZE
    insecure_dev: bool = False

    def validate(self) -> pre.FirmwareInput:
        """Local checks only (no network): options, server URL, batch folder, firmware, TLS files."""
        if self.mode not in ("online", "batch"):
            raise UsageError(f"--mode must be online or batch, not {self.mode!r}")
        pre.check_server_url(self.server_url, insecure_dev=self.insecure_dev)
        if self.mode == "batch":
            batch.check_batch_folder(self.batch_dir)
        fw = pre.check_firmware(self.firmware_path, self.firmware_header_size)
        pre.load_anchor(self.tls.ca)
        if self.server_url.startswith("https://") or self.tls.client_cert is not None:
            self.tls.ssl_context()
        return fw


def preflight(opts: RunOptions) -> pre.Preflight:
    """Every check that needs no board: local inputs, then the service authenticated (HTTPS with a
    certificate chaining to ``--ca``, hostname checked) and its RootCA equal to ``--ca``'s."""
    fw = opts.validate()
    anchor = pre.load_anchor(opts.tls.ca)
    url = pre.check_server_url(opts.server_url, insecure_dev=opts.insecure_dev)
    chain = pre.authenticate_service(url, opts.tls, anchor, insecure_dev=opts.insecure_dev)
    return pre.Preflight(anchor, fw, chain)


def check_probe_ids(probe_ids: list[str]) -> list[str]:
    """Normalised ids, each matching exactly one connected probe, none given twice."""
    norm = [normalise_probe_id(p) for p in probe_ids]
    seen: set[str] = set()
    for raw, p in zip(probe_ids, norm, strict=True):
        if p in seen:
            raise UsageError(f"--probe {raw} names the same probe as an earlier --probe ({p})")
        seen.add(p)
    for p in norm:
        find_probe(p)
    return norm


class BoardRun:
    """One board's run. Not shared between threads; ``provision_boards`` makes one per probe."""

    def __init__(
        self,
        probe_id: str,
        opts: RunOptions,
        on_event: EventSink | None = None,
        checked: pre.Preflight | None = None,
    ) -> None:
        self.probe = normalise_probe_id(probe_id)
        self.opts = opts
        self.emit: EventSink = on_event or (lambda _ev: None)
        self.result = ProvisionResult(probe=self.probe, dry_run=opts.dry_run)
        self.checked = checked
        self.link: SwdLink | None = None
        self.client: ServiceClient | None = None
        self.journal: Journal | None = None
        self.uid = b""
        self.locked = False
        self._channel: BoardChannel | None = None
        self._step_id: str | None = None
        self._step_bytes0 = 0
        self._cert_cache: tuple[x509.Certificate, str] | bool | None = False

    # -- plumbing ------------------------------------------------------------------------------
    def _ev(self, kind: str, step: str | None = None, **kw: Any) -> None:
        self.emit(Event(kind=kind, probe=self.probe, step=step, uid=self.uid.hex().upper() or None, **kw))

    def note(self, text: str, step: str | None = None) -> None:
        log.info("%s: %s", self.probe, text)
        self._ev("note", step, detail=text)

    @property
    def pf(self) -> pre.Preflight:
        assert self.checked is not None
        return self.checked

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

    def writer(self) -> OtpWriter:
        log_ = ProgramLog(self.j.artifact("otp_program_log.jsonl"))
        link = self.swd()

        def progress(_kind: str, _addr: int) -> None:
            done = link.memory.bytes - self._step_bytes0
            self._ev("transfer", self._step_id, done=done, probe_bytes=done)

        return OtpWriter(link.isp(), log_, on_word=progress)

    def channel(self) -> BoardChannel:
        if self._channel is None:
            if self.opts.channel_factory is not None:
                self._channel = self.opts.channel_factory(self.swd(), self.probe)
            else:
                port = (self.opts.uart_ports or {}).get(self.probe)
                self._channel = open_channel(self.swd(), self.probe, port)
        return self._channel

    def chain(self) -> certs.Chain:
        """The RootCA/ICA pair the service answered in preflight, checked against ``--ca``."""
        return self.pf.chain

    def record(self, cls: type[R]) -> R:
        """The typed record a finished step left in the journal."""
        try:
            return cls.from_json(self.j.data(cls.step))
        except (JournalError, results.BadRecord) as exc:
            raise ProvisionError(f"journal {self.j.path}: {exc}") from None

    def image(self, *, secure_boot_xy: bytes = otp.BLANK_PUB, board_cert: bytes | None = None) -> bytes:
        """The board's full OTP image as far as it is known (blank fields for what is not yet)."""
        if self.opts.mode == "batch":
            base = batch.saved_image(self.j)
            if base is None:
                raise ProvisionError(f"{self.j.artifact(batch.IMAGE_ARTIFACT)} is missing or damaged")
            return base if board_cert is None else otp.with_board_cert(base, board_cert)
        chain = self.chain()
        return otp.assemble(
            root_cert=chain.root_der,
            root_pub=chain.root_xy(),
            ica_cert=chain.ica_der,
            uid=self.uid,
            secure_boot_pub=secure_boot_xy,
            board_cert=board_cert,
        )

    def report(self, step: str, detail: str = "") -> None:
        """Tell the service about a step only the desktop can see (a refused report stops the run,
        so the service's state never lags the board's)."""
        self.svc.report_step(self.uid, step, detail)

    # -- reading the board ----------------------------------------------------------------------
    def identify(self) -> bytes:
        """The board's own UID: FMC READ_UID over SWD, or, once the debugger is locked out, the
        firmware's answer on its channel. Never the journal's idea of what sits behind the probe."""
        link = self.swd()
        if link.debugger_has_access():
            with board_errors("reading the board UID"):
                uid = link.isp().read_uid()
            self.locked = False
        else:
            self.locked = True
            uid = self.channel().uid()
        remember_probe(self.opts.journal_dir, self.probe, uid)
        return uid

    def _entries_hold(self, image: bytes, entries: list[int]) -> bool:
        """True when every entry already holds ``image``'s value and is locked (no write needed)."""
        with board_errors("reading OTP"):
            w = self.writer()
            have = w.read_entry_words(entries)
            locks = w.read_locks(entries)
        for n in entries:
            want = image[8 * n : 8 * n + 8]
            got = otp.entries_to_bytes([have[n]])
            if got != want or not locks[n]:
                return False
        return True

    # -- journal records checked against the board -----------------------------------------------
    def _confirm(self, step: Step) -> str | None:
        """Why the journal's "done" for ``step`` no longer holds on this board with these inputs
        (one line naming the file or the entries), or None when it holds."""
        if self.locked:
            return None  # everything before the lock was proven before it was applied
        fn = getattr(self, f"_confirm_{step.id}", None)
        if fn is None:
            return None
        try:
            fn()
        except Stale as exc:
            return str(exc)
        except (ProvisionError, results.BadRecord, ValueError) as exc:
            return f"its record does not check out ({exc})"
        return None

    def _artifact_bytes(self, name: str) -> bytes:
        raw = self.j.read_artifact(name)
        if raw is None:
            raise Stale(f"{self.j.artifact(name)} is missing")
        return raw

    def _confirm_ca_chain(self) -> None:
        pem = serialization.Encoding.PEM
        for name, cert in (("root_ca.pem", self.chain().root), ("ica.pem", self.chain().ica)):
            if self._artifact_bytes(name) != cert.public_bytes(pem):
                raise Stale(f"{self.j.artifact(name)} is not the certificate the service answers")

    def _confirm_nubl2(self) -> None:
        rec = self.record(results.Nubl2Fetched)
        image = self._artifact_bytes("nubl2_signed.bin")
        if hashlib.sha256(image).hexdigest() != rec.image_sha256:
            raise Stale(f"{self.j.artifact('nubl2_signed.bin')} is damaged (SHA-256 differs from the record)")
        firmware.verify_nubl2_image(image, rec.key_xy)

    def _confirm_rom_key(self) -> None:
        with board_errors("reading KS_OTPSTS"):
            occupied = rom_key.occupied_slots(self.swd().memory)
        if occupied != ROM_ROOT_SLOTS:
            raise Stale("KeyStore OTP slots 0/1 do not both hold a key")

    def _confirm_otp_ca(self) -> None:
        self._entries_hold_or_stale(self.image(), OTP_CA_FIELDS)

    def _confirm_keygen(self) -> None:
        csr.public_key_from_point(self.record(results.KeyMade).auth_pub)

    def _confirm_csr(self) -> None:
        made = self.record(results.CsrMade)
        if not made.needed:
            return
        raw = self._artifact_bytes("board.csr.pem")
        try:
            der = x509.load_pem_x509_csr(raw).public_bytes(serialization.Encoding.DER)
        except ValueError:
            raise Stale(f"{self.j.artifact('board.csr.pem')} is damaged (not a PEM CSR)") from None
        if hashlib.sha256(der).hexdigest() != made.csr_sha256:
            raise Stale(f"{self.j.artifact('board.csr.pem')} is not the CSR the board signed")

    def _confirm_certify(self) -> None:
        cert = self._journal_cert()
        if certs.sha256_der(cert).hex() != self.record(results.Certified).cert_sha256:
            raise Stale(f"{self.j.artifact('board_cert.pem')} is not the certificate recorded")

    def _confirm_otp_cert(self) -> None:
        der = self._journal_cert().public_bytes(serialization.Encoding.DER)
        self._entries_hold_or_stale(self.image(board_cert=der), OTP_CERT_FIELDS)

    def _confirm_sb_key(self) -> None:
        xy = self.record(results.SecureBootKey).xy
        raw = self._artifact_bytes("secure_boot_pub.pem")
        try:
            ok = certs.xy_of(serialization.load_pem_public_key(raw)) == xy
        except (ValueError, UnsupportedAlgorithm, ProvisionError):
            ok = False
        if not ok:
            raise Stale(f"{self.j.artifact('secure_boot_pub.pem')} is damaged or not the key recorded")

    def _confirm_sign_fw(self) -> None:
        rec = self.record(results.FirmwareSigned)
        if rec.input_sha256 != self.pf.firmware.sha256 or rec.header_size != self.opts.firmware_header_size:
            raise Stale(f"--firmware {self.pf.firmware.path} is not the file signed before")
        signed = self._artifact_bytes("firmware_signed.bin")
        if hashlib.sha256(signed).hexdigest() != rec.image_sha256:
            raise Stale(
                f"{self.j.artifact('firmware_signed.bin')} is damaged (SHA-256 differs from the record)"
            )
        firmware.verify_mcuboot_image(signed, self.record(results.SecureBootKey).xy)

    def _confirm_otp_sb_key(self) -> None:
        xy = self.record(results.SecureBootKey).xy
        der = self._journal_cert().public_bytes(serialization.Encoding.DER)
        self._entries_hold_or_stale(self.image(secure_boot_xy=xy, board_cert=der), OTP_SB_FIELDS)

    def _confirm_flash_fw(self) -> None:
        signed = self._artifact_bytes("firmware_signed.bin")
        rec = self.record(results.Flashed)
        if hashlib.sha256(signed).hexdigest() != rec.image_sha256:
            raise Stale("the signed image changed since it was flashed")
        if self._nubl2_image() and hashlib.sha256(self._nubl2_image()).hexdigest() != rec.nubl2_sha256:
            raise Stale("the signed NuBL2 changed since it was flashed")

    def _confirm_lock(self) -> None:
        raise Stale("the board is not locked")

    _confirm_reset = _confirm_lock
    _confirm_ecdh = _confirm_lock

    def _entries_hold_or_stale(self, image: bytes, fields: tuple[str, ...]) -> None:
        if not self._entries_hold(image, otp.entries_of(*fields)):
            raise Stale(f"OTP entries of {', '.join(fields)} do not all hold their values and locks")

    def _journal_cert(self) -> x509.Certificate:
        raw = self._artifact_bytes("board_cert.pem")
        auth = self.record(results.KeyMade).auth_pub
        try:
            return certs.check_board_cert(self.chain(), raw, self.uid, auth)
        except VerificationError as exc:
            raise Stale(
                f"{self.j.artifact('board_cert.pem')} is damaged or not this board's ({exc})"
            ) from None

    # -- recovery of a locked board whose journal was lost ------------------------------------
    def _recover_locked(self) -> None:
        """A locked board proves every step before the lock; what later steps need (identity key,
        secure-boot key) and the artifacts are fetched again from the service and checked."""
        missing = [s for s in BEFORE_RESET if not self.j.is_done(s)]
        if not missing:
            return
        self.note(f"board is locked but its journal lacks {', '.join(missing)}: rebuilding from the service")
        chain = self.chain()
        pem = serialization.Encoding.PEM
        self.j.save_artifact("root_ca.pem", chain.root.public_bytes(pem))
        self.j.save_artifact("ica.pem", chain.ica.public_bytes(pem))
        ans = self.svc.certificate(self.uid)
        if ans is None:
            raise VerificationError(
                f"board {self.uid.hex().upper()} is locked but the service holds no certificate for it"
            )
        leaf = certs.load_cert(ans.certificate_pem)
        auth = b"\x04" + certs.xy_of(leaf.public_key())
        cert = certs.check_board_cert(chain, ans.certificate_pem, self.uid, auth)
        self.j.save_artifact("board_cert.pem", cert.public_bytes(pem))
        sb = self.svc.existing_secure_boot_key(self.uid)
        if sb is None:
            raise VerificationError(
                f"board {self.uid.hex().upper()} is locked but the service holds no secure-boot key for it"
            )
        key = csr.public_key_from_point(sb.public_xy)
        self.j.save_artifact(
            "secure_boot_pub.pem",
            key.public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
        )
        how = "board locked (proves this step); record rebuilt from the service"
        for sid in missing:
            rec: results.StepResult = results.Recovered(how)
            if sid == "keygen":
                rec = results.KeyMade(auth, -1, "certified")
            elif sid == "certify":
                rec = results.Certified(
                    format(cert.serial_number, "x"), certs.sha256_der(cert).hex(), "service"
                )
            elif sid == "sb_key":
                rec = results.SecureBootKey(sb.public_xy)
            elif sid == "lock":
                rec = results.Locked(True)
                self.result.locked = True
            self.j.done(sid, rec.to_json())
            self.result.steps.append(StepRecord(sid, "recovered", detail=how))

    # -- the steps, in seed order ------------------------------------------------------------
    def _step_register(self) -> results.Registered:
        status = self.svc.register(self.uid)
        return results.Registered(str(status.get("state")))

    def _step_ca_chain(self) -> results.ChainChecked:
        chain = self.chain()  # fetched and checked against --ca in preflight
        pem = serialization.Encoding.PEM
        self.j.save_artifact("root_ca.pem", chain.root.public_bytes(pem))
        self.j.save_artifact("ica.pem", chain.ica.public_bytes(pem))
        return results.ChainChecked(certs.sha256_der(chain.root).hex(), certs.sha256_der(chain.ica).hex())

    def _step_nubl2(self) -> results.Nubl2Fetched:
        """The signed NuBL2 and the ROM root key, checked here: the image must verify with the key
        the service names (KEYHASH included), and the key must be a P-256 point."""
        answer = self.svc.nubl2()
        try:
            key = serialization.load_pem_public_key(answer.public_key_pem.encode())
            xy = certs.xy_of(key)
        except (ValueError, UnsupportedAlgorithm, ProvisionError):
            raise VerificationError("the service's NuBL2 key is not a P-256 public key") from None
        info = firmware.verify_nubl2_image(answer.image, xy)
        self.j.save_artifact("nubl2_signed.bin", answer.image)
        self.j.save_artifact("nubl2_root.pub.pem", answer.public_key_pem.encode())
        return results.Nubl2Fetched(hashlib.sha256(answer.image).hexdigest(), xy, info.size, info.version)

    def _nubl2_image(self) -> bytes:
        """The NuBL2 the nubl2 step checked (artifact and record must agree)."""
        rec = self.record(results.Nubl2Fetched)
        image = self.j.read_artifact("nubl2_signed.bin")
        if image is None or hashlib.sha256(image).hexdigest() != rec.image_sha256:
            raise ProvisionError(
                f"{self.j.artifact('nubl2_signed.bin')} is missing or damaged: re-run to fetch it again"
            )
        return image

    def _step_otp_ca(self) -> results.OtpWritten:
        if self.opts.mode == "batch":
            assert self.opts.batch_dir is not None
            self.result.batch_claim = batch.claim(self.opts.batch_dir, self.uid, self.j).claim
        image = self.image()
        self._check_image_matches_chain(image)
        self._refuse_unexplained_rom_key("stopping before anything is written")
        with board_errors("writing RootCA/ICA material to OTP"):
            res = self.writer().write_entries(image, otp.entries_of(*OTP_CA_FIELDS))  # IRREVERSIBLE
        self.report("ca_written", f"{res.programmed_words} words")
        return results.OtpWritten(res.programmed_words, res.already_equal_words, res.locked_entries)

    def _step_keygen(self) -> results.KeyMade:
        """Make the identity key once. A key already in the slot is used only if this tool's
        journaled intent explains it, or the service certified exactly that key; anything else
        is a planted key and stops the run before any certificate request."""
        from nusec.provision import snippet_ops

        slot = snippet_ops.identity_slot()
        with board_errors("reading the KeyStore identity slot"):
            point = snippet_ops.existing_identity_key(self.swd())
        if point is not None:
            csr.public_key_from_point(point)
            if self.j.intent_of("keygen") is not None:
                return results.KeyMade(point, slot, "resumed")
            if self._service_cert_for(point) is not None:
                self.note("identity key matches the certificate the service issued: using it")
                return results.KeyMade(point, slot, "certified")
            raise BoardTampered(
                f"board tampered: KeyStore OTP slot {slot} already holds a key that this tool never "
                "journaled making and the service never certified; stopping before any certificate request"
            )
        self.j.intent("keygen", {"slot": slot})  # before the board acts: a kill from here on resumes
        with board_errors("running the KeyGen snippet"):
            point = snippet_ops.generate_identity_key(self.swd())
        csr.public_key_from_point(point)
        return results.KeyMade(point, slot, "generated")

    def _service_cert_for(self, auth_point: bytes) -> tuple[x509.Certificate, str] | None:
        """The service's current certificate for this board, if it is for ``auth_point``."""
        ans = self.svc.certificate(self.uid)
        if ans is None:
            return None
        try:
            cert = certs.check_board_cert(self.chain(), ans.certificate_pem, self.uid, auth_point)
        except VerificationError:
            return None
        return cert, ans.serial

    def _step_csr(self) -> results.CsrMade:
        from nusec.provision import snippet_ops

        auth_point = self.record(results.KeyMade).auth_pub
        if self._service_cert_for(auth_point) is not None:
            return results.CsrMade("", needed=False)  # never ask twice for one key
        auth_pub = csr.public_key_from_point(auth_point)
        with board_errors("having the board sign its CertificationRequestInfo"):
            _info, req = csr.sign_and_assemble(
                self.uid, auth_pub, lambda info: snippet_ops.sign(self.swd(), info)
            )
        self.j.save_artifact("board.csr.pem", csr.csr_pem(req).encode())
        return results.CsrMade(hashlib.sha256(req.public_bytes(serialization.Encoding.DER)).hexdigest())

    def _step_certify(self) -> results.Certified:
        """The one certificate of this board: the service's if it already issued one for this key,
        else the one OTP holds, else a new one. Whatever OTP already holds must agree with it."""
        auth_point = self.record(results.KeyMade).auth_pub
        in_otp = self._board_cert_area()
        existing = self._service_cert_for(auth_point)
        if existing is not None:
            cert, serial, source = existing[0], existing[1], "service"
        elif in_otp is not None:
            try:
                cert = certs.check_board_cert(
                    self.chain(), certs.der_prefix(in_otp) or b"", self.uid, auth_point
                )
            except VerificationError as exc:
                raise OtpConflict(
                    "OTP board-certificate entries hold an incomplete or foreign certificate and the service "
                    f"holds none for this board's key ({exc}): stopping"
                ) from None
            serial, source = format(cert.serial_number, "x"), "otp"
        else:
            raw = self.j.read_artifact("board.csr.pem")
            if raw is None:
                raise ProvisionError(
                    f"{self.j.artifact('board.csr.pem')} is missing: re-run to make it again"
                )
            ans = self.svc.certify(self.uid, raw.decode("ascii", "replace"))
            cert = certs.check_board_cert(self.chain(), ans.certificate_pem, self.uid, auth_point)
            serial, source = ans.serial, "issued"
        if in_otp is not None:
            self._check_partial(in_otp, cert.public_bytes(serialization.Encoding.DER))
        self.j.save_artifact("board_cert.pem", cert.public_bytes(serialization.Encoding.PEM))
        return results.Certified(serial, certs.sha256_der(cert).hex(), source)

    def _board_cert_area(self) -> bytes | None:
        """The raw board-certificate entries of OTP, or None when they are all blank."""
        with board_errors("reading the board certificate area of OTP"):
            words = self.writer().read_entry_words(otp.entries_of(*OTP_CERT_FIELDS))
        raw = otp.entries_to_bytes(words.values())
        return None if raw == b"\xff" * len(raw) else raw

    @staticmethod
    def _check_partial(area: bytes, der: bytes) -> None:
        """Every word already in OTP must be blank or the certificate's (a write cut short)."""
        want = der + b"\xff" * (len(area) - len(der))
        for i in range(0, len(area), 4):
            got = area[i : i + 4]
            if got != b"\xff" * 4 and got != want[i : i + 4]:
                raise OtpConflict(
                    f"OTP board-certificate area holds other data at byte {i}: not this board's certificate"
                )

    def _step_otp_cert(self) -> results.OtpWritten:
        cert = self._journal_cert()
        der = cert.public_bytes(serialization.Encoding.DER)
        # Precondition (layout rule 3): the certificate chains to the ICA already in OTP.
        with board_errors("reading the ICA certificate back from OTP"):
            w = self.writer()
            words = w.read_entry_words(otp.entries_of("ica_cert"))
        raw = otp.entries_to_bytes(words.values())
        if raw[: len(self.chain().ica_der)] != self.chain().ica_der:
            raise OtpConflict(
                "the ICA certificate in OTP is not the chain's ICA: refusing to write the board cert"
            )
        image = self.image(board_cert=der)
        with board_errors("writing the board certificate to OTP"):
            res = w.write_entries(image, otp.entries_of(*OTP_CERT_FIELDS))  # IRREVERSIBLE
        self.report("cert_written", f"{len(der)} bytes")
        return results.OtpWritten(res.programmed_words, res.already_equal_words, res.locked_entries)

    def _step_sb_key(self) -> results.SecureBootKey:
        if self.opts.mode == "batch":
            assert self.opts.batch_dir is not None
            xy, claim = batch.import_key(self.opts.batch_dir, self.uid, self.j, self.svc)
            self.result.batch_claim = claim
            rec = results.SecureBootKey(xy, claim.batch_id, claim.index)
        else:
            xy = self.svc.secure_boot_key(self.uid).public_xy
            rec = results.SecureBootKey(xy)
        key = csr.public_key_from_point(xy)
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.j.save_artifact("secure_boot_pub.pem", pem)
        return rec

    def _step_sign_fw(self) -> results.FirmwareSigned:
        xy = self.record(results.SecureBootKey).xy
        fw = self.pf.firmware
        signed = self.svc.sign_firmware(self.uid, fw.data, header_size=self.opts.firmware_header_size)
        info = firmware.verify_mcuboot_image(signed, xy)  # proves the service's key is the one we burn
        self.j.save_artifact("firmware_signed.bin", signed)
        return results.FirmwareSigned(
            fw.sha256,
            self.opts.firmware_header_size,
            hashlib.sha256(signed).hexdigest(),
            info.size,
            info.version,
        )

    def _step_otp_sb_key(self) -> results.OtpWritten:
        xy = self.record(results.SecureBootKey).xy
        signed = self._signed_image()
        firmware.verify_mcuboot_image(signed, xy)
        der = self._journal_cert().public_bytes(serialization.Encoding.DER)
        image = self.image(secure_boot_xy=xy, board_cert=der)
        parsed = otp.parse(image, check_digest=True)
        if parsed.secure_boot_pub != xy or not self._uid_field_ok(parsed.uid):
            raise VerificationError("OTP image's secure-boot key or UID is not this board's")
        with board_errors("burning the secure-boot key to OTP"):
            w = self.writer()
            current = w.read_image()
            for n in otp.entries_of(*OTP_CA_FIELDS, *OTP_CERT_FIELDS):  # everything before must be in place
                if current[n * 8 : n * 8 + 8] != image[n * 8 : n * 8 + 8]:
                    raise OtpConflict(f"OTP entry {n} does not hold what earlier steps wrote: stopping")
            res = w.write_entries(image, otp.entries_of(*OTP_SB_FIELDS))  # IRREVERSIBLE
            dump = w.read_image()
        final = otp.parse(dump, check_digest=True)
        if final.secure_boot_pub != xy:
            raise OtpConflict("secure-boot key read back from OTP differs from the one burned")
        self.j.save_artifact("otp_dump.bin", dump)
        self.report("secure_boot_key_written")
        self.report("otp_written", f"digest {final.digest.hex()}")
        return results.OtpWritten(
            res.programmed_words, res.already_equal_words, res.locked_entries, final.digest.hex()
        )

    def _signed_image(self) -> bytes:
        signed = self.j.read_artifact("firmware_signed.bin")
        rec = self.record(results.FirmwareSigned)
        if signed is None or hashlib.sha256(signed).hexdigest() != rec.image_sha256:
            raise ProvisionError(
                f"{self.j.artifact('firmware_signed.bin')} is missing or damaged: re-run to sign again"
            )
        return signed

    def _otp_secure_boot_key(self) -> bytes:
        with board_errors("reading the secure-boot key back from OTP"):
            words = self.writer().read_entry_words(otp.entries_of("secure_boot_pub"))
        return otp.entries_to_bytes(words.values())

    def _step_flash_fw(self) -> results.Flashed:
        """NuBL2 at the APROM base and the application in the slot NuBL2 verifies, each checked
        first against the key that will check it on the board."""
        signed = self._signed_image()
        firmware.verify_mcuboot_image(signed, self._otp_secure_boot_key())  # what NuBL2 will check
        nubl2 = self._nubl2_image()
        firmware.verify_nubl2_image(nubl2, self.record(results.Nubl2Fetched).key_xy)  # the ROM's check
        link = self.swd()
        total = len(nubl2) + len(signed)

        def progress(offset: int) -> Callable[[int, int], None]:
            def report(done: int, _total: int) -> None:
                self._ev(
                    "transfer", "flash_fw", done=offset + done, total=total, probe_bytes=link.memory.bytes
                )

            return report

        with board_errors("burning NuBL2 and the signed firmware to flash"):
            boot = firmware.burn(
                link.memory, link.isp(), nubl2, base=layout.NUBL2_BASE, on_progress=progress(0)
            )
            res = firmware.burn(
                link.memory, link.isp(), signed, base=layout.APP_BASE, on_progress=progress(len(nubl2))
            )
        self.report("firmware_written", f"NuBL2 {len(nubl2)} bytes, firmware {len(signed)} bytes")
        return results.Flashed(
            hashlib.sha256(signed).hexdigest(),
            boot.bytes_programmed + res.bytes_programmed,
            boot.pages_erased + res.pages_erased,
            round(boot.seconds + res.seconds, 3),
            hashlib.sha256(nubl2).hexdigest(),
        )

    def _step_rom_key(self) -> results.RomKeyBurned:
        """Burn the ROM root key, once everything it depends on is proven: it is none of this
        board's other keys, and the NuBL2 read back from flash verifies with it (so the ROM will
        start it). Slots already holding a key this tool never journaled burning stop the run:
        a planted root key would decide what this board boots forever."""
        xy = self.record(results.Nubl2Fetched).key_xy
        others = {
            "the board identity key": self.record(results.KeyMade).auth_pub,
            "SecureBoot_PUB": self.record(results.SecureBootKey).xy,
            "the RootCA key": self.chain().root_xy(),
        }
        for name, other in others.items():
            if other[-64:] == xy:
                raise VerificationError(
                    f"the service's NuBL2 key is {name}: refusing to make it the ROM root key"
                )
        nubl2 = self._nubl2_image()
        link = self.swd()
        with board_errors("reading NuBL2 back from flash"):
            back = firmware.read_flash(link.memory, layout.NUBL2_BASE, len(nubl2))
        if back != nubl2:
            raise ProvisionError("flash does not hold the checked NuBL2: re-run to burn it again")
        firmware.verify_nubl2_image(back, xy)
        occupied = self._refuse_unexplained_rom_key("stopping before the lock")
        todo = tuple(s for s in ROM_ROOT_SLOTS if s not in occupied)
        if todo:
            self.j.intent("rom_key", {"xy": xy.hex(), "slots": list(todo)})  # before the board acts
            with board_errors("burning the ROM root key to KeyStore OTP slots 0/1"):
                rom_key.burn_rom_root_key(link.memory, xy, todo)  # IRREVERSIBLE
            with board_errors("reading KS_OTPSTS"):
                if rom_key.occupied_slots(link.memory) != ROM_ROOT_SLOTS:
                    raise ProvisionError("KeyStore OTP slots 0/1 do not both read as programmed")
        return results.RomKeyBurned(len(todo), resumed=bool(occupied))

    def _refuse_unexplained_rom_key(self, stopping: str) -> tuple[int, ...]:
        """The ROM slots already in use, if this tool can explain them; ``BoardTampered`` if not.
        Slots this tool journaled burning with the service's key are explained. Without that record
        (a lost journal) only the board can vouch: flash holds the served NuBL2, whose KEYHASH the
        ROM checks against the slots, and the reset board boots through it to firmware answering
        this UID. A planted key fails that, before anything it would decide is written."""
        xy = self.record(results.Nubl2Fetched).key_xy
        link = self.swd()
        with board_errors("reading KS_OTPSTS"):
            occupied = rom_key.occupied_slots(link.memory)
        intent = self.j.intent_of("rom_key")
        if not occupied or (intent is not None and intent.get("xy") == xy.hex()):
            return occupied
        if self._boots_through_served_nubl2():
            self.note("KeyStore OTP slots 0/1 hold a key the ROM boots the served NuBL2 with: keeping it")
            return occupied
        raise BoardTampered(
            f"board tampered: KeyStore OTP slot(s) {', '.join(map(str, occupied))} already hold a ROM "
            f"root key this tool never burned and the board does not boot the served NuBL2; {stopping}"
        )

    def _boots_through_served_nubl2(self) -> bool:
        nubl2 = self._nubl2_image()
        link = self.swd()
        with board_errors("reading NuBL2 back from flash"):
            if firmware.read_flash(link.memory, layout.NUBL2_BASE, len(nubl2)) != nubl2:
                return False
        try:
            self._boot_check()
        except (FirmwareDidNotBoot, VerificationError):
            return False
        return True

    def _step_lock(self) -> results.Locked:
        """Prove the firmware, then lock: the image read back from flash equals the signed image
        (re-burned if a power cut lost part of it), verifies with the key in OTP, and the board,
        reset, answers UID and VERSION on its channel. Only then the lock word is programmed."""
        link = self.swd()
        version, reflashed = "", False
        if link.debugger_has_access():
            signed = self._signed_image()
            firmware.verify_mcuboot_image(signed, self._otp_secure_boot_key())
            nubl2 = self._nubl2_image()
            with board_errors("reading NuBL2 back from flash"):
                if firmware.read_flash(link.memory, layout.NUBL2_BASE, len(nubl2)) != nubl2:
                    raise ProvisionError(
                        "flash does not hold the checked NuBL2 (power cut?): re-run to burn it"
                    )
            with board_errors("reading the firmware back from flash"):
                back = firmware.read_flash(link.memory, layout.APP_BASE, len(signed))
                if back != signed:
                    self.note(
                        "firmware in flash differs from the signed image (power cut?): burning it again"
                    )
                    firmware.burn(link.memory, link.isp(), signed, base=layout.APP_BASE)
                    reflashed = True
                    if firmware.read_flash(link.memory, layout.APP_BASE, len(signed)) != signed:
                        raise ProvisionError(
                            "flash does not hold the signed image even after burning it again"
                        )
            version = self._boot_check()
            with board_errors("enabling the secure lock"):
                link.target.halt()
                enable_secure_lock(
                    link.isp(), ProgramLog(self.j.artifact("otp_program_log.jsonl"))
                )  # IRREVERSIBLE
            link.hardware_reset()  # the part latches its config words at reset: this applies the lock
        if link.debugger_has_access():
            raise ProvisionError("secure lock programmed and applied, but the debugger can still read memory")
        self.locked = True
        self.result.locked = True
        self.report("locked")
        return results.Locked(True, version, reflashed)

    def _boot_check(self) -> str:
        """Reset the (unlocked) board and have its firmware answer UID/VERSION; raise
        ``FirmwareDidNotBoot`` (the board stays unlocked and can be reflashed) otherwise."""
        self.swd().hardware_reset()
        try:
            ch = self.channel()
            uid = ch.uid()
            version = ch.version()
        except BoardUnreachable as exc:
            raise FirmwareDidNotBoot(
                f"the signed firmware did not answer after a reset ({exc}); the board is NOT locked: "
                "provision it again with a working --firmware"
            ) from None
        if uid != self.uid:
            raise VerificationError(
                f"board firmware answers UID {uid.hex().upper()}, expected {self.uid.hex().upper()}"
            )
        return version

    def _step_reset(self) -> results.Booted:
        self.swd().hardware_reset()
        ch = self.channel()
        uid = ch.uid()
        if uid != self.uid:
            raise VerificationError(
                f"board firmware answers UID {uid.hex().upper()}, expected {self.uid.hex().upper()}"
            )
        return results.Booted(ch.version())

    def _step_ecdh(self) -> results.KeyAgreed:
        status = self.svc.status(self.uid)
        if status.get("state") == "key_agreed":
            self.result.key_confirmed = True
            return results.KeyAgreed(True, note="service already holds the agreed key")
        auth_point = self.record(results.KeyMade).auth_pub
        sb_xy = self.record(results.SecureBootKey).xy
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
        return results.KeyAgreed(res.confirmed, res.session_id)

    # -- checks used by the steps ------------------------------------------------------------
    def _check_image_matches_chain(self, image: bytes) -> None:
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

    # -- runner ------------------------------------------------------------------------------
    STEP_FUNCS: ClassVar[dict[str, str]] = {s.id: f"_step_{s.id}" for s in STEPS}

    def run(self) -> ProvisionResult:
        t0 = time.monotonic()
        self._ev("run_start")
        current: Step | None = None
        try:
            if self.checked is None:
                self.checked = preflight(self.opts)
            self.uid = self.identify()
            self.result.uid = self.uid.hex().upper()
            self._ev("identified", detail=self.result.uid)
            with (
                Journal(self.opts.journal_dir, self.uid) as journal,
                ServiceClient(
                    self.opts.server_url, self.opts.tls, insecure_dev=self.opts.insecure_dev
                ) as client,
            ):
                self.journal, self.client = journal, client
                self.result.journal = journal.dir
                for text in journal.notes:
                    self.note(text)
                try:
                    if self.opts.dry_run:
                        self._dry_run()
                    else:
                        if self.locked:
                            self._recover_locked()
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
        except JournalError as exc:
            self._fail(current, 1, str(exc))
        except ProvisionError as exc:
            self._fail(current, exc.exit_code, str(exc))
        except ImportError as exc:
            self._fail(current, 1, f"a NuSec component this step needs is missing: {exc}")
        except Exception as exc:
            log.exception("%s: unexpected failure", self.probe)
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
            why = self._confirm(step)
            if why is None:
                if any(r.id == step.id for r in self.result.steps):
                    return  # recovered just now
                self.result.steps.append(StepRecord(step.id, "skipped"))
                if step.id == "lock":
                    self.result.locked = True
                if step.id == "ecdh":
                    self.result.key_confirmed = True
                self._ev("step_skip", step.id)
                return
            self.note(f"{step.id} is done again: {why}", step.id)
            self.j.forget(step.id)
        self._ev("step_start", step.id)
        before = self.link.memory.bytes if self.link is not None and self.link.mem is not None else 0
        self._step_id, self._step_bytes0 = step.id, before
        t = time.monotonic()
        self.j.start(step.id)
        rec: results.StepResult = getattr(self, self.STEP_FUNCS[step.id])()
        self.j.done(step.id, rec.to_json())
        after = self.link.memory.bytes if self.link is not None and self.link.mem is not None else 0
        sr = StepRecord(step.id, "done", time.monotonic() - t, after - before, rec.summary())
        self.result.steps = [r for r in self.result.steps if r.id != step.id] + [sr]
        self._ev("step_done", step.id, seconds=sr.seconds, probe_bytes=sr.probe_bytes)

    def _dry_run(self) -> None:
        """Read-only: what the next steps would write. No POST to the service, no board write."""
        batch_image = None
        if self.opts.mode == "batch":
            assert self.opts.batch_dir is not None
            peek = batch.peek(self.opts.batch_dir, self.uid)
            batch_image, c = peek.image, peek.claim
            self.result.batch_claim = c
            note = "claimed earlier by this board" if c.claimed else "would be claimed (not claimed)"
            self.note(f"batch image {c.index} of batch {c.batch_id}: {note}")
        for step in STEPS:
            if self.j.is_done(step.id) and self._confirm(step) is None:
                self.result.steps.append(StepRecord(step.id, "skipped"))
                continue
            detail = step.seed
            if step.id == "otp_ca" and not self.locked:
                image = otp.assemble(
                    root_cert=self.chain().root_der,
                    root_pub=self.chain().root_xy(),
                    ica_cert=self.chain().ica_der,
                    uid=self.uid,
                ) if batch_image is None else batch_image  # fmt: skip
                self._check_image_matches_chain(image)
                with board_errors("reading OTP for the dry run"):
                    plan = self.writer().write_entries(image, otp.entries_of(*OTP_CA_FIELDS), dry_run=True)
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

    def _collect_artifacts(self) -> None:
        if self.result.batch_claim is None:
            self.result.batch_claim = batch.saved_claim(self.j)
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
    insecure_dev: bool = False,
) -> ProvisionResult:
    """Provision one board end to end (or resume it). Never raises for board/service problems:
    the result says ``ok``, ``exit_code`` and ``error``; artifact paths are filled in."""
    opts = RunOptions(
        server_url,
        firmware_path,
        tls,
        journal_dir,
        mode,
        batch_dir,
        dry_run,
        channel_factory,
        insecure_dev=insecure_dev,
    )
    return BoardRun(probe_id, opts, on_event).run()


def provision_boards(
    probe_ids: list[str],
    opts: RunOptions,
    on_event: EventSink | None = None,
    checked: pre.Preflight | None = None,
) -> list[ProvisionResult]:
    """Several boards at once, one thread each; a failure on one board never touches another.
    Preflight runs once for all of them (its failure fails every board before any is opened)."""
    norm = [normalise_probe_id(p) for p in probe_ids]
    if len(set(norm)) != len(norm):
        raise UsageError("the same --probe is given twice")
    if checked is None:
        try:
            checked = preflight(opts)
        except ProvisionError as exc:
            return [ProvisionResult(probe=p, exit_code=exc.exit_code, error=str(exc)) for p in norm]
    results_: dict[str, ProvisionResult] = {}

    def one(pid: str) -> None:
        results_[pid] = BoardRun(pid, opts, on_event, checked).run()

    threads = [threading.Thread(target=one, args=(pid,), name=f"provision-{pid}") for pid in norm]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [results_[p] for p in norm]


from nusec.provision.inspect import InspectResult, inspect_board  # noqa: E402 - re-exported for the demo

__all__ = [
    "BatchClaim",
    "BoardRun",
    "InspectResult",
    "ProvisionResult",
    "RunOptions",
    "check_probe_ids",
    "inspect_board",
    "preflight",
    "provision_board",
    "provision_boards",
]
