"""``nusec otp``: bulk OTP images for a production batch (template, validate, build, verify, show).

Every failure is one ``error: ...`` line on stderr and exit 1; ``--json`` ends with one JSON
object on stdout. Heavy imports stay inside the functions so ``nusec --help`` stays fast.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from nusec.commands.failure import fail

app = typer.Typer(
    name="otp",
    help=(
        "Bulk OTP images: `template` and `validate` a batch spec, `build` a batch from it "
        "(resumable; HSM-held KEK), `verify` it offline, "
        "`show` a batch or one image. See docs/otp-batch.md.\n\n"
        "Example: nusec otp build batch.yaml --out batch-0001 && nusec otp verify batch-0001"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="End with one JSON object on stdout.")]


@contextmanager
def _errors(json_out: bool) -> Iterator[None]:
    """Turn any expected failure into one clear line and exit 1."""
    from nucore.errors import NativeError
    from pki.batch import OtpBatchError
    from pki.errors import PkiError

    try:
        yield
    except (OtpBatchError, PkiError, NativeError) as exc:
        fail(str(exc), json_out)
    except KeyboardInterrupt:
        typer.echo("interrupted: re-run the same command to resume", err=True)
        raise typer.Exit(130) from None


@contextmanager
def _progress(label: str, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    if not enabled:
        yield lambda done, total: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class _Rate(TextColumn):
        def __init__(self) -> None:
            super().__init__("")

        def render(self, task: Any) -> Any:
            from rich.text import Text

            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} boards/s" if speed else "-- boards/s")

    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _Rate(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _load_pub(path: Path | None) -> Any:
    if path is None:
        return None
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from pki.batch import OtpBatchError

    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError):
        raise OtpBatchError(f"--signer-pub: {path} is not a readable PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise OtpBatchError(f"--signer-pub: {path} is not an EC public key")
    return key


@app.command("template")
def template_cmd(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this new file instead of stdout.")
    ] = None,
) -> None:
    """Print a commented example batch spec (it validates once root_cert/ica_cert name your files).

    Example: nusec otp template -o spec.yaml && nusec otp validate spec.yaml
    """
    from pki.batch.spec import TEMPLATE

    if output is None:
        typer.echo(TEMPLATE, nl=False)
        return
    with _errors(False):
        from pki import files
        from pki.batch import OtpBatchError

        try:
            files.write_atomic(output, TEMPLATE.encode(), overwrite=False)
        except FileExistsError:
            raise OtpBatchError(f"{output} already exists; refusing to overwrite it") from None
        except OSError as exc:
            raise OtpBatchError(f"cannot write {output}: {exc.strerror}") from None
    typer.echo(f"wrote {output}")


@app.command("validate")
def validate_cmd(
    spec: Annotated[Path, typer.Argument(help="Batch spec (YAML/JSON); see docs/otp-batch.md.")],
    json_out: JsonOpt = False,
) -> None:
    """Check a batch spec completely (schema, certificates, chain, sizes, UID list) without
    touching the HSM or writing anything.

    Example: nusec otp validate spec.yaml --json
    """
    with _errors(json_out):
        from pki.batch import load_spec

        batch_spec = load_spec(spec)
    summary = {
        "ok": True,
        "spec": str(spec),
        "spec_sha256": batch_spec.digest(),
        "count": batch_spec.count,
        "uid_list": batch_spec.uids is not None,
        "chunk_size": batch_spec.chunk_size,
        "hsm_uri": batch_spec.hsm.uri,
        "kek_label": batch_spec.hsm.kek_label,
        "signer_label": batch_spec.hsm.signer_label,
    }
    if json_out:
        typer.echo(json.dumps(summary))
    else:
        mode = "UID list" if batch_spec.uids is not None else "count"
        typer.echo(
            f"spec {spec}: ok, {batch_spec.count} boards ({mode}), chunks of {batch_spec.chunk_size}, "
            f"KEK {batch_spec.hsm.kek_label!r} and signer {batch_spec.hsm.signer_label!r} "
            f"on {batch_spec.hsm.uri}"
        )


@app.command("build")
def build(
    spec: Annotated[Path, typer.Argument(help="Batch spec (YAML/JSON); see docs/otp-batch.md.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Batch folder (created; re-run to resume).")],
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", min=1, help="Worker processes (default: all cores).")
    ] = None,
    create_hsm_keys: Annotated[
        bool,
        typer.Option(
            "--create-hsm-keys", help="Create the KEK and seal signer if missing (rehearsals only)."
        ),
    ] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Build (or resume) a batch: images, manifest, wrapped keys, and the HSM-signed seal.

    Example: nusec otp build batch.yaml --out batch-0001 --jobs 2
    """
    with _errors(json_out):
        from pki.batch import build_batch, ensure_batch_keys, load_spec
        from pki.hsm.pkcs11 import open_backend
        from pki.hsm.preflight import require as require_role

        batch_spec = load_spec(spec)
        with open_backend(batch_spec.hsm.uri) as backend:
            require_role(backend, "batch")  # the module can do a batch, before the first write
            if create_hsm_keys:
                ensure_batch_keys(backend, batch_spec.hsm.kek_label, batch_spec.hsm.signer_label)
            with _progress("building", not (no_progress or json_out)) as cb:
                res = build_batch(batch_spec, out, backend, jobs=jobs or os.cpu_count() or 1, progress=cb)
        summary = {
            "ok": True,
            "batch_dir": str(out),
            "count": res.count,
            "chunks_built": res.chunks_built,
            "chunks_skipped": res.chunks_skipped,
            "merkle_root": res.merkle_root.hex(),
            "sealed_now": res.sealed_now,
            "seconds": round(res.seconds, 3),
            "keygen": res.keygen,
        }
        if json_out:
            typer.echo(json.dumps(summary))
        else:
            sealed = "sealed" if res.sealed_now else "seal unchanged"
            typer.echo(
                f"batch {out}: {res.count} images ({res.chunks_built} chunks built, "
                f"{res.chunks_skipped} already done), root {res.merkle_root.hex()[:16]}..., {sealed}"
            )


@app.command("verify")
def verify(
    batch_dir: Annotated[Path, typer.Argument(help="Batch folder.")],
    signer_pub: Annotated[
        Path | None,
        typer.Option("--signer-pub", help="PEM public key the seal must be signed by (pins origin)."),
    ] = None,
    index: Annotated[
        int | None, typer.Option("--index", help="Check only this image, via its Merkle proof.")
    ] = None,
    hsm_sample: Annotated[
        int,
        typer.Option(
            "--hsm-sample", min=0, help="Also unwrap N keys in the HSM and check them (needs --hsm-uri)."
        ),
    ] = 0,
    hsm_uri: Annotated[
        str | None, typer.Option("--hsm-uri", help="pkcs11: URI of the token holding the KEK.")
    ] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Verify a batch offline: seal signature, every image and line, the Merkle root.

    Example: nusec otp verify batch-0001 --signer-pub batch-seal.pub.pem
    """
    with _errors(json_out):
        from pki.batch import OtpBatchError, check_board_key, read_batch_info, verify_batch, verify_one

        pub = _load_pub(signer_pub)
        result: dict[str, Any] = {"ok": True, "signer_pinned": pub is not None}
        if index is not None:
            img = verify_one(batch_dir, index, pub)
            result.update(index=index, otp_digest=img.digest.hex())
        else:
            with _progress("verifying", not (no_progress or json_out)) as cb:
                rep = verify_batch(batch_dir, signer_pub=pub, progress=cb)
            result.update(batch_id=rep.batch_id, count=rep.count, merkle_root=rep.merkle_root)
        if hsm_sample:
            if not hsm_uri:
                raise OtpBatchError("--hsm-sample needs --hsm-uri")
            import random

            from pki.hsm.pkcs11 import open_backend

            count = read_batch_info(batch_dir).count
            sample = sorted(random.SystemRandom().sample(range(count), min(hsm_sample, count)))
            with open_backend(hsm_uri) as backend:
                for i in sample:
                    check_board_key(backend, batch_dir, i)
            result["hsm_checked"] = sample
        if json_out:
            typer.echo(json.dumps(result))
        else:
            what = f"image {index}" if index is not None else f"{result['count']} images"
            origin = "pinned signer" if pub is not None else "signer as recorded in seal.json (not pinned)"
            typer.echo(
                f"ok: {what} verified ({origin})"
                + (f", {hsm_sample} keys checked in the HSM" if hsm_sample else "")
            )


@app.command("show")
def show(
    target: Annotated[Path, typer.Argument(help="Batch folder, or a single 2048-byte image file.")],
    index: Annotated[
        int | None, typer.Option("--index", help="Show this board's image and manifest line.")
    ] = None,
    proof: Annotated[
        bool, typer.Option("--proof", help="With --index: include the Merkle proof and seal.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Show a batch's summary, one board's image (fields, entries), or an image file.

    Example: nusec otp show batch-0001 --index 17 --proof --json
    """
    with _errors(json_out):
        from nucore import otp
        from pki.batch import image_proof, read_batch_info, read_image, read_line, read_seal

        out: dict[str, Any]
        if target.is_file():
            img = otp.parse(target.read_bytes(), check_digest=False)
            out = _image_json(img)
        else:
            info = read_batch_info(target)
            if index is None:
                seal = read_seal(info)
                done = sum(1 for c in range(info.chunks) if info.manifest_path(c).exists())
                out = {
                    "batch_id": info.batch_id.hex(),
                    "count": info.count,
                    "chunk_size": info.chunk_size,
                    "mode": "uid-list" if info.uid_list else "count",
                    "chunks_done": done,
                    "chunks": info.chunks,
                    "sealed": seal is not None,
                    "merkle_root": seal.statement["merkle_root"] if seal else None,
                    "kek_label": info.kek_label,
                    "signer_label": info.signer_label,
                }
            else:
                line = read_line(info, index)
                img = otp.parse(read_image(info, index), check_digest=False)
                out = {"index": index, **_image_json(img), "wrapped_key": line.wrapped_key.hex()}
                if proof:
                    out["proof"] = image_proof(target, index).to_json()
        if json_out:
            typer.echo(json.dumps(out))
        else:
            for k, v in out.items():
                typer.echo(f"{k:18} {v if not isinstance(v, dict) else json.dumps(v)}")


def _image_json(img: Any) -> dict[str, Any]:
    from nucore import otp

    return {
        "version": img.version,
        "flags": int(img.flags),
        "policy": int(img.config),
        "uid": img.uid.hex(),
        "secure_boot_pub": img.secure_boot_pub.hex(),
        "root_pub": img.root_pub.hex(),
        "root_cert_sha256": img.root_cert_sha256.hex(),
        "ica_cert_sha256": img.ica_cert_sha256.hex(),
        "ica_cert_len": len(img.ica_cert),
        "board_cert_len": len(img.board_cert) if img.board_cert else 0,
        "digest": img.digest.hex(),
        "digest_ok": img.digest_ok,
        "entries": {name: f"{f.entries.start}-{f.entries.stop - 1}" for name, f in otp.FIELDS.items()},
    }
