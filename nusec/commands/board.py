"""``nusec board``: a board's state on the OEM service, and the admin operations on it that the
service keeps out of the provisioning flow (docs/service-api.md, "Board state machine").

Why a command: re-issuing a board certificate, granting a board to another operator and
unlocking a board's key agreement are rare, deliberate acts with a reason that lands in the
audit log; an admin should not need to hand-craft HTTPS requests for them. Everything goes over
HTTPS with the caller's client certificate, like the desktop tool.

Exit codes (docs/exit-codes.md): 0 done, 1 error (one ``error:`` line; with ``--json`` a last line
``{"ok": false, "error": ...}``), 4 the service refused (its problem ``type`` and ``detail``
printed; with ``--json`` ``{"ok": false, "status": ..., "problem": ...}``), 2 bad input.
"""

from __future__ import annotations

import json
import re
import ssl
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from nusec.commands.failure import fail, first_line, os_error_message, usage

EXIT_REFUSED = 4

app = typer.Typer(
    name="board",
    help=(
        "A board on the OEM service: its state (any operator who may see it), and the admin "
        "operations re-issue, grant and reset-key-agreement, each with a reason for the audit log.\n\n"
        "Example: `nusec board reissue 0123456789ABCDEF01234567 --csr board.csr.pem --reason "
        '"KeyGen re-run after a power cut" --server https://127.0.0.1:8443 --ca ca-bundle.pem '
        "--client-cert admin.pem --client-key admin.key`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

UidArg = Annotated[str, typer.Argument(help="Board UID, 24 hex digits.")]
Server = Annotated[str, typer.Option("--server", help="Service URL, e.g. https://127.0.0.1:8443.")]
Ca = Annotated[Path, typer.Option("--ca", help="CA bundle the service's certificate chains to (PEM).")]
ClientCert = Annotated[Path, typer.Option("--client-cert", help="Your client certificate (PEM).")]
ClientKey = Annotated[Path, typer.Option("--client-key", help="Its private key (PEM).")]
Reason = Annotated[str, typer.Option("--reason", help="Why (3-500 characters; written to the audit log).")]
JsonOut = Annotated[bool, typer.Option("--json", help="One JSON line on stdout.")]


def _uid(text: str, json_out: bool) -> str:
    if not re.fullmatch(r"[0-9A-Fa-f]{24}", text):
        usage(f"UID {text!r} is not 24 hex digits", json_out)
    return text.upper()


def _refused(response: Any, json_out: bool) -> NoReturn:
    try:
        problem: dict[str, Any] = response.json()
    except ValueError:
        problem = {"detail": response.text[:200]}
    slug = str(problem.get("type", "")).rsplit("/", 1)[-1]
    typer.echo(f"refused: HTTP {response.status_code} {slug}: {problem.get('detail', '')}", err=True)
    if json_out:
        typer.echo(json.dumps({"ok": False, "status": response.status_code, "problem": problem}))
    raise typer.Exit(EXIT_REFUSED)


def _call(
    server: str, ca: Path, cert: Path, key: Path, method: str, path: str, body: Any, json_out: bool
) -> dict[str, Any]:
    """One request to the service; its JSON answer (refusals and errors end the command)."""
    import httpx

    try:
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(str(cert), str(key))
        with httpx.Client(base_url=server, verify=context, timeout=60) as http:
            response = http.request(method, path, json=body)
    except OSError as exc:
        fail(os_error_message(exc), json_out)
    except (httpx.HTTPError, ssl.SSLError) as exc:
        fail(first_line(exc), json_out)
    if response.status_code >= 400:
        _refused(response, json_out)
    doc: dict[str, Any] = response.json()
    return doc


def _done(doc: dict[str, Any], text: str, json_out: bool) -> None:
    typer.echo(json.dumps({"ok": True, **doc}) if json_out else text)


@app.command("status")
def status_cmd(
    uid: UidArg,
    server: Server,
    ca: Ca,
    client_cert: ClientCert,
    client_key: ClientKey,
    json_out: JsonOut = False,
) -> None:
    """The board's state and owner (with --json also its step history).

    \b
    Example:
      nusec board status 0123456789ABCDEF01234567 --server https://oem.example:8443 --ca \\
      ca-bundle.pem --client-cert operator.pem --client-key operator.key --json
    """
    uid = _uid(uid, json_out)
    doc = _call(server, ca, client_cert, client_key, "GET", f"/v1/boards/{uid}", None, json_out)
    flags = [f for f in ("certificate_revoked", "key_agreement_locked") if doc.get(f)]
    _done(
        doc,
        f"{uid}: {doc['state']} (owner {doc['owner']}){' ' + ', '.join(flags) if flags else ''}",
        json_out,
    )


@app.command("reissue")
def reissue_cmd(
    uid: UidArg,
    csr: Annotated[Path, typer.Option("--csr", help="The board's CSR for its new key (PEM).")],
    reason: Reason,
    server: Server,
    ca: Ca,
    client_cert: ClientCert,
    client_key: ClientKey,
    out: Annotated[Path | None, typer.Option("--out", help="Write the new certificate here (PEM).")] = None,
    json_out: JsonOut = False,
) -> None:
    """Admin: certify a new key for the board and revoke its certificate (superseded). Only while
    the board has no secure-boot key.

    \b
    Example:
      nusec board reissue 0123456789ABCDEF01234567 --csr board.csr.pem \\
        --reason 'key regenerated' --out board.pem --server https://oem.example:8443 --ca ca-bundle.pem \\
      --client-cert admin.pem --client-key admin.key
    """
    uid = _uid(uid, json_out)
    try:
        csr_pem = csr.read_text()
    except OSError as exc:
        fail(os_error_message(exc), json_out)
    if out is not None and out.exists():
        usage(f"{out} exists; not overwriting it", json_out)
    body = {"csr_pem": csr_pem, "reason": reason}
    doc = _call(
        server, ca, client_cert, client_key, "POST", f"/v1/boards/{uid}/certificate/reissue", body, json_out
    )
    if out is not None:
        try:
            with out.open("x") as handle:
                handle.write(doc["certificate_pem"])
        except OSError as exc:
            fail(os_error_message(exc), json_out)
    _done({"uid": uid, "serial": doc["serial"]}, f"{uid}: new certificate, serial {doc['serial']}", json_out)


@app.command("grant")
def grant_cmd(
    uid: UidArg,
    operator: Annotated[str, typer.Option("--operator", help="The operator's certificate CN.")],
    reason: Reason,
    server: Server,
    ca: Ca,
    client_cert: ClientCert,
    client_key: ClientKey,
    json_out: JsonOut = False,
) -> None:
    """Admin: let another operator act on the board like its owner.

    \b
    Example:
      nusec board grant 0123456789ABCDEF01234567 --operator bob --reason 'shift change' \\
      --server https://oem.example:8443 --ca ca-bundle.pem --client-cert admin.pem \\
      --client-key admin.key
    """
    uid = _uid(uid, json_out)
    body = {"operator": operator, "reason": reason}
    _call(server, ca, client_cert, client_key, "POST", f"/v1/boards/{uid}/grants", body, json_out)
    _done({"uid": uid, "operator": operator}, f"{uid}: granted to {operator}", json_out)


@app.command("reset-key-agreement")
def reset_cmd(
    uid: UidArg,
    reason: Reason,
    server: Server,
    ca: Ca,
    client_cert: ClientCert,
    client_key: ClientKey,
    json_out: JsonOut = False,
) -> None:
    """Admin: unlock the board's key agreement after too many wrong key confirmations.

    \b
    Example:
      nusec board reset-key-agreement 0123456789ABCDEF01234567 --reason 'fixture fault' \\
      --server https://oem.example:8443 --ca ca-bundle.pem --client-cert admin.pem \\
      --client-key admin.key
    """
    uid = _uid(uid, json_out)
    body = {"reason": reason}
    doc = _call(
        server, ca, client_cert, client_key, "POST", f"/v1/boards/{uid}/key-agreement/reset", body, json_out
    )
    _done({"uid": uid, "state": doc["state"]}, f"{uid}: key agreement unlocked ({doc['state']})", json_out)
