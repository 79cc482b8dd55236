"""What the operator sees: events from the runner, rich progress per step and per transfer,
a final summary table, and the JSON form of the same results for scripts.

The runner only emits ``Event`` objects (``on_event`` callback); this module turns them into a
display. Keeping the two apart lets the lead's ``nusec demo`` and the tests subscribe to the same
events without a terminal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from nusec.provision.steps import STEPS


@dataclass(frozen=True)
class Event:
    """One thing that happened in a board's run.

    kinds: ``run_start``, ``identified``, ``step_start``, ``step_done``, ``step_skip`` (already
    done in an earlier run), ``step_plan`` (dry run), ``transfer`` (``done``/``total`` bytes of a
    long transfer), ``note``, ``run_done``, ``run_failed``.
    """

    kind: str
    probe: str
    step: str | None = None
    uid: str | None = None
    detail: str = ""
    done: int = 0
    total: int = 0
    seconds: float = 0.0
    probe_bytes: int = 0


EventSink = Callable[[Event], None]


@dataclass
class StepRecord:
    id: str
    status: str  # done | skipped | planned | failed | not-run
    seconds: float = 0.0
    probe_bytes: int = 0
    detail: str = ""


@dataclass(frozen=True)
class BatchClaim:
    """The bulk-batch image of a ``--mode batch`` board. ``claimed`` False: a dry run's forecast of
    the image a real run would claim (nothing recorded); True: the batch's claims record it."""

    batch_id: str
    index: int
    claimed: bool


@dataclass
class ProvisionResult:
    """The outcome of one board's run (what ``provision_board`` returns and ``--json`` prints)."""

    probe: str
    uid: str | None = None
    ok: bool = False
    exit_code: int = 1
    error: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    board_cert: Path | None = None
    otp_dump: Path | None = None
    firmware_signed: Path | None = None
    secure_boot_pub: Path | None = None
    locked: bool = False
    key_confirmed: bool = False
    journal: Path | None = None
    seconds: float = 0.0
    probe_bytes: int = 0
    dry_run: bool = False
    batch_claim: BatchClaim | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for k, v in list(out.items()):
            if isinstance(v, Path):
                out[k] = str(v)
        return out


class RichReporter:
    """Live progress for several boards: one line per board, plus a transfer bar while one runs."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.fields[probe]}[/]"),
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._mu = threading.Lock()
        self._n = len(STEPS)

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _task(self, probe: str) -> TaskID:
        if probe not in self._tasks:
            self._tasks[probe] = self.progress.add_task("starting", probe=probe, total=None)
        return self._tasks[probe]

    def __call__(self, ev: Event) -> None:
        with self._mu:
            task = self._task(ev.probe)
            if ev.kind == "step_start":
                idx = [s.id for s in STEPS].index(ev.step) + 1 if ev.step else 0
                title = next((s.title for s in STEPS if s.id == ev.step), ev.step)
                self.progress.update(task, description=f"[{idx}/{self._n}] {title}", completed=0, total=None)
            elif ev.kind == "transfer":
                self.progress.update(task, completed=ev.done, total=ev.total or None)
            elif ev.kind == "step_done":
                self.progress.console.print(
                    f"  {ev.probe}: [green]✓[/] {ev.step} ({ev.seconds:.2f} s, {ev.probe_bytes} B over probe)"
                    + (f" {ev.detail}" if ev.detail else "")
                )
            elif ev.kind == "step_skip":
                self.progress.console.print(f"  {ev.probe}: [dim]- {ev.step} already done[/]")
            elif ev.kind == "step_plan":
                self.progress.console.print(f"  {ev.probe}: [cyan]would[/] {ev.step}: {ev.detail}")
            elif ev.kind == "note":
                self.progress.console.print(f"  {ev.probe}: {ev.detail}")
            elif ev.kind == "run_failed":
                self.progress.update(task, description=f"[red]FAILED[/] at {ev.step}: {ev.detail}")
            elif ev.kind == "run_done":
                self.progress.update(task, description="[green]done[/]", completed=1, total=1)


def summary_table(results: list[ProvisionResult]) -> Table:
    """One row per board: how far it got, time, bytes over the probe, and the outcome."""
    table = Table(title="nusec provision")
    table.add_column("probe", no_wrap=True)
    table.add_column("uid", no_wrap=True)
    table.add_column("steps", no_wrap=True)
    table.add_column("s", justify="right")
    table.add_column("probe B", justify="right")
    table.add_column("result")
    n = len(STEPS)
    for r in results:
        by_status: dict[str, int] = {}
        for st in r.steps:
            by_status[st.status] = by_status.get(st.status, 0) + 1
        failed = next((st.id for st in r.steps if st.status == "failed"), None)
        if failed:
            steps = f"[red]stopped at {failed}[/]"
        elif r.dry_run:
            steps = f"{by_status.get('planned', 0)} planned"
        else:
            finished = by_status.get("done", 0) + by_status.get("skipped", 0)
            steps = f"{finished}/{n}" + (
                f" ({by_status['skipped']} resumed)" if by_status.get("skipped") else ""
            )
        result = "[green]ok[/]" if r.ok else f"[red]exit {r.exit_code}[/] {r.error or ''}"
        table.add_row(r.probe, r.uid or "?", steps, f"{r.seconds:.1f}", str(r.probe_bytes), result)
    # the batch image of each board, under the table (a caption wraps where a cell would be cut)
    claims = [
        f"{r.probe}: batch image {c.index} of batch {c.batch_id}"
        + (" (claimed)" if c.claimed else " (would be claimed; dry run, nothing claimed)")
        for r in results
        if (c := r.batch_claim) is not None
    ]
    if claims:
        table.caption = "\n".join(claims)
    return table


class Stopwatch:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0
