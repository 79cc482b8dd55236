"""The ceremony types, by the ``type`` field of their YAML file: root (default), intermediate,
crl, batch-keys, nubl2-key, restore. One place maps a type to its template, parser and run
function, so the CLI's ``template``/``validate``/``run`` work the same for every type (like
boulder's ceremony types).
``nusec ceremony restore`` also takes the root ceremony's file with ``--from``/``--share``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ceremony import batch_keys, crl, intermediate, nubl2_key, restore_config
from ceremony.config import SOFTHSM2_MODULE, parse_config, read_yaml_mapping
from ceremony.config import TEMPLATE as ROOT_TEMPLATE
from ceremony.errors import ConfigError

TYPES = ("root", "intermediate", "crl", "batch-keys", "nubl2-key", "restore")


@dataclass(frozen=True)
class Loaded:
    """A validated ceremony file of any type."""

    type: str
    loaded: Any  # the type's LoadedConfig / LoadedIntermediate / ...

    @property
    def config(self) -> Any:
        return self.loaded.config


def template(kind: str = "root") -> str:
    """The commented template of ``kind``; it validates as-is."""
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    text = {
        "root": ROOT_TEMPLATE,
        "intermediate": intermediate.TEMPLATE,
        "crl": crl.TEMPLATE,
        "batch-keys": batch_keys.TEMPLATE,
        "nubl2-key": nubl2_key.TEMPLATE,
        "restore": restore_config.TEMPLATE,
    }.get(kind)
    if text is None:
        raise ConfigError(f"unknown ceremony type {kind!r} (one of: {', '.join(TYPES)})")
    return text.format(date=date, module=SOFTHSM2_MODULE)


def load(path: Path) -> Loaded:
    """Read and validate a ceremony file of any type."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    kind = str(read_yaml_mapping(text, str(path)).get("type", "root"))
    base = path.resolve().parent
    parsers: dict[str, Callable[..., Any]] = {
        "root": parse_config,
        "intermediate": intermediate.parse,
        "crl": crl.parse,
        "batch-keys": batch_keys.parse,
        "nubl2-key": nubl2_key.parse,
        "restore": restore_config.parse,
    }
    if kind not in parsers:
        raise ConfigError(f"{path}: type: unknown ceremony type {kind!r} (one of: {', '.join(TYPES)})")
    return Loaded(kind, parsers[kind](text, base_dir=base, source=path))


def outputs_dir(loaded: Loaded) -> Path:
    return Path(loaded.config.outputs.directory)
