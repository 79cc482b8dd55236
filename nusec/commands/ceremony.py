"""``nusec ceremony``: the offline root key ceremony (template, validate, run, verify, restore).

Every sub-command turns a ``CeremonyError``/``PkiError`` into one ``error: ...`` line on stderr
and exit code 1; with ``--json`` the last stdout line is one JSON object. Heavy imports (pkcs11, pkilint)
stay inside the functions so ``nusec --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nusec.commands.failure import fail, first_line, os_error_message, usage

if TYPE_CHECKING:
    from ceremony.backup import CustodianShare

app = typer.Typer(
    name="ceremony",
    help=(
        "The offline root key ceremony, driven by one reviewed YAML file.\n\n"
        "Order: `template` -> review -> `validate` -> `run --rehearsal` -> `run` -> `verify`. "
        "`restore` rebuilds the CA keys in a fresh token from M custodian shares.\n\n"
        "Example: nusec ceremony template > ceremony.yaml && nusec ceremony run ceremony.yaml --rehearsal"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="End with one JSON object on stdout.")]


@contextmanager
def _one_line_errors(json_out: bool) -> Iterator[None]:
    """Known failures become one ``error:`` line and exit 1; a traceback would hide the cause."""
    from ceremony.errors import CeremonyError
    from pki.errors import PkiError

    try:
        yield
    except (CeremonyError, PkiError) as exc:
        fail(first_line(exc), json_out)
    except OSError as exc:
        fail(os_error_message(exc), json_out)


def _say(json_out: bool) -> Callable[[str], None]:
    # Progress goes to stderr with --json so stdout stays one JSON object.
    return lambda msg: typer.echo(msg, err=json_out)


@app.command("template")
def template_cmd(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this new file instead of stdout.")
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            "--type", help="root | intermediate | crl | batch-keys | nubl2-key (restore uses the root file)."
        ),
    ] = "root",
) -> None:
    """Print a commented example config of a ceremony type (it validates as-is).

    Example: nusec ceremony template --type intermediate -o ica-2.yaml
    """
    from ceremony.kinds import template

    with _one_line_errors(False):
        text = template(kind)
    if output is None:
        typer.echo(text, nl=False)
        return
    with _one_line_errors(False):
        from ceremony.outputs import write_atomic

        write_atomic(output, text.encode("utf-8"))
    typer.echo(f"wrote {output}")


@app.command("validate")
def validate_cmd(
    config: Annotated[Path, typer.Argument(help="The ceremony YAML file.")],
    rehearsal: Annotated[
        bool,
        typer.Option("--rehearsal", help="Allow duty conflicts (one person in two roles): rehearsals only."),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Check the YAML file completely (schema, names, duties, clock vs dates, outputs folder
    absent) without touching the HSM.

    Example: nusec ceremony validate ceremony.yaml --json
    """
    from datetime import UTC, datetime

    from ceremony.config import check_clock, check_clock_near, check_duties
    from ceremony.errors import OutputExistsError
    from ceremony.kinds import load

    with _one_line_errors(json_out):
        any_loaded = load(config)
        cfg = any_loaded.config
        if any_loaded.type == "root":
            any_loaded.loaded.check_duties(rehearsal=rehearsal)
            check_clock(cfg, datetime.now(UTC))
        else:
            check_duties(cfg.ceremony, [], rehearsal=rehearsal)
            if any_loaded.type == "intermediate":
                check_clock_near(cfg.ica.validity()[0], datetime.now(UTC), "ica.not_before")
            if any_loaded.type == "crl":
                check_clock_near(cfg.crl.dates()[0], datetime.now(UTC), "crl.this_update")
        if cfg.outputs.directory.exists():
            raise OutputExistsError(
                f"output folder {cfg.outputs.directory} already exists; the run would refuse"
            )
    summary: dict[str, Any] = {
        "ok": True,
        "type": any_loaded.type,
        "config": str(config),
        "config_sha256": any_loaded.loaded.sha256,
        "outputs": str(cfg.outputs.directory),
    }
    if any_loaded.type == "root":
        summary.update(
            {
                "token_label": cfg.hsm.token_label,
                "issuing_token_label": cfg.issuing_hsm.token_label,
                "module": str(cfg.hsm.module),
                "duty_conflicts": cfg.duty_conflicts(),
                "root_key_label": cfg.root.key_label,
                "ica_key_label": cfg.ica.key_label,
                "custodians": len(cfg.backup.custodians),
                "threshold": cfg.backup.threshold,
            }
        )
    if json_out:
        typer.echo(json.dumps(summary))
    elif any_loaded.type == "root":
        typer.echo(
            f"ok: {config} (sha256 {any_loaded.loaded.sha256[:16]}...): root token '{cfg.hsm.token_label}', "
            f"issuing token '{cfg.issuing_hsm.token_label}', "
            f"keys '{cfg.root.key_label}'/'{cfg.ica.key_label}', "
            f"{cfg.backup.threshold}-of-{len(cfg.backup.custodians)} shares, "
            f"outputs -> {cfg.outputs.directory}"
        )
    else:
        typer.echo(
            f"ok: {any_loaded.type} ceremony {config} (sha256 {any_loaded.loaded.sha256[:16]}...),"
            f" outputs -> {cfg.outputs.directory}"
        )


def _print_share(share: CustodianShare, total: int, threshold: int, check: str) -> None:
    """``delivery: print``: one share at a time on the terminal, for its custodian only."""
    out = sys.stdout
    out.write(f"\n=== share {share.index} of {total} for {share.custodian} (any {threshold} restore) ===\n")
    out.write(f"kek-check: {check}\n{share.mnemonic}\n")
    out.flush()
    if sys.stdin.isatty():
        input("Press Enter when the custodian has written it down (the screen will be cleared) ")
        out.write("\033[2J\033[H")
        out.flush()


@app.command("run")
def run_cmd(
    config: Annotated[Path, typer.Argument(help="The reviewed ceremony YAML file.")],
    rehearsal: Annotated[
        bool,
        typer.Option("--rehearsal", help="Same steps on a throwaway SoftHSM2 token; outputs go elsewhere."),
    ] = False,
    rehearsal_dir: Annotated[
        Path | None,
        typer.Option(
            "--rehearsal-dir", help="With --rehearsal: folder for the token and outputs (default: temp)."
        ),
    ] = None,
    reuse: Annotated[
        bool,
        typer.Option(
            "--reuse",
            help="Take back the keys of this config's own interrupted run (checked against its journal).",
        ),
    ] = False,
    witness_acks: Annotated[
        str | None,
        typer.Option(
            "--witness-acks",
            help="Witnesses confirm each step with their initials: '-' prompts on the terminal; a FILE"
            " supplies the answers one per line, in prompt order (scripted rehearsals).",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run the ceremony: keys, certificates, chain, custodian backup, signed transcript.

    Example: nusec ceremony run ceremony.yaml --witness-acks -
    """
    from ceremony import batch_keys, crl, intermediate, nubl2_key
    from ceremony.kinds import load
    from ceremony.run import fingerprint_lines, run_ceremony

    if rehearsal_dir is not None and not rehearsal:
        usage("--rehearsal-dir needs --rehearsal", json_out)
    with _one_line_errors(json_out):
        any_loaded = load(config)
        other: Any = None
        from ceremony.restore import run_restore

        runners: dict[str, Callable[..., Any]] = {
            "intermediate": intermediate.run,
            "crl": crl.run,
            "restore": run_restore,
            "batch-keys": batch_keys.run,
            "nubl2-key": nubl2_key.run,
        }
        if any_loaded.type in runners:
            other = runners[any_loaded.type](
                any_loaded.loaded, rehearsal=rehearsal, rehearsal_dir=rehearsal_dir, say=_say(json_out)
            )
        else:
            loaded = any_loaded.loaded
            result = run_ceremony(
                loaded,
                rehearsal=rehearsal,
                reuse=reuse,
                rehearsal_dir=rehearsal_dir,
                show_share=_print_share,
                acknowledge=_witness_prompt(loaded.config.ceremony.witnesses, witness_acks, json_out),
                say=_say(json_out),
            )
    if other is not None:
        if json_out:
            typer.echo(json.dumps({"ok": True, "type": any_loaded.type, **other.as_dict()}))
        else:
            typer.echo(f"{any_loaded.type} ceremony complete: outputs in {other.output_dir}")
            typer.echo(f"verify with: nusec ceremony verify {other.transcript}")
        return
    if json_out:
        typer.echo(json.dumps({"ok": True, **result.as_dict()}))
    else:
        kind = "rehearsal" if rehearsal else "ceremony"
        typer.echo(f"{kind} complete: outputs in {result.output_dir}")
        for line in fingerprint_lines(result.root_spki_sha256, result.root_cert_sha256):
            typer.echo(line)
        typer.echo(f"verify with: nusec ceremony verify {result.transcript}")


#: What the witnesses are shown before they confirm a step.
_SHOWN = (
    "label",
    "token_label",
    "spki_sha256",
    "cert_sha256",
    "kek_check",
    "config_sha256",
    "root_spki_sha256",
)


def _witness_prompt(
    witnesses: list[str], source: str | None, json_out: bool
) -> Callable[[str, Any], dict[str, str]] | None:
    """The run's ``acknowledge`` callback: each witness types their initials per step, at the
    terminal (``-``) or from a file of answers (one per line, in prompt order)."""
    import re

    from ceremony.errors import CeremonyError

    if source is None:
        return None
    if source == "-":
        answers = None
    else:
        try:
            answers = iter(Path(source).read_text(encoding="utf-8").splitlines())
        except OSError as exc:
            fail(f"--witness-acks {source}: {exc.strerror}", json_out)

    def acknowledge(step: str, shown: Any) -> dict[str, str]:
        facts = ", ".join(f"{k} {shown[k]}" for k in _SHOWN if isinstance(shown.get(k), str))
        typer.echo(f"--- step '{step}' done: {facts or 'see above'}", err=True)
        acks: dict[str, str] = {}
        for name in witnesses:
            prompt = f"{name}, type your initials to confirm step '{step}': "
            if answers is None:
                answer = input(prompt)
            else:
                typer.echo(prompt, err=True, nl=False)
                answer = next(answers, "")
                typer.echo(answer, err=True)
            answer = answer.strip()
            if not re.fullmatch(r"[A-Za-z][A-Za-z.-]{0,7}", answer):
                raise CeremonyError(f"witness {name!r} did not acknowledge step '{step}' (initials expected)")
            acks[name] = answer
        return acks

    return acknowledge


@app.command("verify")
def verify_cmd(
    transcript: Annotated[Path, typer.Argument(help="A ceremony or restore transcript (.jsonl).")],
    root_cert: Annotated[
        Path | None, typer.Option("--root-cert", help="Pin the signer to this root certificate (PEM).")
    ] = None,
    no_outputs: Annotated[
        bool, typer.Option("--no-outputs", help="Skip checking the recorded outputs on disk.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Check the transcript's hash chain, the root key's closing signature, and the outputs on disk.

    Example: nusec ceremony verify ceremony-out/transcript.jsonl --root-cert root-ca.pem
    """
    from ceremony.run import fingerprint_lines
    from ceremony.transcript import verify_transcript

    with _one_line_errors(json_out):
        report = verify_transcript(transcript, root_cert=root_cert, check_outputs=not no_outputs)
    if json_out:
        typer.echo(json.dumps(report.as_dict()))
    else:
        rehearsal = " (REHEARSAL)" if report.rehearsal else ""
        typer.echo(
            f"ok: {report.kind} transcript{rehearsal}, {report.lines} lines, chain and signature valid, "
            f"{len(report.outputs_checked)} outputs match"
        )
        signer = {"batch-keys": "seal signer", "nubl2-key": "NuBL2 key"}.get(report.kind, "root key")
        for line in fingerprint_lines(report.signer_spki_sha256, report.root_cert_sha256, signer):
            typer.echo(line)
        if root_cert is None:
            typer.echo(
                "compare these fingerprints with the ones the witnesses recorded (or pass --root-cert)"
            )


@app.command("report")
def report_cmd(
    transcript: Annotated[Path, typer.Argument(help="A ceremony transcript (.jsonl) that verifies.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The new HTML file to write.")],
    root_cert: Annotated[
        Path | None, typer.Option("--root-cert", help="Pin the signer to this root certificate (PEM).")
    ] = None,
) -> None:
    """Write the printable report (HTML): fingerprints, steps, acknowledgements, signature lines.

    Example: nusec ceremony report ceremony-out/transcript.jsonl -o report.html
    """
    from ceremony.outputs import write_atomic
    from ceremony.report import render_report

    with _one_line_errors(False):
        write_atomic(output, render_report(transcript, root_cert=root_cert).encode("utf-8"))
    typer.echo(f"wrote {output}")


@app.command("restore")
def restore_cmd(
    config: Annotated[Path, typer.Argument(help="Ceremony YAML naming the target token, labels and people.")],
    ceremony_dir: Annotated[Path, typer.Option("--from", help="The published ceremony outputs folder.")],
    shares: Annotated[list[Path], typer.Option("--share", help="A custodian share file (repeat M times).")],
    output: Annotated[Path, typer.Option("--output", help="New folder for the signed restore transcript.")],
    rehearsal: Annotated[
        bool, typer.Option("--rehearsal", help="Restore into a throwaway SoftHSM2 token instead.")
    ] = False,
    rehearsal_dir: Annotated[
        Path | None, typer.Option("--rehearsal-dir", help="With --rehearsal: folder for the throwaway token.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Rebuild the KEK from M shares and unwrap the RootCA/ICA keys into a fresh token.

    \b
    Example:
      nusec ceremony restore ceremony.yaml --from ceremony-out --share carol.txt --share \\
      dave.txt --output restore-out --rehearsal
    """
    from ceremony.config import load_config
    from ceremony.restore import restore_keys

    with _one_line_errors(json_out):
        loaded = load_config(config)
        result = restore_keys(
            loaded,
            ceremony_dir,
            shares,
            output,
            rehearsal=rehearsal,
            rehearsal_dir=rehearsal_dir,
            say=_say(json_out),
        )
    payload: dict[str, Any] = {"ok": True, **result.as_dict()}
    if json_out:
        typer.echo(json.dumps(payload))
    else:
        typer.echo(
            f"restored '{result.root_key_label}' and '{result.ica_key_label}' "
            f"into token '{result.token_label}' from {result.shares_used} shares"
        )
        typer.echo(f"verify with: nusec ceremony verify {result.transcript}")
