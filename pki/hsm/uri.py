"""RFC 7512 ``pkcs11:`` URIs, and where the PIN comes from (never the command line in clear).

Why: one string names module, token and key, so configs and CLIs never spell slot numbers
(slot ids move when tokens are initialised). Supported path attributes: ``token``,
``manufacturer``, ``serial``, ``model``, ``object``, ``id``, ``type``; query attributes:
``module-path``, ``module-name``, ``pin-source``. ``pin-value`` is refused: a clear PIN in a URI
ends up in shell history and process lists.

PIN resolution order (``resolve_pin``): the URI's ``pin-source`` (``file:`` URI or plain path;
the file's first line), then the ``NUSEC_HSM_PIN`` environment variable, then
``NUSEC_HSM_PIN_FILE``. The security-officer PIN (only needed to mark a KEK trusted) comes from
``NUSEC_HSM_SO_PIN`` or ``NUSEC_HSM_SO_PIN_FILE``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from pki.errors import PinSourceError, Pkcs11UriError

#: The embedded default PKCS#11 module (Debian's softhsm2 package).
DEFAULT_MODULE_PATH = "/usr/lib/softhsm/libsofthsm2.so"
#: Environment variable overriding the default module path.
MODULE_ENV = "NUSEC_PKCS11_MODULE"
PIN_ENV = "NUSEC_HSM_PIN"
PIN_FILE_ENV = "NUSEC_HSM_PIN_FILE"
SO_PIN_ENV = "NUSEC_HSM_SO_PIN"
SO_PIN_FILE_ENV = "NUSEC_HSM_SO_PIN_FILE"

_PATH_ATTRS = ("token", "manufacturer", "serial", "model", "object", "id", "type")
_QUERY_ATTRS = ("module-path", "module-name", "pin-source")
_TYPES = ("private", "public", "secret-key", "cert", "data")
# RFC 7512 pchar without the percent-encoded part; everything else is escaped on output.
_SAFE = "-._~!$&'()*+,=:@"


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed ``pkcs11:`` URI. ``id`` is raw bytes (percent-decoded CKA_ID)."""

    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    object: str | None = None
    id: bytes | None = None
    type: str | None = None
    module_path: str | None = None
    module_name: str | None = None
    pin_source: str | None = None

    def module(self, environ: Mapping[str, str] | None = None) -> str:
        """Module path to load: ``module-path``, else ``$NUSEC_PKCS11_MODULE``, else SoftHSM2."""
        env = os.environ if environ is None else environ
        if self.module_path:
            return self.module_path
        if self.module_name:
            return f"/usr/lib/x86_64-linux-gnu/pkcs11/{self.module_name}.so"
        return env.get(MODULE_ENV) or DEFAULT_MODULE_PATH

    def with_object(self, label: str | None, key_id: bytes | None = None) -> Pkcs11Uri:
        """Same token and module, another object."""
        return Pkcs11Uri(
            self.token,
            self.manufacturer,
            self.serial,
            self.model,
            label,
            key_id,
            self.type,
            self.module_path,
            self.module_name,
            self.pin_source,
        )

    def __str__(self) -> str:
        path: list[str] = []
        for attr in _PATH_ATTRS:
            value = getattr(self, attr)
            if value is None:
                continue
            text = "".join(f"%{b:02X}" for b in value) if attr == "id" else quote(value, safe=_SAFE)
            path.append(f"{attr}={text.replace(';', '%3B')}")
        query = [
            f"{attr}={quote(getattr(self, attr.replace('-', '_')), safe=_SAFE + '/').replace('&', '%26')}"
            for attr in _QUERY_ATTRS
            if getattr(self, attr.replace("-", "_")) is not None
        ]
        return "pkcs11:" + ";".join(path) + ("?" + "&".join(query) if query else "")


def parse_pkcs11_uri(text: str) -> Pkcs11Uri:
    """Parse an RFC 7512 URI; ``Pkcs11UriError`` names the problem (never echoes a PIN)."""
    if not text.lower().startswith("pkcs11:"):
        raise Pkcs11UriError("PKCS#11 URI must start with 'pkcs11:'")
    body = text[len("pkcs11:") :]
    path_part, _, query_part = body.partition("?")
    values: dict[str, str | bytes] = {}
    for item in filter(None, path_part.split(";")):
        name, eq, raw = item.partition("=")
        if not eq:
            raise Pkcs11UriError(f"PKCS#11 URI path attribute {name!r} has no value")
        if name in values:
            raise Pkcs11UriError(f"PKCS#11 URI repeats attribute {name!r}")
        if name == "id":
            values[name] = unquote_to_bytes(raw)
        elif name in _PATH_ATTRS:
            values[name] = unquote(raw, errors="strict")
        elif name in (
            "slot-id",
            "slot-description",
            "slot-manufacturer",
            "library-description",
            "library-manufacturer",
            "library-version",
        ):
            raise Pkcs11UriError(f"PKCS#11 URI attribute {name!r} is not supported; name the token by label")
        elif name.startswith("x-"):
            continue
        else:
            raise Pkcs11UriError(f"unknown PKCS#11 URI path attribute {name!r}")
    for item in filter(None, query_part.split("&")):
        name, eq, raw = item.partition("=")
        if name == "pin-value":
            raise Pkcs11UriError(
                "pin-value in a PKCS#11 URI is refused; use pin-source=file:... or NUSEC_HSM_PIN"
            )
        if not eq:
            raise Pkcs11UriError(f"PKCS#11 URI query attribute {name!r} has no value")
        if name in _QUERY_ATTRS:
            key = name
            if key in values:
                raise Pkcs11UriError(f"PKCS#11 URI repeats attribute {name!r}")
            values[key] = unquote(raw, errors="strict")
        elif name.startswith("x-"):
            continue
        else:
            raise Pkcs11UriError(f"unknown PKCS#11 URI query attribute {name!r}")
    type_ = values.get("type")
    if type_ is not None and type_ not in _TYPES:
        raise Pkcs11UriError(f"PKCS#11 URI type must be one of {', '.join(_TYPES)}")

    def s(key: str) -> str | None:
        v = values.get(key)
        return v if isinstance(v, str) else None

    id_value = values.get("id")
    return Pkcs11Uri(
        token=s("token"),
        manufacturer=s("manufacturer"),
        serial=s("serial"),
        model=s("model"),
        object=s("object"),
        id=id_value if isinstance(id_value, bytes) else None,
        type=s("type"),
        module_path=s("module-path"),
        module_name=s("module-name"),
        pin_source=s("pin-source"),
    )


def unquote_to_bytes(raw: str) -> bytes:
    """Percent-decode an RFC 7512 value into raw bytes (for ``id``)."""
    from urllib.parse import unquote_to_bytes as _u

    try:
        return _u(raw)
    except ValueError:
        raise Pkcs11UriError("PKCS#11 URI id is not valid percent-encoding") from None


def _read_pin_file(source: str, what: str) -> str:
    path = Path(urlparse(source).path) if source.startswith("file:") else Path(source)
    try:
        with path.open(encoding="utf-8") as fh:
            line = fh.readline()
    except OSError as exc:
        raise PinSourceError(f"cannot read {what} file {path}: {exc.strerror}") from None
    pin = line.rstrip("\r\n")
    if not pin:
        raise PinSourceError(f"{what} file {path} is empty")
    return pin


def resolve_pin(uri: Pkcs11Uri | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The user PIN: ``pin-source`` file, else ``$NUSEC_HSM_PIN``, else ``$NUSEC_HSM_PIN_FILE``."""
    env = os.environ if environ is None else environ
    if uri is not None and uri.pin_source:
        return _read_pin_file(uri.pin_source, "PIN")
    if env.get(PIN_ENV):
        return env[PIN_ENV]
    if env.get(PIN_FILE_ENV):
        return _read_pin_file(env[PIN_FILE_ENV], "PIN")
    raise PinSourceError(
        f"no HSM PIN: set {PIN_ENV} or {PIN_FILE_ENV}, or add pin-source=file:... to the URI"
    )


def resolve_so_pin(environ: Mapping[str, str] | None = None) -> str | None:
    """The security-officer PIN from ``$NUSEC_HSM_SO_PIN`` / ``$NUSEC_HSM_SO_PIN_FILE``, or None."""
    env = os.environ if environ is None else environ
    if env.get(SO_PIN_ENV):
        return env[SO_PIN_ENV]
    if env.get(SO_PIN_FILE_ENV):
        return _read_pin_file(env[SO_PIN_FILE_ENV], "SO PIN")
    return None
