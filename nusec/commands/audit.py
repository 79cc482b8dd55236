"""``nusec audit export`` / ``nusec audit verify``: the service's audit log, checked offline.

Why offline: the database that holds the audit chain is exactly what an insider would edit, so
the check must not trust it. ``export`` fetches, over HTTPS with an admin certificate, a fresh
checkpoint signed by the ICA key in the HSM, then every row and checkpoint up to it, into one
JSON file. ``verify`` checks that file with the ICA certificate alone
(``pki.service.checkpoints.verify_export``): chain intact, every checkpoint numbered, signed and
matching its row, the last one covering the last row, no silence longer than promised; with
``--previous`` an older export must still be contained (rows cut and the service restarted).

Exit codes (docs/exit-codes.md): 0 verified, 1 error (one ``error:`` line), 2 bad input, 3 the log
does not verify.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Annotated, Any

import typer

from nusec.commands.failure import fail, first_line, os_error_message, usage

app = typer.Typer(
    name="audit",
    help=(
        "The OEM service's audit log: export it (admin certificate) and verify it offline against "
        "the ICA certificate, without trusting the service's database.\n\n"
        "Example: `nusec audit export --server https://127.0.0.1:8443 --ca ca-bundle.pem "
        "--client-cert admin.pem --client-key admin.key --out audit.json` then "
        "`nusec audit verify audit.json --ica-cert ica.pem --root-cert root.pem`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_NOT_VERIFIED = 3
PAGE = 1000


def _get(http: Any, path: str, **params: Any) -> dict[str, Any]:
    response = http.get(path, params=params)
    if response.status_code != 200:
        raise RuntimeError(f"{path}: HTTP {response.status_code}: {_detail(response)}")
    doc: dict[str, Any] = response.json()
    return doc


def _detail(response: Any) -> str:
    try:
        return str(response.json().get("detail", ""))[:200]
    except ValueError:
        return ""


def export_log(http: Any) -> dict[str, Any]:
    """Fresh checkpoint first, then rows and checkpoints up to it (``http``: an httpx client)."""
    from datetime import UTC, datetime

    from pki.service.checkpoints import EXPORT_FORMAT

    made = http.post("/v1/audit/checkpoints")
    if made.status_code != 201:
        raise RuntimeError(f"/v1/audit/checkpoints: HTTP {made.status_code}: {_detail(made)}")
    end: dict[str, Any] = made.json()
    rows: list[dict[str, Any]] = []
    after = 0
    while after < end["seq"]:
        page = _get(http, "/v1/audit", after=after, limit=PAGE)
        rows += [r for r in page["entries"] if r["seq"] <= end["seq"]]
        if not page["entries"]:
            break
        after = page["entries"][-1]["seq"]
    cps: list[dict[str, Any]] = []
    after = 0
    while after < end["n"]:
        page = _get(http, "/v1/audit/checkpoints", after=after, limit=PAGE)
        cps += [c for c in page["checkpoints"] if c["n"] <= end["n"]]
        if not page["checkpoints"]:
            break
        after = page["checkpoints"][-1]["n"]
    return {
        "format": EXPORT_FORMAT,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": rows,
        "checkpoints": cps,
    }


@app.command("export")
def export_cmd(
    server: Annotated[str, typer.Option("--server", help="Service URL, e.g. https://127.0.0.1:8443.")],
    ca: Annotated[Path, typer.Option("--ca", help="CA bundle the service's certificate chains to (PEM).")],
    client_cert: Annotated[Path, typer.Option("--client-cert", help="Admin client certificate (PEM).")],
    client_key: Annotated[Path, typer.Option("--client-key", help="Its private key (PEM).")],
    out: Annotated[Path, typer.Option("--out", help="Export file to write (never overwritten).")],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON line on stdout.")] = False,
) -> None:
    """Export the audit log up to a fresh signed checkpoint (admin certificate).

    \b
    Example:
      nusec audit export --server https://oem.example:8443 --ca ca-bundle.pem \\
      --client-cert admin.pem --client-key admin.key --out audit-2026-12-04.json
    """
    import httpx

    if out.exists():
        usage(f"{out} exists; not overwriting it", json_out)
    try:
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(str(client_cert), str(client_key))
        with httpx.Client(base_url=server, verify=context, timeout=60) as http:
            doc = export_log(http)
        with out.open("x") as handle:
            json.dump(doc, handle, indent=1)
    except OSError as exc:
        fail(os_error_message(exc), json_out)
    except (httpx.HTTPError, RuntimeError, ssl.SSLError) as exc:
        fail(first_line(exc), json_out)
    summary = {"out": str(out), "rows": len(doc["rows"]), "checkpoints": len(doc["checkpoints"])}
    typer.echo(json.dumps({"ok": True, **summary}) if json_out else f"exported {summary['rows']} rows, "
               f"{summary['checkpoints']} checkpoints to {out}")  # fmt: skip


def _load_json(path: Path, json_out: bool) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        fail(os_error_message(exc), json_out)
    except ValueError:
        fail(f"{path}: not JSON", json_out)
    if not isinstance(doc, dict):
        fail(f"{path}: not an audit export", json_out)
    return doc


@app.command("verify")
def verify_cmd(
    export: Annotated[Path, typer.Argument(help="File written by `nusec audit export`.")],
    ica_cert: Annotated[Path, typer.Option("--ica-cert", help="ICA certificate (PEM): the checkpoint key.")],
    root_cert: Annotated[
        Path | None, typer.Option("--root-cert", help="RootCA certificate (PEM): check the ICA with it.")
    ] = None,
    previous: Annotated[
        Path | None, typer.Option("--previous", help="An older export this one must still contain.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON line on stdout.")] = False,
) -> None:
    """Verify an export offline: chain, checkpoint signatures, coverage, silences (exit 3 if not).

    \b
    Example:
      nusec audit verify audit-2026-12-04.json --ica-cert ica.pem --previous \\
      audit-2026-11-27.json
    """
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec

    from pki.service.checkpoints import verify_export

    try:
        ica = x509.load_pem_x509_certificate(ica_cert.read_bytes())
        if root_cert is not None:
            ica.verify_directly_issued_by(x509.load_pem_x509_certificate(root_cert.read_bytes()))
    except OSError as exc:
        fail(os_error_message(exc), json_out)
    except (ValueError, TypeError, InvalidSignature):
        fail("the ICA certificate does not load or is not issued by the root certificate", json_out)
    public_key = ica.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        fail("the ICA key is not an EC key", json_out)
    doc = _load_json(export, json_out)
    older = _load_json(previous, json_out) if previous is not None else None
    report = verify_export(doc, public_key, older)
    if json_out:
        typer.echo(json.dumps(report.as_dict()))
    elif report.ok:
        typer.echo(
            f"verified: {report.rows} rows, {report.checkpoints} checkpoints ({report.restarts} restarts)"
        )
    else:
        typer.echo(f"error: audit log does not verify: {report.reason}", err=True)
    if not report.ok:
        raise typer.Exit(EXIT_NOT_VERIFIED)
