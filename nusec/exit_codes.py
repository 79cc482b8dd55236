"""Every exit code of every ``nusec`` command, as data: ``docs/exit-codes.md`` is rendered from
this table (``render_markdown``), tests check the commands against it, and ``nusec provision``
combines several boards' codes with ``most_urgent``.

Scripts branch on the code: 0 done, 2 "fix the command line" (nothing was touched), 4/6 "run it
again", 3/5 "a human must look at this board before anything else happens".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

OK = 0
FAILED = 1
USAGE = 2
NOT_VERIFIED = 3
UNREACHABLE = 4
OTP_CONFLICT = 5
SERVICE = 6
INTERRUPTED = 130

#: Every command (group) of the CLI; "all" in a row means each of them.
ALL = "all"


@dataclass(frozen=True)
class ExitCode:
    """One exit code as some commands use it, and what the operator should do next."""

    code: int
    name: str
    commands: tuple[str, ...]
    meaning: str
    next_step: str


TABLE: tuple[ExitCode, ...] = (
    ExitCode(OK, "ok", (ALL,), "done; with `--json` the last stdout line says what was done", "nothing"),
    ExitCode(
        FAILED,
        "failed",
        (ALL,),
        "a step failed (file, HSM, database, service answer); one `error:` line on stderr names it, "
        'and with `--json` the last stdout line is `{"ok": false, "error": ...}`',
        "read the error line; for `provision`, re-running resumes",
    ),
    ExitCode(
        USAGE,
        "usage",
        (ALL,),
        "bad command-line input: an unknown or missing option, a malformed value, an input file "
        "that does not exist, an output that already exists, a config file that does not validate; "
        "for `serve`, a start-up check failed. Found before anything was changed",
        "fix the command line or the file",
    ),
    ExitCode(
        NOT_VERIFIED,
        "not-verified",
        ("provision", "inspect", "audit verify", "db status"),
        "a check failed: a forged or inconsistent answer, a chain that does not verify, firmware "
        "that did not boot (`provision`); a board that does not check out (`inspect`); an audit log "
        "that does not verify (`audit verify`); a database not at the head revision (`db status`)",
        "a human: investigate before anything else touches the board, log or database",
    ),
    ExitCode(
        UNREACHABLE,
        "unreachable",
        ("provision", "inspect"),
        "the board cannot be reached over its probe (link dropped, no such probe, debugger locked out)",
        "retry: re-running resumes",
    ),
    ExitCode(
        UNREACHABLE,
        "refused",
        ("board",),
        "the OEM service refused the admin operation (the problem's slug and detail are printed)",
        "read the refusal: it names what to change",
    ),
    ExitCode(
        OTP_CONFLICT,
        "needs-a-human",
        ("provision",),
        "OTP holds something other than blank or the expected value, a write did not verify, or the "
        "board holds material this tool did not put there (tampered); no further write was made",
        "a human: set the board aside",
    ),
    ExitCode(
        SERVICE,
        "service",
        ("provision",),
        "the OEM service refused a request or could not be reached",
        "retry: re-running resumes",
    ),
    ExitCode(
        INTERRUPTED,
        "interrupted",
        ("otp build",),
        "interrupted (Ctrl-C); the finished chunks are kept",
        "re-run the same command to resume",
    ),
)

#: ``nusec provision`` with several boards exits with the code that most needs a human: first
#: the boards to set aside (5), then the ones failing a check (3), then plain failures (1) and
#: usage (2), and only then the ones a re-run fixes (4, 6). A retry must never hide a board
#: that needs a human.
PROVISION_PRECEDENCE: tuple[int, ...] = (OTP_CONFLICT, NOT_VERIFIED, FAILED, USAGE, UNREACHABLE, SERVICE, OK)


def most_urgent(codes: Iterable[int]) -> int:
    """The one exit code for several boards' codes (``PROVISION_PRECEDENCE``; an unknown code
    ranks first, since nothing says a re-run would fix it)."""
    rank = {code: i for i, code in enumerate(PROVISION_PRECEDENCE)}
    return min(codes, key=lambda code: rank.get(code, -1), default=OK)


def codes_of(command: str) -> set[int]:
    """The codes ``command`` (e.g. ``"provision"``, ``"audit verify"``) may exit with."""
    group = command.split()[0] if command else command
    return {e.code for e in TABLE if ALL in e.commands or command in e.commands or group in e.commands}


def render_markdown() -> str:
    """The table of ``docs/exit-codes.md`` (between its markers)."""
    rows = ["| code | name | commands | meaning | what next |", "|---|---|---|---|---|"]
    for e in TABLE:
        commands = "every command" if ALL in e.commands else ", ".join(f"`{c}`" for c in e.commands)
        rows.append(f"| {e.code} | {e.name} | {commands} | {e.meaning} | {e.next_step} |")
    order = ", ".join(str(c) for c in PROVISION_PRECEDENCE)
    rows += ["", f"With several boards, `nusec provision` exits with the first of {order} any board has."]
    return "\n".join(rows) + "\n"
