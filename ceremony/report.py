"""The printable ceremony report: one HTML page an auditor and the witnesses sign on paper.

Why HTML: it prints from any browser with no extra tool on an offline ceremony machine, and a
test can parse it. The report is made only from a transcript that verifies (hash chain, closing
signature, outputs), so it shows exactly what the signed transcript holds: the people, the
tokens (manufacturer, model, serial, firmware, library), each step with its time, fingerprints
and witness acknowledgements, the KEK check value, and signature lines for the operator and
every witness.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ceremony.transcript import verify_transcript

#: Values shown per step when present (never a secret: the transcript holds none).
_FACTS = (
    "label",
    "token_label",
    "spki_sha256",
    "cert_sha256",
    "serial",
    "not_before",
    "not_after",
    "kek_check",
    "crl_number",
    "crl_sha256",
    "config_sha256",
    "root_spki_sha256",
    "root_cert_sha256",
    "ica_cert_sha256",
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _row(header: str, cell: str) -> str:
    return f"<tr><th>{_e(header)}</th><td>{cell}</td></tr>"


def render_report(transcript: Path, *, root_cert: Path | None = None) -> str:
    """The HTML report of a transcript that verifies (``TranscriptError`` otherwise)."""
    report = verify_transcript(transcript, root_cert=root_cert)
    lines = [json.loads(raw) for raw in transcript.read_bytes().splitlines()]
    first, last = lines[0], lines[-1]
    opening: dict[str, Any] = first["data"]
    people = [("Operator", first["operator"])] + [("Witness", w) for w in first["witnesses"]]
    title = f"{report.kind} ceremony report" + (" (REHEARSAL)" if report.rehearsal else "")
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;width:100%}"
        "td,th{border:1px solid #444;padding:4px;vertical-align:top;font-size:11px}"
        "code{font-size:11px;word-break:break-all}.sig td{height:3em}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p>{_e(opening.get('name', ''))}</p>",
        "<table><tr><th>transcript</th><td><code>" + _e(transcript) + "</code></td></tr>",
        f"<tr><th>lines</th><td>{report.lines} (hash chain and closing signature verified)</td></tr>",
        _row("signer SPKI SHA-256", f'<code id="signer">{_e(report.signer_spki_sha256)}</code>'),
    ]
    if report.root_cert_sha256:
        out.append(
            _row("root certificate SHA-256", f'<code id="root-cert">{_e(report.root_cert_sha256)}</code>')
        )
    out.append(
        f"<tr><th>closing line SHA-256</th><td><code>{_e(last['prev'])}</code> (previous line)</td></tr>"
    )
    out.append("</table>")
    tokens = opening.get("tokens", {})
    if tokens:
        out.append("<h2>Tokens</h2><table><tr><th>role</th><th>token</th><th>library</th></tr>")
        for role, info in tokens.items():
            out.append(
                f"<tr><td>{_e(role)}</td><td>{_e(info.get('token_label'))}:"
                f" {_e(info.get('token_manufacturer'))}"
                f" {_e(info.get('token_model'))}, serial {_e(info.get('token_serial'))}, firmware"
                f" {_e(info.get('token_firmware_version'))}</td><td>{_e(info.get('library_description'))}"
                f" {_e(info.get('library_version'))}</td></tr>"
            )
        out.append("</table>")
    out.append(
        "<h2>Steps</h2><table><tr><th>#</th><th>time (UTC)</th><th>step</th><th>facts</th>"
        "<th>acknowledged</th></tr>"
    )
    for line in lines:
        data = line.get("data", {})
        facts = "<br>".join(
            f"{_e(k)}: <code>{_e(data[k])}</code>" for k in _FACTS if isinstance(data.get(k), str | int)
        )
        acks = data.get("acks") or {}
        ack_text = ", ".join(f"{_e(w)}: {_e(i)}" for w, i in acks.items()) or "-"
        out.append(
            f"<tr><td>{line['seq']}</td><td>{_e(line['time'])}</td><td>{_e(line['step'])}</td>"
            f"<td>{facts}</td><td>{ack_text}</td></tr>"
        )
    out.append("</table>")
    out.append("<h2>Signatures</h2><p>By signing I confirm the fingerprints above match what I saw.</p>")
    out.append('<table class="sig"><tr><th>role</th><th>name</th><th>signature</th><th>date</th></tr>')
    for role, person in people:
        out.append(f"<tr><td>{role}</td><td>{_e(person)}</td><td></td><td></td></tr>")
    out.append("</table></body></html>")
    return "\n".join(out) + "\n"
