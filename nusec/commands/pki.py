"""``nusec pki``: the CA chores after the ceremony, done with the ICA key in the HSM.

Why a CLI: after ``nusec ceremony run`` the OEM needs the service's TLS server certificate,
operators' mutual-TLS client certificates, revocations and CRLs; before this group only Python
helpers (``pki.service.credentials``, ``pki.ca.issue_crl``, ``pki.store``) could do that.

Every sub-command turns a known failure into one ``error: ...`` line on stderr and exit code 1
(with ``--json`` stdout also gets ``{"ok": false, "error": ...}``); outputs are checked before
the HSM signs anything and never overwritten. The HSM PIN comes from ``NUSEC_HSM_PIN``,
``NUSEC_HSM_PIN_FILE`` or the URI's ``pin-source``, never from the command line. Heavy imports
stay inside the functions so ``nusec --help`` stays fast.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nusec.commands.failure import fail, first_line, os_error_message

if TYPE_CHECKING:
    from cryptography import x509
    from sqlalchemy.orm import Session

    from pki.ca import Issuer
    from pki.service.db import Store

app = typer.Typer(
    name="pki",
    help=(
        "CA chores with the ICA key in the HSM: TLS credentials for the service and its operators, "
        "revocation, CRLs, the list of issued certificates.\n\n"
        "After `nusec ceremony run`: `server-cert` + `operator-cert` -> `nusec serve`; later "
        "`revoke` + `crl` when a board or operator must stop being trusted. PIN: env NUSEC_HSM_PIN "
        "(or NUSEC_HSM_PIN_FILE, or pin-source= in the URI), never on the command line.\n\n"
        "Example: nusec pki list --db-url sqlite:///nusec-service.db --json"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Revocation reasons accepted by ``revoke`` (RFC 5280 CRLReason names). certificateHold is not
#: offered: NuSec revocations are permanent (no removeFromCRL); cACompromise/aACompromise are
#: not reasons for an end-entity certificate.
REVOKE_REASONS = (
    "unspecified",
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "privilegeWithdrawn",
)
ROLES = ("operator", "admin")
#: Audit role of actions taken from this CLI (it holds the HSM PIN, so it acts as an admin).
CLI_ROLE = "admin"


#: ``on_issued`` callback of ``pki.service.credentials``.
IssuedHook = Callable[["x509.Certificate"], None]


class PkiCliError(Exception):
    """Bad input to a ``nusec pki`` command; the message is the one-line error."""


JsonOpt = Annotated[bool, typer.Option("--json", help="End with one JSON object on stdout.")]
HsmUriOpt = Annotated[
    str,
    typer.Option(
        "--hsm-uri",
        envvar="NUSEC_HSM_URI",
        help="pkcs11: URI of the ICA key, e.g. 'pkcs11:token=nusec-oem;object=ica'.",
    ),
]
IcaCertOpt = Annotated[
    Path, typer.Option("--ica-cert", envvar="NUSEC_ICA_CERT", help="ICA certificate (PEM) of that key.")
]
RootCertOpt = Annotated[
    Path, typer.Option("--root-cert", envvar="NUSEC_ROOT_CERT", help="RootCA certificate (PEM).")
]
DbUrlOpt = Annotated[
    str,
    typer.Option(
        "--db-url",
        envvar="NUSEC_SERVICE_DB_URL",
        help="SQLAlchemy URL of the service's database, e.g. sqlite:///nusec-service.db.",
    ),
]
RecordDbOpt = Annotated[
    str | None,
    typer.Option(
        "--db-url",
        envvar="NUSEC_SERVICE_DB_URL",
        help="Also record the certificate in this database (then `list`/`revoke`/`crl` know it).",
    ),
]


# --- plumbing -------------------------------------------------------------------------------------


@contextmanager
def _one_line_errors(json_out: bool) -> Iterator[None]:
    """Known failures become one ``error:`` line and exit 1; a traceback would hide the cause."""
    from sqlalchemy.exc import SQLAlchemyError

    from pki.errors import PkiError
    from pki.service.config import ConfigError

    try:
        yield
    except (PkiCliError, PkiError, ConfigError) as exc:
        fail(first_line(exc), json_out)
    except SQLAlchemyError as exc:
        # The driver's message may carry the SQL and parameters; the class and origin name the problem.
        origin = str(getattr(exc, "orig", "") or "").splitlines()[0:1]
        fail(f"database: {type(exc).__name__}{': ' + origin[0] if origin else ''}", json_out)
    except OSError as exc:
        fail(os_error_message(exc), json_out)


def _emit(json_out: bool, doc: dict[str, Any], text: str) -> None:
    typer.echo(json.dumps({"ok": True, **doc}) if json_out else text)


def _load_cert(path: Path, what: str) -> x509.Certificate:
    from cryptography import x509

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PkiCliError(f"{what}: cannot read {path}: {exc.strerror}") from None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise PkiCliError(f"{what}: {path} is not a PEM certificate") from None


def _check_issued_by(child: x509.Certificate, parent: x509.Certificate, message: str) -> None:
    from cryptography.exceptions import InvalidSignature

    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        raise PkiCliError(message) from None


@contextmanager
def _ica_issuer(hsm_uri: str, ica_cert: Path, root_cert: Path | None = None) -> Iterator[Issuer]:
    """The ICA as an ``Issuer``: URI and PIN source checked, certificates read and chained, the HSM
    key matched against the ICA certificate, all before anything is signed."""
    from pki.ca import Issuer
    from pki.hsm import open_backend, parse_pkcs11_uri, resolve_pin
    from pki.hsm.roles import issuer_urls

    uri = parse_pkcs11_uri(hsm_uri)
    if not uri.token or not uri.object:
        raise PkiCliError("--hsm-uri must name the token and the ICA key (pkcs11:token=...;object=...)")
    if not Path(uri.module()).is_file():
        raise PkiCliError(f"--hsm-uri: PKCS#11 module {uri.module()} not found")
    resolve_pin(uri)  # fail on a missing PIN source before anything else (the value is not kept)
    ica = _load_cert(ica_cert, "--ica-cert")
    if root_cert is not None:
        root = _load_cert(root_cert, "--root-cert")
        _check_issued_by(ica, root, f"--ica-cert {ica_cert} is not issued by --root-cert {root_cert}")
    backend = open_backend(uri)
    try:
        yield Issuer(backend, uri.object, ica, *issuer_urls(backend, uri.object)).check()  # CRL DP/AIA
    finally:
        backend.close()


def _sqlite_path(db_url: str) -> Path | None:
    """The file of a ``sqlite:///FILE`` URL (None for other databases and in-memory SQLite)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(db_url)
    except ArgumentError:
        raise PkiCliError(f"--db-url: {db_url!r} is not an SQLAlchemy URL") from None
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


@contextmanager
def _store(db_url: str) -> Iterator[Store]:
    """The service database through the writers' layer the service uses (``pki.service.db.Store``:
    audit appends under its lock). It must be migrated already: migrations run only from
    ``nusec db upgrade``, never on the side."""
    from pki.service.db import Store

    path = _sqlite_path(db_url)
    if path is not None and not path.is_file():
        raise PkiCliError(
            f"--db-url: database file {path} does not exist (create it with `nusec db upgrade`)"
        )
    opened = Store.open(db_url)
    try:
        yield opened
    finally:
        opened.close()


def _actor() -> str:
    try:
        import getpass

        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _audit(session: Session, action: str, subject: str, detail: dict[str, Any]) -> None:
    """Append to the service's hash-chained audit log, in the caller's ``Store.write`` transaction."""
    from pki.service import audit

    audit.append(session, actor=_actor(), role=CLI_ROLE, action=action, subject=subject, detail=detail)


def _parse_serial(text: str) -> int:
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    if not cleaned or not re.fullmatch(r"[0-9a-f]{1,40}", cleaned) or int(cleaned, 16) == 0:
        raise PkiCliError(f"serial {text!r} is not a hexadecimal certificate serial")
    return int(cleaned, 16)


def _file_stem(name: str) -> str:
    stem = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.")
    if not stem:
        raise PkiCliError(f"operator name {name!r} gives no usable file name; pass --file-stem")
    return stem


def _iso(value: dt.datetime) -> str:
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()


@contextmanager
def _recording(
    db_url: str | None, profile: str, unique_cn: str | None = None
) -> Iterator[tuple[IssuedHook | None, list[Path]]]:
    """An ``on_issued`` hook recording the certificate (and an audit row) in the store, committed
    once the caller's files are written; the caller lists those files in the yielded list so a
    failed commit removes them. Without ``db_url`` there is no hook. ``unique_cn``: refuse (before
    anything is signed) if a live certificate of ``profile`` already carries this CN."""
    written: list[Path] = []
    if db_url is None:
        yield None, written
        return
    from pki import store

    try:
        with _store(db_url) as opened, opened.write() as session:  # commits on leaving
            if unique_cn is not None:
                clash = store.live_certificates_with_cn(session, profile, unique_cn)
                if clash:
                    raise PkiCliError(
                        f"--name {unique_cn!r}: a live {profile} certificate with this CN exists "
                        f"(serial {clash[0].serial}); revoke it first (`nusec pki revoke`)"
                    )

            def hook(cert: x509.Certificate) -> None:
                row = store.record_certificate(session, cert, profile)
                _audit(session, f"cli.issue-{profile}", cert.subject.rfc4514_string(), {"serial": row.serial})

            yield hook, written
    except BaseException:
        for path in written:  # nothing was recorded: the files must not outlive that
            path.unlink(missing_ok=True)
        raise


# --- commands -------------------------------------------------------------------------------------


SERVER_CERT_HELP = """Issue the service's TLS server key and certificate (profile
service-tls-server, signed by the ICA key in the HSM).

Writes into --out (created if missing; existing files are never overwritten):

- server.pem: the certificate, for `nusec serve --tls-cert`
- server.key: its P-256 key (mode 0600), for `nusec serve --tls-key`
- ca-bundle.pem: ICA + RootCA; clients verify the server with it

Its subjectAltName lists every --ip and --dns (default: 127.0.0.1); clients must reach the
service by one of them. pkilint refuses a dNSName without a dot (e.g. localhost): use --ip
for loopback. With --db-url the certificate is also recorded (for `list`/`revoke`).

Example:

    export NUSEC_HSM_PIN_FILE=/secure/ica.pin
    nusec pki server-cert --hsm-uri 'pkcs11:token=nusec-oem;object=ica' \\
        --ica-cert ceremony/ica.pem --root-cert ceremony/root-ca.pem \\
        --out tls --ip 10.0.0.5 --dns oem.example.com
"""


@app.command("server-cert", help=SERVER_CERT_HELP)
def server_cert_cmd(
    hsm_uri: HsmUriOpt,
    ica_cert: IcaCertOpt,
    root_cert: RootCertOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for server.pem, server.key, ca-bundle.pem.")],
    ip: Annotated[
        list[str] | None, typer.Option("--ip", help="IP address in subjectAltName (repeatable).")
    ] = None,
    dns: Annotated[
        list[str] | None, typer.Option("--dns", help="DNS name in subjectAltName (repeatable).")
    ] = None,
    db_url: RecordDbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    from pki.ca import SERVICE_TLS_SERVER
    from pki.service.credentials import issue_server_credentials

    ips = tuple(ip or ())
    names = tuple(dns or ())
    if not ips and not names:
        ips = ("127.0.0.1",)
    with _one_line_errors(json_out):
        with (
            _ica_issuer(hsm_uri, ica_cert, root_cert) as ica,
            _recording(db_url, SERVICE_TLS_SERVER.name) as (hook, written),
        ):
            root = _load_cert(root_cert, "--root-cert")
            creds = issue_server_credentials(
                ica, root, out, ip_addresses=ips, dns_names=names, on_issued=hook
            )
            written += [creds.cert, creds.key]
    cert = creds.certificate
    doc = {
        "cert": str(creds.cert),
        "key": str(creds.key),
        "ca_bundle": str(creds.ca_bundle),
        "serial": format(cert.serial_number, "x"),
        "subject": cert.subject.rfc4514_string(),
        "ip_addresses": list(ips),
        "dns_names": list(names),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "recorded": db_url is not None,
    }
    _emit(
        json_out,
        doc,
        f"wrote {creds.cert} (serial {doc['serial']}, SAN {', '.join(ips + names)}, "
        f"until {cert.not_valid_after_utc:%Y-%m-%d}), {creds.key} (0600), {creds.ca_bundle}",
    )


OPERATOR_CERT_HELP = """Issue a mutual-TLS client key and certificate for one operator
(profile operator-client, signed by the ICA key in the HSM). The role, operator or admin, goes
into the subject OU; the service reads it from there (admin may also read the audit log).

Writes into --out (created if missing; never overwrites):

- STEM.pem: the client certificate (STEM: --file-stem, default the name in lower case)
- STEM.key: its P-256 key (mode 0600)
- ca-bundle.pem: ICA + RootCA to verify the service (kept if already there, same content)

Hand the three files to the operator. With --db-url the certificate is also recorded (then
`revoke` withdraws it: the service refuses it from its next request on; `crl` lists it).

Example:

    export NUSEC_HSM_PIN_FILE=/secure/ica.pin
    nusec pki operator-cert --hsm-uri 'pkcs11:token=nusec-oem;object=ica' \\
        --ica-cert ceremony/ica.pem --root-cert ceremony/root-ca.pem \\
        --name alice --role operator --out operators/alice
"""


@app.command("operator-cert", help=OPERATOR_CERT_HELP)
def operator_cert_cmd(
    hsm_uri: HsmUriOpt,
    ica_cert: IcaCertOpt,
    root_cert: RootCertOpt,
    name: Annotated[str, typer.Option("--name", help="Operator name (subject CN, 1..64 characters).")],
    role: Annotated[str, typer.Option("--role", help="operator or admin (subject OU).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for STEM.pem, STEM.key, ca-bundle.pem.")],
    file_stem: Annotated[
        str | None, typer.Option("--file-stem", help="File name stem (default: from --name).")
    ] = None,
    organization: Annotated[
        str | None, typer.Option("--organization", help="O= in the subject (optional).")
    ] = None,
    db_url: RecordDbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    from pki.ca import OPERATOR_CLIENT, Role
    from pki.service.credentials import issue_client_credentials

    with _one_line_errors(json_out):
        if role not in ROLES:
            raise PkiCliError(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
        if not 1 <= len(name) <= 64:
            raise PkiCliError("--name must be 1..64 characters")
        stem = _file_stem(file_stem if file_stem is not None else name)
        with (
            _ica_issuer(hsm_uri, ica_cert, root_cert) as ica,
            _recording(db_url, OPERATOR_CLIENT.name, unique_cn=name) as (hook, written),
        ):
            creds = issue_client_credentials(
                ica,
                _load_cert(root_cert, "--root-cert"),
                out,
                name=name,
                role=Role(role),
                stem=stem,
                organization=organization,
                on_issued=hook,
            )
            written += [creds.cert, creds.key]
    cert = creds.certificate
    assert cert is not None  # issue_client_credentials always sets it
    doc = {
        "cert": str(creds.cert),
        "key": str(creds.key),
        "ca_bundle": str(creds.ca_bundle),
        "serial": format(cert.serial_number, "x"),
        "subject": cert.subject.rfc4514_string(),
        "role": role,
        "not_after": cert.not_valid_after_utc.isoformat(),
        "recorded": db_url is not None,
    }
    _emit(
        json_out,
        doc,
        f"wrote {creds.cert} ({doc['subject']}, serial {doc['serial']}, "
        f"until {cert.not_valid_after_utc:%Y-%m-%d}), {creds.key} (0600), {creds.ca_bundle}",
    )


REVOKE_HELP = """Mark an issued certificate revoked in the service's database (the
same --db-url `nusec serve` uses). It is listed from the next `nusec pki crl` on; revocation
is permanent and is appended to the service's audit log.

SERIAL is hexadecimal, any case, colons allowed (as `nusec pki list` or `openssl x509 -noout
-serial` print it). An unknown serial is refused (exit 1); revoking again changes nothing
(exit 0, "already revoked"). --reason: unspecified (default; no reason code in the CRL),
keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn.

Example:

    nusec pki revoke --db-url sqlite:///nusec-service.db 4c1f...9e --reason keyCompromise
"""


@app.command("revoke", help=REVOKE_HELP)
def revoke_cmd(
    serial: Annotated[str, typer.Argument(help="Serial number of the certificate (hex).")],
    db_url: DbUrlOpt,
    reason: Annotated[str, typer.Option("--reason", help="RFC 5280 reason name.")] = "unspecified",
    json_out: JsonOpt = False,
) -> None:
    from cryptography import x509
    from sqlalchemy import select

    from pki import store

    with _one_line_errors(json_out):
        if reason not in REVOKE_REASONS:
            raise PkiCliError(f"--reason must be one of {', '.join(REVOKE_REASONS)}, not {reason!r}")
        number = _parse_serial(serial)
        flag = x509.ReasonFlags(reason)
        with _store(db_url) as opened, opened.write() as session:
            cert = store.find_certificate(session, number)
            if cert is None:
                raise PkiCliError(f"no certificate with serial {store.serial_hex(number)} is recorded")
            before = session.scalar(
                select(store.Revocation).where(store.Revocation.certificate_id == cert.id)
            )
            row = before or store.revoke_certificate(session, number, reason=flag)
            if before is None:
                _audit(
                    session,
                    "cli.revoke",
                    cert.subject,
                    {"serial": cert.serial, "profile": cert.profile, "reason": reason},
                )
    doc = {
        "serial": cert.serial,
        "subject": cert.subject,
        "profile": cert.profile,
        "revoked_at": _iso(row.revoked_at),
        "reason": row.reason or "unspecified",
        "already_revoked": before is not None,
    }
    if before is not None:
        text = f"{cert.serial} ({cert.subject}) was already revoked at {doc['revoked_at']} ({doc['reason']})"
    else:
        text = f"revoked {cert.serial} ({cert.subject}, {cert.profile}): {doc['reason']}; issue a new CRL"
    _emit(json_out, doc, text)


CRL_HELP = """Issue a CRL of every revoked certificate this ICA issued (boards, and
operator/server certificates recorded with --db-url), signed by the ICA key in the HSM and
linted with pkilint before and after signing. The CRL number is the next one in the
database, where the CRL is recorded too.

Writes --out (PEM; never overwrites: give each CRL its own name). Publish it where relying
parties fetch it; they check a board with
`openssl verify -crl_check -CRLfile crl.pem -CAfile root-ca.pem -untrusted ica.pem board.pem`.

Example:

    export NUSEC_HSM_PIN_FILE=/secure/ica.pin
    nusec pki crl --hsm-uri 'pkcs11:token=nusec-oem;object=ica' \\
        --ica-cert ceremony/ica.pem --db-url sqlite:///nusec-service.db \\
        --out crl-0007.pem --next-update-days 7
"""


@app.command("crl", help=CRL_HELP)
def crl_cmd(
    hsm_uri: HsmUriOpt,
    ica_cert: IcaCertOpt,
    db_url: DbUrlOpt,
    out: Annotated[Path, typer.Option("--out", help="New PEM file for the CRL.")],
    next_update_days: Annotated[
        int, typer.Option("--next-update-days", help="Days until the next CRL is due (1..366).")
    ] = 7,
    json_out: JsonOpt = False,
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from sqlalchemy import select

    from pki import store
    from pki.ca import RevokedEntry, issue_crl

    with _one_line_errors(json_out):
        if not 1 <= next_update_days <= 366:
            raise PkiCliError("--next-update-days must be between 1 and 366")
        if out.exists() or out.is_symlink():
            raise PkiCliError(f"{out} already exists; refusing to overwrite")
        if not out.parent.is_dir():
            raise PkiCliError(f"--out: folder {out.parent} does not exist")
        with _ica_issuer(hsm_uri, ica_cert) as ica, _store(db_url) as opened:
            issuer_name = ica.certificate.subject.rfc4514_string()
            with opened.write(before_commit=None) as session:
                rows = session.execute(
                    select(store.Revocation, store.IssuedCertificate)
                    .join(
                        store.IssuedCertificate, store.Revocation.certificate_id == store.IssuedCertificate.id
                    )
                    .where(store.IssuedCertificate.issuer == issuer_name)
                    .order_by(store.Revocation.id)
                ).all()
                entries = [
                    RevokedEntry(
                        serial=int(rev.serial, 16),
                        revoked_at=rev.revoked_at
                        if rev.revoked_at.tzinfo
                        else rev.revoked_at.replace(tzinfo=dt.UTC),
                        reason=x509.ReasonFlags(rev.reason) if rev.reason else None,
                    )
                    for rev, _cert in rows
                ]
                number = store.next_crl_number(session)
                crl = issue_crl(
                    ica, entries, crl_number=number, next_update=dt.timedelta(days=next_update_days)
                )
                store.record_crl(session, crl)
                _audit(
                    session,
                    "cli.crl",
                    issuer_name,
                    {"crl_number": number, "revoked": len(entries)},
                )
                session.flush()
                _publish(out, crl.public_bytes(serialization.Encoding.PEM))  # committed on leaving
    doc = {
        "crl": str(out),
        "crl_number": number,
        "revoked": len(entries),
        "serials": [format(e.serial, "x") for e in entries],
        "this_update": crl.last_update_utc.isoformat(),
        "next_update": crl.next_update_utc.isoformat() if crl.next_update_utc else None,
    }
    _emit(
        json_out,
        doc,
        f"wrote {out}: CRL number {number}, {len(entries)} revoked, next update {doc['next_update']}",
    )


def _publish(out: Path, data: bytes) -> None:
    """Write ``out`` atomically, failing if it exists (even if it appeared meanwhile)."""
    from pki import files

    try:
        files.write_atomic(out, data, overwrite=False)
    except FileExistsError:
        raise PkiCliError(f"{out} already exists; refusing to overwrite") from None


LIST_HELP = """List the certificates recorded in the service's database: serial,
profile, notAfter, revoked or valid, subject. Board certificates are recorded by the service;
server and operator certificates when `server-cert`/`operator-cert` got --db-url.

Example:

    nusec pki list --db-url sqlite:///nusec-service.db
    nusec pki list --db-url sqlite:///nusec-service.db --uid 0123456789ABCDEF01234567 --json
"""


@app.command("list", help=LIST_HELP)
def list_cmd(
    db_url: DbUrlOpt,
    uid: Annotated[
        str | None, typer.Option("--uid", help="Only this board's certificates (24 hex digits).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    from sqlalchemy import select

    from pki import store

    with _one_line_errors(json_out):
        raw_uid: bytes | None = None
        if uid is not None:
            try:
                raw_uid = bytes.fromhex(uid)
            except ValueError:
                raw_uid = b""
            if len(raw_uid) != 12:
                raise PkiCliError(f"--uid {uid!r} is not a board UID (24 hex digits)")
        with _store(db_url) as opened, opened.sessions() as session:
            if raw_uid is not None:
                certs = store.certificates_for_board(session, raw_uid)
            else:
                certs = list(
                    session.scalars(select(store.IssuedCertificate).order_by(store.IssuedCertificate.id))
                )
            revoked = {r.certificate_id: r for r in session.scalars(select(store.Revocation))}
    items = []
    for cert in certs:
        rev = revoked.get(cert.id)
        items.append(
            {
                "serial": cert.serial,
                "subject": cert.subject,
                "profile": cert.profile,
                "not_after": _iso(cert.not_after),
                "revoked": rev is not None,
                "revoked_at": _iso(rev.revoked_at) if rev is not None else None,
                "reason": (rev.reason or "unspecified") if rev is not None else None,
            }
        )
    if json_out:
        typer.echo(json.dumps({"ok": True, "certificates": items}))
        return
    if not items:
        typer.echo("no certificates recorded" + (f" for board {uid}" if uid else ""))
        return
    for item in items:
        state = f"revoked ({item['reason']})" if item["revoked"] else "valid"
        typer.echo(
            f"{item['serial']}  {item['profile']:<18}  until {str(item['not_after'])[:10]}  {state:<24}  "
            f"{item['subject']}"
        )
