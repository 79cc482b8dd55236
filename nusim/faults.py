"""Fault injection for tests: a dropped probe link, a failing ISP program, power loss mid-write.

A plan comes from ``$NUSEC_SIM_FAULTS`` (JSON object keyed by board name, counted per process) or
from ``<sim dir>/<board>.faults.json`` (consumed: once a fault fires the file records it, so a
re-run after the "power cut" goes through, as a resumed production run would). Keys:

- ``drop_link_after``: after this many debugger transfers every further transfer fails
  (``ProbeDisconnected``) until the probe is re-opened.
- ``fail_program``: the N-th (1-based) PROGRAM/PROGRAM_64/PAGE_ERASE through the FMC sets ISPFF
  and changes nothing.
- ``power_loss_program``: the N-th program tears (some of the bits to clear are cleared) and the
  board loses power: the state is saved as torn and the link drops.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAULT_KEYS = ("drop_link_after", "fail_program", "power_loss_program")


@dataclass
class FaultPlan:
    """Counters and thresholds for one open board; ``None`` thresholds never fire."""

    drop_link_after: int | None = None
    fail_program: int | None = None
    power_loss_program: int | None = None
    source: Path | None = None  # the consumable file it came from, if any
    transfers: int = 0
    programs: int = 0

    @classmethod
    def load(cls, directory: Path, board: str) -> FaultPlan:
        """Merge the env plan and the board's fault file (the file wins)."""
        plan = cls()
        env = os.environ.get("NUSEC_SIM_FAULTS")
        if env:
            obj = json.loads(env)
            if not isinstance(obj, dict):
                raise ValueError("NUSEC_SIM_FAULTS must be a JSON object keyed by board name")
            plan._apply(obj.get(board, {}), "NUSEC_SIM_FAULTS")
        path = directory / f"{board}.faults.json"
        if path.is_file():
            plan._apply(json.loads(path.read_text(encoding="utf-8")), str(path))
            plan.source = path
        return plan

    def _apply(self, obj: dict[str, Any], where: str) -> None:
        for key, value in obj.items():
            if key == "fired":
                continue
            if key not in FAULT_KEYS or not isinstance(value, int) or value < 0:
                raise ValueError(f"bad fault setting {key!r}={value!r} in {where}")
            if key in obj.get("fired", []):
                continue
            setattr(self, key, value)

    def consume(self, key: str) -> None:
        """Record that ``key`` fired, in the fault file, so it does not fire again next run."""
        setattr(self, key, None)
        if self.source is None or not self.source.is_file():
            return
        obj = json.loads(self.source.read_text(encoding="utf-8"))
        fired = list(obj.get("fired", []))
        if key not in fired:
            fired.append(key)
        obj["fired"] = fired
        tmp = self.source.with_suffix(".tmp")
        tmp.write_text(json.dumps(obj), encoding="utf-8")
        os.replace(tmp, self.source)

    def count_transfer(self) -> bool:
        """Count one debugger transfer; True when the link must drop now."""
        self.transfers += 1
        if self.drop_link_after is not None and self.transfers > self.drop_link_after:
            self.consume("drop_link_after")
            return True
        return False

    def count_program(self) -> str | None:
        """Count one NV program/erase; returns ``"fail"``, ``"power_loss"`` or None."""
        self.programs += 1
        if self.power_loss_program is not None and self.programs == self.power_loss_program:
            self.consume("power_loss_program")
            return "power_loss"
        if self.fail_program is not None and self.programs == self.fail_program:
            self.consume("fail_program")
            return "fail"
        return None
