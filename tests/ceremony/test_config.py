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


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        (b"s3cret\r\n", "contains a CR"),
        (b"s3cret \n", "space or tab at its start or end"),
        (b" s3cret\n", "space or tab at its start or end"),
        (b"s3cret\nsecond line\n", "more than one line"),
        (b"s3cret\n\n", "more than one line"),
        (b"\n", "is empty"),
    ],
)
def test_secret_file_rules_are_enforced_when_read(tmp_path: Path, content: bytes, rule: str) -> None:
    """Defect 6: a CR or trailing space in a secret file only surfaced at restore."""
    (tmp_path / "pass.txt").write_bytes(content)
    text = template().replace("{env: NUSEC_HSM_PIN}", "{file: pass.txt}")
    cfg = parse_config(text, base_dir=tmp_path).config
    with pytest.raises(ConfigError, match=rule) as err:
        cfg.hsm.user_pin.read("hsm.user_pin")
    assert "s3cret" not in str(err.value) and str(err.value).startswith("hsm.user_pin: file ")


def test_secret_env_follows_the_same_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_config(template(), base_dir=tmp_path).config
    monkeypatch.setenv("NUSEC_HSM_PIN", "pin\r")
    with pytest.raises(ConfigError, match="environment variable NUSEC_HSM_PIN contains a CR"):
        cfg.hsm.user_pin.read("hsm.user_pin")


@pytest.mark.parametrize(
    ("edit", "conflict"),
    [
        (
            ('    - "Bob Witness"', '    - "Alice Operator"'),
            "the operator 'Alice Operator' is also a witness",
        ),
        (
            ('    - "Carol Custodian"', '    - "Alice Operator"'),
            "the operator 'Alice Operator' is also a custodian",
        ),
        (('    - "Carol Custodian"', '    - "Bob Witness"'), "custodian 'Bob Witness' is also a witness"),
    ],
)
def test_duties_must_be_separate_except_in_rehearsal(edit: tuple[str, str], conflict: str) -> None:
    """Defect 6: the operator could also be a witness and a custodian."""
    text = template()
    assert edit[0] in text
    loaded = parse_config(text.replace(edit[0], edit[1], 1), base_dir=Path("/srv"))
    assert loaded.config.duty_conflicts() == [conflict]
    with pytest.raises(ConfigError, match=f"{conflict} .separate duties; allowed only with --rehearsal."):
        loaded.check_duties(rehearsal=False)
    loaded.check_duties(rehearsal=True)
    parse_config(template(), base_dir=Path("/srv")).check_duties(rehearsal=False)


def test_validity_dates_come_from_the_config_and_the_clock_must_agree() -> None:
    """Defect 6: validity dates came from the clock, not from the reviewed config."""
    import datetime as dt

    from ceremony.config import check_clock

    text = template()
    today = dt.datetime.now(dt.UTC).date().isoformat()
    text = text.replace(f"not_before: {today}", "not_before: 2027-03-01")
    cfg = parse_config(text, base_dir=Path("/srv")).config
    assert cfg.root.validity() == (
        dt.datetime(2027, 3, 1, tzinfo=dt.UTC),
        dt.datetime(2027, 3, 1, tzinfo=dt.UTC) + dt.timedelta(days=7300),
    )
    check_clock(cfg, dt.datetime(2027, 3, 1, 9, 30, tzinfo=dt.UTC))
    check_clock(cfg, dt.datetime(2027, 2, 28, 1, 0, tzinfo=dt.UTC))
    for wrong in (dt.datetime(2027, 2, 27, 23, 0, tzinfo=dt.UTC), dt.datetime(2027, 4, 1, tzinfo=dt.UTC)):
        with pytest.raises(ConfigError, match="check the clock and the reviewed dates"):
            check_clock(cfg, wrong)
    head, _, tail = text.replace("validity_days: 3650", "validity_days: 7300").rpartition(
        "not_before: 2027-03-01"
    )
    with pytest.raises(ConfigError, match="inside the root's"):  # the ICA would outlive the root
        parse_config(head + "not_before: 2027-03-02" + tail, base_dir=Path("/"))


def test_root_and_issuing_tokens_must_differ() -> None:
    text = template().replace("token_label: nusec-issuing", "token_label: nusec-root")
    with pytest.raises(ConfigError, match="hsm and issuing_hsm must be different tokens"):
        parse_config(text, base_dir=Path("/srv"))
