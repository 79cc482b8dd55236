"""The YAML schema: the template validates, every mistake is one line naming the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ceremony.config import CeremonyConfig, default_rehearsal_config, load_config, parse_config, template
from ceremony.errors import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "ceremony.md"


def _parse(text: str) -> CeremonyConfig:
    return parse_config(text, base_dir=Path("/srv/ceremony")).config


def test_template_validates_and_resolves_paths_relative_to_the_file() -> None:
    cfg = _parse(template())
    assert cfg.outputs.directory == Path("/srv/ceremony/ceremony-out")
    assert cfg.hsm.user_pin.env == "NUSEC_HSM_PIN"
    assert cfg.backup.threshold == 2 and len(cfg.backup.custodians) == 3
    assert cfg.root.key_label != cfg.ica.key_label


def test_default_rehearsal_config_puts_outputs_in_workdir(tmp_path: Path) -> None:
    loaded = default_rehearsal_config(tmp_path)
    assert loaded.config.outputs.directory == tmp_path.resolve() / "ceremony"
    assert re.fullmatch(r"[0-9a-f]{64}", loaded.sha256)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("threshold: 2", "thresold: 2"), "unknown field 'thresold' in 'backup'"),
        (("version: 1", "version: 1\nextra: true"), "unknown field 'extra'"),
        (("threshold: 2", "threshold: 4"), "threshold 4 is larger than the 3 custodians"),
        (("threshold: 2", "threshold: 1"), "backup.threshold"),
        (("token_label: nusec-root", "token_label: " + "t" * 33), "hsm.token_label"),
        (("threshold: 2", 'threshold: "2"'), "backup.threshold"),
        (("version: 1", "version: 2"), "version"),
        (("{env: NUSEC_HSM_PIN}", "{env: A, file: b}"), "hsm.user_pin: give exactly one"),
        (("{env: NUSEC_HSM_PIN}", "1234"), "hsm.user_pin"),
        (("key_label: nusec-ica", "key_label: nusec-root-ca"), "must be distinct"),
        (('country: "TW"', 'country: "Taiwan"'), "root.subject.country"),
        (("validity_days: 3650", "validity_days: 9000"), "ica.validity_days must not exceed"),
        (("  transcript: transcript.jsonl", "  transcript: ../escape.jsonl"), "outputs.transcript"),
        (("  chain: chain.pem", "  chain: ica.pem"), "output names must be distinct"),
    ],
)
def test_mistakes_give_one_line_naming_the_field(edit: tuple[str, str], message: str) -> None:
    text = template()
    assert edit[0] in text
    with pytest.raises(ConfigError) as err:
        _parse(text.replace(edit[0], edit[1], 1))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_section_is_named() -> None:
    text = template()
    cut = text[: text.index("outputs:")]
    with pytest.raises(ConfigError, match="missing field 'outputs'"):
        _parse(cut)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("version: 1\nceremony: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "malformed YAML at line" in str(err.value) and str(path) in str(err.value)


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_secret_sources_read_env_and_file_but_never_show_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin_file = tmp_path / "user.pin"
    pin_file.write_text("s3cret-file\n")
    text = template().replace("{env: NUSEC_HSM_PIN}", "{file: user.pin}")
    cfg = parse_config(text, base_dir=tmp_path).config
    assert cfg.hsm.user_pin.file == pin_file
    assert cfg.hsm.user_pin.read("user PIN") == "s3cret-file"
    monkeypatch.setenv("NUSEC_HSM_SO_PIN", "s3cret-env")
    assert cfg.hsm.so_pin.read("SO PIN") == "s3cret-env"
    monkeypatch.delenv("NUSEC_HSM_SO_PIN")
    with pytest.raises(ConfigError, match="environment variable NUSEC_HSM_SO_PIN is not set"):
        cfg.hsm.so_pin.read("SO PIN")
    pin_file.unlink()
    with pytest.raises(ConfigError, match="cannot read") as err:
        cfg.hsm.user_pin.read("user PIN")
    assert "s3cret" not in str(err.value)


def test_docs_describe_every_field() -> None:
    """docs/ceremony.md has a row for every config field (like boulder's README)."""
    doc = DOCS.read_text()

    def fields(model: type, prefix: str) -> list[str]:
        out: list[str] = []
        for name, info in model.model_fields.items():  # type: ignore[attr-defined]
            sub = info.annotation
            path = f"{prefix}{name}"
            nested = [a for a in getattr(sub, "__args__", (sub,)) if hasattr(a, "model_fields")]
            if nested and nested[0].__name__ != "SecretSource":
                out += fields(nested[0], path + ".")
            else:
                out.append(path)
        return out

    missing = [f for f in fields(CeremonyConfig, "") if f"`{f}`" not in doc]
    assert missing == []
