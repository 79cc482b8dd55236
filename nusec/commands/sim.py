"""``nusec sim``: manage simulated Nu-Link3 boards for development and production rehearsals.

A simulated board is one state file in the simulator directory (docs/sim-board.md); pyocd reaches
it as ``sim:NAME``. These commands read and change those files from the outside and serve a
board's UART, so an operator can rehearse a run end to end without hardware. Every failure is
one ``error: ...`` line on stderr and exit 1; ``--json`` prints one JSON object on stdout.
Heavy imports stay inside the functions so ``nusec --help`` stays fast.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from nusec.commands.failure import fail

app = typer.Typer(
    name="sim",
    help=(
        "Simulated Nu-Link3 boards (pyocd probe `sim:NAME`, one state file each in the simulator "
        "directory; docs/sim-board.md).\n\n"
        "Rehearse a production run without hardware:\n\n"
        "    nusec sim create b1\n\n"
        "    nusec provision --probe sim:b1 ...      (pyocd drives the simulated board)\n\n"
        "    nusec sim show b1                      (which OTP fields are written and locked)\n\n"
        "    nusec sim uart b1 --tcp 5555           (talk to its firmware: socket://127.0.0.1:5555)\n\n"
        "    nusec sim faults b1 --power-loss-program 40   (next run loses power mid-write)\n\n"
        "    nusec sim erase b1 --yes               (the only way to unprovision a board)"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="Simulator directory (default: $NUSEC_SIM_DIR, else ~/.local/share/nusim).",
        file_okay=False,
    ),
]
NameArg = Annotated[str, typer.Argument(help="Board name (`b1`) or probe id (`sim:b1`).", show_default=False)]


class _Fail(Exception):
    """A one-line error for the user."""


@contextmanager
def _errors(json_out: bool) -> Iterator[None]:
    """Turn every expected failure into one clear line and exit 1."""
    from nusim.boards import SimBoardError

    try:
        yield
    except (SimBoardError, _Fail, OSError, ValueError, RuntimeError) as exc:
        fail(str(exc), json_out)


def _emit(obj: dict[str, Any]) -> None:
    typer.echo(json.dumps({"ok": True, **obj}))


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


@app.command("list")
def list_command(directory: DirOpt = None, json_out: JsonOpt = False) -> None:
    """List the boards in the simulator directory.

    One line per board: UID, lock state, secure-boot key present, OTP entries programmed/locked,
    firmware image present, and whether a process has it open. Example: `nusec sim list --json`.
    """
    from nusim import boards

    with _errors(json_out):
        where = boards.sim_directory(directory)
        rows = [boards.listing(name, where) for name in boards.list_boards(where)]
        if json_out:
            _emit({"directory": str(where), "boards": [r.to_json() for r in rows]})
            return
        if not rows:
            typer.echo(f"no simulated boards in {where} (make one: nusec sim create NAME)")
            return
        typer.echo(
            f"{'board':<16} {'uid':<24} {'lock':<6} {'sb-key':<6} {'otp':>7} {'locked':>7} {'fw':<3} busy"
        )
        for r in rows:
            lock = "ALL" if r.all_locked else ("SEC" if r.secure_locked else "-")
            typer.echo(
                f"{r.name:<16} {r.uid:<24} {lock:<6} {_yes_no(r.secure_boot_key):<6} "
                f"{r.otp_programmed_entries:>7} {r.otp_locked_entries:>7} {_yes_no(r.firmware):<3} "
                f"{_yes_no(r.in_use)}"
            )


@app.command("create")
def create_command(name: NameArg, directory: DirOpt = None, json_out: JsonOpt = False) -> None:
    """Create a factory-blank board (blank flash and OTP, unlocked); refuses if NAME exists.

    Example: `nusec sim create b1`, then `pyocd commander -u sim:b1` or `nusec provision --probe sim:b1`.
    """
    from nusim import boards
    from nusim.board import board_uid

    with _errors(json_out):
        board = boards.board_name(name)
        path = boards.create_board(board, boards.sim_directory(directory))
        uid = board_uid(board).hex()
        if json_out:
            _emit({"board": board, "uid": uid, "state_file": str(path), "probe": f"sim:{board}"})
        else:
            typer.echo(f"created simulated board {board} (probe sim:{board}, UID {uid}) at {path}")


@app.command("show")
def show_command(name: NameArg, directory: DirOpt = None, json_out: JsonOpt = False) -> None:
    """Show a board: OTP fields programmed/locked, lock words, KeyStore slots (metadata only),
    PROGRAM counts per OTP word, last and next secure boot, armed faults.

    Example: `nusec sim show b1 --json | jq .program_counts.max_per_word` (1 after a clean run).
    """
    from nusim import boards

    with _errors(json_out):
        info = boards.details(boards.board_name(name), boards.sim_directory(directory))
        if json_out:
            _emit(info)
            return
        _print_details(info)


def _print_details(info: dict[str, Any]) -> None:
    echo = typer.echo
    echo(f"board {info['name']}  (probe sim:{info['name']}, UID {info['uid']})")
    echo(f"  state file   {info['state_file']}{'  [in use]' if info['in_use'] else ''}")
    for word, lw in info["lock_words"].items():
        echo(f"  {word:<12} {lw['value']} at {lw['address']}  {'LOCKED' if lw['locked'] else 'unlocked'}")
    echo(f"  firmware     {'MCUboot image present' if info['firmware'] else 'none'}")
    nb = info["next_boot"]
    echo(f"  next boot    {'boots ' + nb['image_version'] if nb['boots'] else 'refused: ' + nb['detail']}")
    lb = info["last_boot"]
    if lb is None:
        echo("  last boot    never recorded")
    else:
        what = f"booted {lb['image_version']}" if lb["booted"] else f"refused: {lb['detail']}"
        echo(f"  last boot    {what}")
    echo("  OTP fields   (entries programmed / locked / total, most PROGRAMs on one word)")
    for f in info["otp_fields"]:
        first, last = f["entries"]
        span = f"{first}" if first == last else f"{first}-{last}"
        echo(
            f"    {f['field']:<18} {span:>8}  {f['programmed']:>3} / {f['locked']:>3} / {f['total']:>3}"
            f"   x{f['max_programs']}"
        )
    pc = info["program_counts"]
    echo(
        f"  PROGRAMs     at most {pc['max_per_word']} per OTP word, {pc['max_per_lock_word']} per lock word"
        + (
            f"; entries written more than once: {pc['entries_written_more_than_once']}"
            if pc["entries_written_more_than_once"]
            else ""
        )
    )
    if not info["keystore"]:
        echo("  KeyStore     no persistent key slots used")
    for k in info["keystore"]:
        echo(
            f"  KeyStore     {k['bank']} slot {k['slot']}: {k['owner']} {k['bits']}-bit, "
            f"metadata {k['metadata']}, "
            f"{'readable' if k['readable'] else 'not readable'}{', revoked' if k['revoked'] else ''}"
        )
    faults = {k: v for k, v in info["faults"].items() if k != "fired"}
    if faults or info["faults"].get("fired"):
        echo(f"  faults       armed {faults or '-'}; fired {info['faults'].get('fired', [])}")


@app.command("uart")
def uart_command(
    name: NameArg,
    tcp: Annotated[
        int | None,
        typer.Option(
            "--tcp", help="Serve on socket://127.0.0.1:PORT (0 picks a free port).", min=0, max=65535
        ),
    ] = None,
    pty: Annotated[bool, typer.Option("--pty", help="Serve on a pseudo-terminal (the default).")] = False,
    directory: DirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Power the board on (it secure-boots its firmware) and serve its UART0 until Ctrl-C.

    Prints the address to open: a /dev/pts/N path (`--pty`) or `socket://127.0.0.1:PORT` (`--tcp`),
    for a terminal, pyserial, `nusec.board.channel.BoardChannel.open(ADDRESS)` or an OEM's own host
    tool. The board is busy (held by this process) while it serves, so pyocd and `nusec provision
    --probe sim:NAME` cannot open it meanwhile; they reach a simulated board's UART in-process by
    themselves. Example: `nusec sim uart b1 --tcp 5555`, then
    `python -m serial.tools.miniterm socket://127.0.0.1:5555`.
    """
    from nusim import boards
    from nusim.board import Board
    from nusim.nvstate import NvStore
    from nusim.uart import UartServer

    with _errors(json_out):
        if tcp is not None and pty:
            raise _Fail("choose one of --tcp PORT and --pty")
        board_name = boards.board_name(name)
        where = boards.sim_directory(directory)
        if not NvStore(where, board_name).exists():
            raise boards.BoardNotFound(f"no simulated board {board_name!r} in {where} (nusec sim create)")
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            try:
                board = Board.open(board_name, where)
            except RuntimeError as exc:
                raise _Fail(str(exc)) from None
            with board:
                boot = board.nv.last_boot
                kind = "tcp" if tcp is not None else "pty"
                with UartServer(board, kind, tcp or 0) as server:
                    booted = boot is not None and boot.booted
                    summary = (
                        f"secure boot ran firmware {boot.image_version}"
                        if boot is not None and booted
                        else f"secure boot refused the image ({boot.detail if boot else 'no boot ROM'}): "
                        "the board answers every frame with BOOT_FAIL"
                    )
                    if json_out:
                        _emit(
                            {
                                "board": board_name,
                                "address": server.address,
                                "booted": booted,
                                "boot": boot.to_json() if boot else None,
                            }
                        )
                    else:
                        typer.echo(f"board {board_name}: {summary}")
                        typer.echo(f"UART0 of sim:{board_name} at {server.address}  (Ctrl-C to stop)")
                    while not stop.wait(0.2):
                        pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        typer.echo(f"stopped; board {board_name} powered off", err=True)


@app.command("faults")
def faults_command(
    name: NameArg,
    drop_after: Annotated[
        int | None,
        typer.Option("--drop-after", help="Drop the probe link after N debugger transfers.", min=0),
    ] = None,
    fail_isp: Annotated[
        int | None,
        typer.Option("--fail-isp", help="The N-th ISP PROGRAM/PROGRAM_64/PAGE_ERASE fails (ISPFF).", min=1),
    ] = None,
    power_loss_program: Annotated[
        int | None,
        typer.Option(
            "--power-loss-program",
            "--power-loss-otp",
            help="Power is lost in the middle of the N-th ISP program (OTP, config or flash): torn write.",
            min=1,
        ),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Disarm: remove the board's fault plan.")] = False,
    directory: DirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Arm one-shot fault injection for the board's next session, or show/clear it.

    Counting starts when the board is next opened; each fault fires once (the plan file then
    records it under `fired`, so the re-run succeeds, as after a real power cut). Arming replaces
    the previous plan; with no option the current plan is shown. Example:
    `nusec sim faults b1 --power-loss-program 40`, then run `nusec provision --probe sim:b1` twice.
    """
    from nusim import boards

    with _errors(json_out):
        board_name = boards.board_name(name)
        where = boards.sim_directory(directory)
        plan = {
            key: value
            for key, value in (
                ("drop_link_after", drop_after),
                ("fail_program", fail_isp),
                ("power_loss_program", power_loss_program),
            )
            if value is not None
        }
        if clear and plan:
            raise _Fail("--clear cannot be combined with fault options")
        if clear:
            had = boards.clear_faults(board_name, where)
            if json_out:
                _emit({"board": board_name, "cleared": had, "faults": {}})
            else:
                typer.echo(
                    f"board {board_name}: {'fault plan removed' if had else 'no fault plan was armed'}"
                )
            return
        if plan:
            path = boards.arm_faults(board_name, where, plan)
        else:
            boards.load_state(board_name, where)  # unknown board -> error
            path = boards.fault_file(board_name, where)
        current = boards.read_faults(board_name, where)
        if json_out:
            _emit({"board": board_name, "fault_file": str(path), "faults": current})
        elif not current:
            typer.echo(f"board {board_name}: no faults armed")
        else:
            armed = ", ".join(f"{k}={v}" for k, v in current.items() if k != "fired") or "-"
            fired = ", ".join(current.get("fired", [])) or "-"
            typer.echo(f"board {board_name}: armed {armed}; fired {fired}  ({path})")


@app.command("erase")
def erase_command(
    name: NameArg,
    yes: Annotated[
        bool, typer.Option("--yes", help="Really delete the board (its OTP, keys, flash).")
    ] = False,
    directory: DirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Delete a board's state file (and its fault plan): the only way to "unprovision" a simulated
    board, since OTP and locks are write-once. Example: `nusec sim erase b1 --yes`.
    """
    from nusim import boards

    with _errors(json_out):
        board_name = boards.board_name(name)
        if not yes:
            raise _Fail(f"erasing board {board_name!r} destroys its OTP, keys and flash: add --yes")
        removed = boards.erase_board(board_name, boards.sim_directory(directory))
        if json_out:
            _emit({"board": board_name, "removed": [str(p) for p in removed]})
        else:
            typer.echo(f"erased simulated board {board_name} ({len(removed)} files removed)")
