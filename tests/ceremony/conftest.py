"""Ceremony test plumbing: a private SoftHSM2 dir per test, and configs pointing at its tokens.

Each test gets its own SOFTHSM2_CONF (restored afterwards) and no NUSEC_HSM_* variables from the
caller's shell, so tests never see each other's tokens or the machine's default store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ceremony.config import template
from pki.hsm.softhsm import SoftHsmDir, SoftHsmToken

BIN = Path(sys.executable).parent / "nusec"
_HSM_VARS = ("NUSEC_HSM_PIN", "NUSEC_HSM_PIN_FILE", "NUSEC_HSM_SO_PIN", "NUSEC_HSM_SO_PIN_FILE")


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsmDir]:
    monkeypatch.setenv("SOFTHSM2_CONF", str(tmp_path / "unset.conf"))
    for var in _HSM_VARS:
        monkeypatch.delenv(var, raising=False)
    yield SoftHsmDir.create(tmp_path / "hsm")


def write_pins(token: SoftHsmToken, folder: Path, prefix: str = "") -> None:
    """PIN files for the config's ``{file: ...}`` sources (mode 0600)."""
    for name, value in ((f"{prefix}user.pin", token.pin), (f"{prefix}so.pin", token.so_pin)):
        path = folder / name
        path.write_text(value + "\n")
        path.chmod(0o600)


def issuing_token(token: SoftHsmToken) -> SoftHsmToken:
    """The issuing (online) token paired with ``token``: ``<label>-iss`` in the same SoftHSM2 dir,
    made on first use. Its PINs are kept in that test's own SoftHSM2 dir (not in a module-level
    cache shared by every test that imports this conftest)."""
    label = f"{token.label}-iss"
    record = token.conf_path.parent / f"{label}.pins.json"
    if record.is_file():
        pins = json.loads(record.read_text())
        return SoftHsmToken(label, token.conf_path, token.module_path, pins["pin"], pins["so_pin"])
    made = SoftHsmDir(root=token.conf_path.parent, module_path=token.module_path).init_token(label)
    record.write_text(json.dumps({"pin": made.pin, "so_pin": made.so_pin}))
    record.chmod(0o600)
    return made


def config_text(
    token_label: str,
    *,
    issuing_label: str | None = None,
    outputs: str = "out",
    extra: dict[str, str] | None = None,
) -> str:
    """The template, pointed at ``token_label`` (root) and ``issuing_label`` (default
    ``<token_label>-iss``) with PINs from ``user.pin``/``so.pin`` and ``issuing-*.pin`` files."""
    text = (
        template()
        .replace("token_label: nusec-root", f"token_label: {token_label}")
        .replace("token_label: nusec-issuing", f"token_label: {issuing_label or token_label + '-iss'}")
        .replace("{env: NUSEC_HSM_PIN}", "{file: user.pin}")
        .replace("{env: NUSEC_HSM_SO_PIN}", "{file: so.pin}")
        .replace("{env: NUSEC_ISSUING_PIN}", "{file: issuing-user.pin}")
        .replace("{env: NUSEC_ISSUING_SO_PIN}", "{file: issuing-so.pin}")
        .replace("directory: ceremony-out", f"directory: {outputs}")
    )
    for old, new in (extra or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def write_config(folder: Path, token: SoftHsmToken, **kw: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_pins(token, folder)
    write_pins(issuing_token(token), folder, "issuing-")
    path = folder / "ceremony.yaml"
    path.write_text(config_text(token.label, **kw))  # type: ignore[arg-type]
    return path


def nusec(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed CLI (a real subprocess: its own PKCS#11 library state)."""
    full_env = {k: v for k, v in os.environ.items() if k not in _HSM_VARS}
    full_env.update(env or {})
    return subprocess.run(
        [str(BIN), *args], capture_output=True, text=True, timeout=300, check=False, env=full_env, cwd=cwd
    )


def ca_key_attributes(token: SoftHsmToken, label: str) -> dict[str, bool]:
    """PKCS#11 attributes of a private key, and whether an *untrusted* AES KEK can wrap it."""
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
    from pkcs11 import exceptions as p11e

    os.environ["SOFTHSM2_CONF"] = str(token.conf_path)
    lib = pkcs11.lib(token.module_path)
    lib.reinitialize()
    tok = lib.get_token(token_label=token.label)
    with tok.open(rw=True, user_pin=token.pin) as session:
        priv = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
        attrs = {
            name: bool(priv[attr])
            for name, attr in (
                ("token", Attribute.TOKEN),
                ("sensitive", Attribute.SENSITIVE),
                ("extractable", Attribute.EXTRACTABLE),
                ("wrap_with_trusted", Attribute.WRAP_WITH_TRUSTED),
                ("modifiable", Attribute.MODIFIABLE),
            )
        }
        plain_kek = session.generate_key(KeyType.AES, 256, store=False)
        try:
            plain_kek.wrap_key(priv, mechanism=Mechanism.AES_KEY_WRAP_PAD)  # type: ignore[attr-defined]
            attrs["untrusted_kek_can_wrap"] = True
        except (p11e.KeyNotWrappable, p11e.KeyUnextractable):
            attrs["untrusted_kek_can_wrap"] = False
        try:
            priv[Attribute.VALUE]
            attrs["value_readable"] = True
        except p11e.AttributeSensitive:
            attrs["value_readable"] = False
    lib.reinitialize()
    return attrs


def token_objects(token: SoftHsmToken) -> list[tuple[str, str]]:
    """(class, label) of every object on the token, read with python-pkcs11 directly (not pki)."""
    import pkcs11
    from pkcs11 import Attribute

    os.environ["SOFTHSM2_CONF"] = str(token.conf_path)
    lib = pkcs11.lib(token.module_path)
    lib.reinitialize()
    tok = lib.get_token(token_label=token.label)
    with tok.open(user_pin=token.pin) as session:
        objs = [(str(o[Attribute.CLASS].name), str(o[Attribute.LABEL])) for o in session.get_objects()]
    lib.reinitialize()
    return sorted(objs)
