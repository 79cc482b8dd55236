"""Witness acknowledgements scripted from a file, recorded per step; the printable HTML report
parsed back (stdlib HTMLParser, tags balanced) and holding the fingerprints and signature lines."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

from ceremony.run import fingerprint_lines
from tests.ceremony.conftest import nusec

_VOID = {"meta", "br"}


class _Page(HTMLParser):
    """Collects text, ids and checks that every element is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []
        self.ids: dict[str, str] = {}
        self._id: str | None = None
        self.rows = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            return
        self.stack.append(tag)
        self.rows += tag == "tr"
        self._id = dict(attrs).get("id")

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._id:
            self.ids[self._id] = data
            self._id = None


def test_scripted_witness_acks_and_printable_report(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        nusec("ceremony", "template").stdout.replace(
            '    - "Bob Witness"', '    - "Bob Witness"\n    - "Zoe Witness"'
        )
    )
    acks = tmp_path / "acks.txt"
    steps = ["open", "root_key", "root_cert", "ica_key", "ica_cert", "backup", "close"]
    acks.write_text("".join(f"BW\nZW{n}\n".replace(str(n), "") for n in range(len(steps))))
    res = nusec(
        "ceremony",
        "run",
        str(cfg),
        "--rehearsal",
        "--rehearsal-dir",
        str(tmp_path / "r"),
        "--witness-acks",
        str(acks),
    )
    assert res.returncode == 0, res.stderr
    assert "Zoe Witness, type your initials to confirm step 'root_key'" in res.stderr
    transcript = tmp_path / "r" / "ceremony-out" / "transcript.jsonl"
    lines = {json.loads(x)["step"]: json.loads(x)["data"] for x in transcript.read_text().splitlines()}
    for step in steps:
        assert lines[step]["acks"] == {"Bob Witness": "BW", "Zoe Witness": "ZW"}, step
    # One answer short: the run stops, nothing is published.
    acks.write_text("BW\nZW\nBW\n")
    res = nusec(
        "ceremony",
        "run",
        str(cfg),
        "--rehearsal",
        "--rehearsal-dir",
        str(tmp_path / "r2"),
        "--witness-acks",
        str(acks),
    )
    assert res.returncode == 1
    assert (
        res.stderr.splitlines()[-1]
        == "error: witness 'Zoe Witness' did not acknowledge step 'root_key' (initials expected)"
    )
    assert not (tmp_path / "r2" / "ceremony-out").exists()

    report = tmp_path / "report.html"
    res = nusec("ceremony", "report", str(transcript), "-o", str(report))
    assert res.returncode == 0, res.stderr
    page = _Page()
    page.feed(report.read_text())
    page.close()
    assert page.stack == []  # every element closed
    text = " ".join(page.text)
    ver = nusec("ceremony", "verify", str(transcript))
    spki = ver.stdout.split("root key SPKI SHA-256:")[1].split()[0]
    cert = ver.stdout.split("root certificate SHA-256:")[1].split()[0]
    assert page.ids["signer"] == spki and page.ids["root-cert"] == cert
    assert fingerprint_lines(spki, cert)[0].endswith(spki)
    for person in ("Alice Operator", "Bob Witness", "Zoe Witness"):
        assert person in text
    assert "BW" in text and "kek_check" in text and "SoftHSM v2" in text
    assert text.count("Witness") >= 2 and "Operator" in text
    # A report of a tampered transcript is refused.
    raw = transcript.read_bytes().replace(b'"Bob Witness"', b'"Bob W1tness"', 1)
    transcript.write_bytes(raw)
    res = nusec("ceremony", "report", str(transcript), "-o", str(tmp_path / "bad.html"))
    assert res.returncode == 1 and "hash chain broken" in res.stderr and not (tmp_path / "bad.html").exists()
