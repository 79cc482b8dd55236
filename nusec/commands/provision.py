"""``nusec provision``: prepare one or more Nu-Link3 boards for the CM, in the seed's order.

Heavy imports (pyocd, httpx, the flow) happen inside the command so ``nusec --help`` stays fast.
Before any board is opened, every input is checked and the service authenticated; a failure
there is one line on stderr and its exit code. Exit codes (docs/provisioning.md): 0 ok, 1 step
failed (I/O), 2 usage, 3 verification failed (forged or inconsistent answer, service not
authenticated by --ca, firmware that does not boot), 4 board unreachable or no such probe,
5 OTP conflict or board tampered, 6 service refused/unreachable. With several probes the exit
code is the one that most needs a human (``nusec.exit_codes.PROVISION_PRECEDENCE``: 5 before 3
before 1, 2, and the retries 4 and 6), never a retry hiding a board to set aside.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

DEFAULT_JOURNAL = Path("nusec-journal")


def command(
    probe: Annotated[
        list[str],
        typer.Option(
            "--probe", help="pyocd unique id of a board's probe (e.g. sim:b1); repeat for parallel boards."
        ),
    ],
    server: Annotated[str, typer.Option("--server", help="OEM service URL, e.g. https://127.0.0.1:8443.")],
    firmware: Annotated[
        Path, typer.Option("--firmware", help="Firmware to sign and burn (raw or unsigned MCUboot).")
    ],
    ca: Annotated[
        Path,
        typer.Option(
            "--ca", help="RootCA certificate PEM (may include the ICA): TLS trust and chain anchor."
        ),
    ],
    client_cert: Annotated[
        Path | None, typer.Option("--client-cert", help="Operator certificate PEM (mTLS).")
    ] = None,
    client_key: Annotated[
        Path | None, typer.Option("--client-key", help="Operator private key PEM (mTLS).")
    ] = None,
    mode: Annotated[
        str, typer.Option("--mode", help="online (service makes the secure-boot key) or batch.")
    ] = "online",
    batch: Annotated[
        Path | None, typer.Option("--batch", help="Bulk OTP batch folder for --mode batch.")
    ] = None,
    journal: Annotated[
        Path, typer.Option("--journal", help="Folder of the per-board journals.")
    ] = DEFAULT_JOURNAL,
    uart: Annotated[
        list[str] | None,
        typer.Option("--uart", help="PROBE=PORT: the board firmware's UART for a real probe."),
    ] = None,
    header_size: Annotated[
        int, typer.Option("--header-size", help="MCUboot header size for a raw firmware binary.")
    ] = 0x400,
    insecure_dev: Annotated[
        bool,
        typer.Option("--insecure-dev", help="Allow plain http:// to a loopback service (development only)."),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Read the board and report what would be written; change nothing."),
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (last line) instead of a table.")
    ] = False,
) -> None:
    """Provision boards: register, OTP (CA, certificate, secure-boot key), firmware, lock, ECDH.

    \b
    Example:
      nusec provision --probe sim:b1 --server https://127.0.0.1:8443 \\
        --firmware fw.bin --ca root-ca.pem \\
        --client-cert operator.pem --client-key operator.key
    """
    from rich.console import Console

    from nusec.exit_codes import most_urgent
    from nusec.provision.client import TlsConfig
    from nusec.provision.errors import ProvisionError
    from nusec.provision.flow import RunOptions, check_probe_ids, preflight, provision_boards
    from nusec.provision.report import RichReporter, summary_table

    ports: dict[str, str] = {}
    for item in uart or []:
        pid, sep, port = item.partition("=")
        if not sep or not pid or not port:
            typer.echo(f"error: --uart must be PROBE=PORT, got {item!r}", err=True)
            raise typer.Exit(2)
        ports[normalise(pid)] = port
    opts = RunOptions(
        server_url=server,
        firmware_path=firmware,
        tls=TlsConfig(client_cert, client_key, ca),
        journal_dir=journal,
        mode=mode,
        batch_dir=batch,
        dry_run=dry_run,
        uart_ports=ports,
        firmware_header_size=header_size,
        insecure_dev=insecure_dev,
    )
    try:
        opts.validate()  # local inputs first: nothing on the network, nothing on a board
        probes = check_probe_ids(probe)
        checked = preflight(opts)  # then the service, authenticated, before any board is opened
    except ProvisionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    if json_out:
        results = provision_boards(probes, opts, checked=checked)
    else:
        with RichReporter() as reporter:
            results = provision_boards(probes, opts, reporter, checked=checked)
        Console().print(summary_table(results))
        for r in results:
            if r.error:
                typer.echo(f"{r.probe}: error: {r.error}", err=True)
    code = most_urgent(r.exit_code for r in results)
    if json_out:
        typer.echo(json.dumps({"ok": code == 0, "exit_code": code, "boards": [r.to_json() for r in results]}))
    raise typer.Exit(code)


def normalise(probe_id: str) -> str:
    from nusec.provision.link import normalise_probe_id

    return normalise_probe_id(probe_id)
