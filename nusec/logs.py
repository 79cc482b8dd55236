"""How the ``nusec`` CLI logs, as pyocd and SPSDK do: warnings only by default, ``-v`` adds
progress (INFO), ``-vv`` adds diagnostics (DEBUG); ``--log-json`` makes every record one JSON
object per line on stderr, so scripts can parse logs and the final ``--json`` line apart.

Every module logs through ``logging.getLogger(__name__)``; this module only picks levels and the
format. Libraries that would log request bodies or SQL parameters stay at WARNING whatever the
verbosity: a log must never carry a secret (tests/cli/test_demo.py runs the demo at ``-vv``).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

#: Our top-level packages: the loggers ``-v``/``-vv`` turn up.
OUR_PACKAGES = ("nusec", "pki", "ceremony", "nucore", "nuboard", "nusim")
#: The name of the stderr handler ``configure`` installs (and replaces on a second call).
_HANDLER_NAME = "nusec-cli"
#: Third-party loggers that stay at WARNING: SQL with its parameters, HTTP bodies and headers.
ALWAYS_QUIET = ("sqlalchemy", "alembic", "httpx", "httpcore", "hpack", "urllib3", "multipart")


@dataclass(frozen=True)
class LogSettings:
    """What the global options asked for (``ctx.obj`` of every sub-command)."""

    verbosity: int = 0
    json_lines: bool = False


def level_for(verbosity: int) -> int:
    """0 -> WARNING, 1 (``-v``) -> INFO, 2 or more (``-vv``) -> DEBUG."""
    return (logging.WARNING, logging.INFO)[verbosity] if verbosity < 2 else logging.DEBUG


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            doc["exception"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return json.dumps(doc)


def configure(verbosity: int = 0, *, json_lines: bool = False, timestamps: bool = False) -> None:
    """Send log records to stderr at the level ``verbosity`` asks for (idempotent); ``timestamps``
    for a long-running process (``nusec serve``)."""
    level = level_for(verbosity)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter(("%(asctime)s " if timestamps else "") + "%(levelname)s %(name)s: %(message)s")
    )
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)  # ours from an earlier call; handlers others installed stay
    root.addHandler(handler)
    # Third-party libraries one step quieter than ours (pyocd at -vv is INFO), some always quiet.
    root.setLevel(max(level, logging.INFO) if verbosity >= 2 else level)
    for name in OUR_PACKAGES:
        logging.getLogger(name).setLevel(level if verbosity else logging.NOTSET)
    for name in ALWAYS_QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
