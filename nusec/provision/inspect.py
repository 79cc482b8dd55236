"""``nusec inspect``: what a board holds, read back and checked against the chain.

Before the secure lock the debugger reads everything: OTP (all 256 entries and their lock words),
the lock words of the config area and the firmware in flash; each is checked (OTP image parses
and its digest matches, UID field equals FMC READ_UID, RootCA key/hash equal the trusted RootCA,
the ICA and board certificates in OTP chain to it — also through ``openssl verify`` — and the
firmware verifies with the secure-boot key in OTP). After the lock the debugger only sees the
debug port; the report says so and adds what is still visible: the firmware's answers on its
UART channel and, offline, the OTP dump kept in the journal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from nuboard import layout
from nucore import mcuboot
from nusec.provision import certs, firmware, rom_key
from nusec.provision.errors import BoardUnreachable, ProvisionError
from nusec.provision.journal import uid_for_probe
from nusec.provision.link import SwdLink, board_errors, open_channel
from nusec.provision.lock import read_lock_state
from nusec.provision.otp_writer import OTP_ENTRIES, OTP_LOCK_BASE, OtpWriter, ProgramLog


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class InspectResult:
    probe: str
    uid: str | None = None
    debugger_access: bool = False
    locked: bool | None = None
    otp_written_entries: int = 0
    otp_locked_entries: int = 0
    checks: list[Check] = field(default_factory=list)
    visible_after_lock: list[str] = field(default_factory=list)
    firmware: str | None = None
    otp_dump: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(name, ok, detail))


def _anchor(ca: Path | None) -> x509.Certificate | None:
    if ca is None:
        return None
    roots = [c for c in certs.load_pem_certs(ca.read_bytes()) if c.issuer == c.subject]
    return roots[0] if roots else None


def check_otp_image(
    res: InspectResult, image: bytes, uid: bytes | None, anchor: x509.Certificate | None
) -> None:
    """Every check of an OTP image that needs no board (also used on a journal dump)."""
    from nucore import otp

    try:
        parsed = otp.parse(image, check_digest=False)
    except otp.OtpError as exc:
        res.check("otp image parses", False, str(exc))
        return
    res.check("otp image parses", True, f"layout v{parsed.version}, flags {int(parsed.flags)}")
    sb_blank = parsed.secure_boot_pub == b"\xff" * 64
    res.check(
        "otp digest", parsed.digest_ok or sb_blank, "matches" if parsed.digest_ok else "not yet written"
    )
    # A count-mode batch image carries a blank UID field, covered by its digest as such; the claim
    # record and the board certificate bind it to the board (docs/provisioning.md, "Batch mode").
    batch_blank_uid = parsed.uid == b"\xff" * len(parsed.uid) and bool(
        int(parsed.flags) & int(otp.OtpFlags.BATCH)
    )
    if uid is not None:
        what = "blank (count-mode batch image)" if batch_blank_uid else parsed.uid.hex().upper()
        res.check("otp uid field", parsed.uid == uid or batch_blank_uid, what)
    ica = None
    try:
        ica = certs.load_cert(parsed.ica_cert)
    except ProvisionError as exc:
        res.check("ica certificate in otp", False, str(exc))
    if anchor is not None:
        res.check("root key = trusted RootCA", parsed.root_pub == certs.xy_of(anchor.public_key()))
        res.check("root hash = trusted RootCA", parsed.root_cert_sha256 == certs.sha256_der(anchor))
        if ica is not None:
            try:
                chain = certs.check_chain(
                    anchor,
                    anchor.public_bytes(serialization.Encoding.PEM).decode(),
                    ica.public_bytes(serialization.Encoding.PEM).decode(),
                )
                res.check("ica certificate chains to RootCA", True, ica.subject.rfc4514_string())
            except ProvisionError as exc:
                chain = None
                res.check("ica certificate chains to RootCA", False, str(exc))
            if parsed.board_cert is not None and chain is not None:
                try:
                    leaf = certs.load_cert(parsed.board_cert)
                    key_xy = certs.xy_of(leaf.public_key())
                    subject_uid = uid if uid is not None and batch_blank_uid else parsed.uid
                    certs.check_board_cert(chain, parsed.board_cert, subject_uid, key_xy)
                    ok, msg = certs.openssl_verify(chain.root, chain.ica, leaf)
                    res.check("board certificate chains (openssl verify)", ok, msg)
                except ProvisionError as exc:
                    res.check("board certificate chains", False, str(exc))
    if parsed.board_cert is None:
        res.check("board certificate present", False, "OTP entries 32-127 are blank")


def inspect_board(
    probe_id: str,
    *,
    ca: Path | None = None,
    journal_dir: Path | None = None,
    uart_port: str | None = None,
) -> InspectResult:
    """Read back and check everything the board shows. Never writes to the board."""
    res = InspectResult(probe=probe_id)
    anchor = _anchor(ca)
    link = SwdLink(probe_id)
    try:
        link.open()
        res.debugger_access = link.debugger_has_access()
        if res.debugger_access:
            _inspect_open(res, link, anchor)
        else:
            res.locked = True
            res.visible_after_lock.append("debug port and core ids (memory, OTP and flash reads are refused)")
            uid = uid_for_probe(journal_dir, probe_id) if journal_dir else None
            try:
                ch = open_channel(link, probe_id, uart_port)
                uid = ch.uid()
                res.firmware = ch.version()
                res.visible_after_lock.append(f"firmware on UART: {res.firmware}")
                res.check("board boots its signed firmware", True, res.firmware)
            except ProvisionError as exc:
                res.check("board boots its signed firmware", False, str(exc))
            res.uid = uid.hex().upper() if uid else None
            dump = journal_dir / res.uid / "otp_dump.bin" if journal_dir and res.uid else None
            if dump is not None and dump.is_file():
                res.visible_after_lock.append(f"journal OTP dump {dump} (checked offline)")
                res.otp_dump = str(dump)
                check_otp_image(res, dump.read_bytes(), uid, anchor)
    except ProvisionError as exc:
        res.error = str(exc)
    finally:
        link.close()
    return res


def _inspect_open(res: InspectResult, link: SwdLink, anchor: x509.Certificate | None) -> None:
    isp = link.isp()
    with board_errors("reading the board"):
        uid = isp.read_uid()
        res.uid = uid.hex().upper()
        w = OtpWriter(isp, ProgramLog())
        image = w.read_image()
        locks = [isp.read(OTP_LOCK_BASE + 4 * n) != 0xFFFF_FFFF for n in range(OTP_ENTRIES)]
        lock = read_lock_state(isp)
        res.locked = lock.locked
    res.otp_written_entries = sum(1 for n in range(OTP_ENTRIES) if image[8 * n : 8 * n + 8] != b"\xff" * 8)
    res.otp_locked_entries = sum(locks)
    unlocked_written = [
        n for n in range(OTP_ENTRIES) if image[8 * n : 8 * n + 8] != b"\xff" * 8 and not locks[n]
    ]
    res.check("written OTP entries are locked", not unlocked_written, f"unlocked: {unlocked_written[:8]}")
    if res.otp_written_entries == 0:
        res.check("otp written", False, "OTP is blank")
        return
    check_otp_image(res, image, uid, anchor)
    sb = image[0x88:0xC8]
    if sb != b"\xff" * 64:
        with board_errors("reading flash"):
            head = firmware.read_flash(link.memory, layout.APP_BASE, 32)
            try:
                size = min(mcuboot.parse_header(head, complete=False).body_end + 0x400, 0x40000)
                fw = firmware.read_flash(link.memory, layout.APP_BASE, size)
            except mcuboot.McubootError:
                fw = head  # verify_mcuboot_image names what is wrong
        try:
            info = firmware.verify_mcuboot_image(fw, sb)
            res.check("firmware in flash verifies with OTP secure-boot key", True, f"v{info.version}")
        except ProvisionError as exc:
            res.check("firmware in flash verifies with OTP secure-boot key", False, str(exc))
        with board_errors("reading the KeyStore"):
            occupied = rom_key.occupied_slots(link.memory)
        res.check(
            "ROM root key in KeyStore OTP slots 0/1",
            occupied == rom_key.ROM_ROOT_SLOTS,
            f"occupied: {list(occupied)}",
        )


__all__ = ["BoardUnreachable", "InspectResult", "check_otp_image", "inspect_board"]
