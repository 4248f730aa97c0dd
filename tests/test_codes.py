"""Finding codes come from the catalogue: written once (audit/catalogue/codes.py), used as constants.

A bare string such as ``f.code == "url.opt_out"`` with a typo would silently never match; these
tests keep every code in the package a ``Code`` constant and every finding's code a catalogue one.
(That each catalogue code is made by some test is checked at the end of a whole run:
tests/code_coverage.py.)
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from pathlib import Path

import msgspec
import pytest
from lcs_records import lcs_records

from audit import findings
from audit.findings import CATALOGUE, Code, Finding

PACKAGE = Path(findings.__file__).resolve().parent
FAMILIES = sorted({code.split(".")[0] for code in CATALOGUE})
CODE_SHAPED = re.compile(rf"^(?:{'|'.join(FAMILIES)})\.[a-z0-9_]+$")
FILE_NAME = re.compile(r"\.(?:json|jsonl|sqlite|toml|html|md|tsv|csv|txt|zip|png|jpg|log)$")


def _looks_like_a_code(text: str) -> bool:
    """A catalogue code, or one misspelt (``metadata.json`` is a file name, not a typo)."""
    return text in CATALOGUE or bool(CODE_SHAPED.match(text) and not FILE_NAME.search(text))


def _sources() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if "catalogue" not in p.parts]


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', '?')}"


def test_no_code_string_outside_the_catalogue() -> None:
    """A code literal (or one built with an f-string) anywhere in audit/ outside audit/catalogue/."""
    found = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if _looks_like_a_code(node.value):
                    found.append(f"{_where(path, node)}: {node.value!r}")
            elif isinstance(node, ast.JoinedStr) and node.values:
                head = node.values[0]
                if isinstance(head, ast.Constant) and re.match(
                    rf"^(?:{'|'.join(FAMILIES)})\.$", str(head.value)
                ):
                    found.append(f"{_where(path, node)}: f-string {str(head.value)!r}...")
    assert not found, "use audit.findings.Code constants instead:\n" + "\n".join(found)


def test_findings_are_built_only_by_make() -> None:
    """``make`` checks the code against the catalogue; a Finding built elsewhere would skip that."""
    outside = []
    for path in _sources():
        if path.name == "findings.py" and path.parent == PACKAGE:
            continue
        calls = [
            n
            for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(n, ast.Call)
        ]
        for call in calls:
            name = getattr(call.func, "id", None) or getattr(call.func, "attr", None)
            if name == "Finding":
                outside.append(_where(path, call))
            if name == "replace" and any(k.arg == "code" for k in call.keywords):
                outside.append(f"{_where(path, call)}: replace(code=...)")
    assert not outside, "build findings with audit.findings.make:\n" + "\n".join(outside)


def test_an_unknown_code_is_refused() -> None:
    with pytest.raises(ValueError, match=r"url\.optout"):
        findings.make("url.optout", "x", dataset="d", file="f")  # type: ignore[arg-type]


def test_a_code_is_its_string_in_every_output() -> None:
    """Findings JSON, reports, gate configs and baselines read exactly as before the constants."""
    made = findings.make(Code.URL_OPT_OUT, "opted out", dataset="d", file="f.json", index=3)
    line = findings.to_jsonl([made])
    assert msgspec.json.decode(line)["code"] == "url.opt_out"
    assert made.code == "url.opt_out" and f"{made.code}" == "url.opt_out"
    assert findings.from_jsonl(line) == [made]
    assert isinstance(findings.from_jsonl(line)[0], Finding)


def test_every_constant_has_its_entry_and_a_predictable_name() -> None:
    assert set(Code) == set(CATALOGUE)
    for code in Code:
        assert CODE_SHAPED.match(code.value), code
        assert code.name == code.value.upper().replace(".", "_"), code
        assert CATALOGUE[code].title and CATALOGUE[code].explanation, code


# ---- codes no other test made (tests/code_coverage.py listed them) --------------------------------


def test_a_byte_identical_release_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """file.known_release: a file with a published release's size and SHA-256 says which one."""
    from audit.loaders import records
    from audit.structure import check_files

    path = tmp_path / "chat.json"
    path.write_text(json.dumps(lcs_records(3)), encoding="utf-8")
    data = path.read_bytes()
    release = ("blip_laion_cc_sbu_558k.json", hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(records, "KNOWN_RELEASES", {len(data): release})
    named = [
        f for f in check_files([path], workers=1).findings if f.code == Code.FILE_KNOWN_RELEASE
    ]
    assert [f.message for f in named] == [
        "byte-identical to the published blip_laion_cc_sbu_558k.json"
    ]
    path.write_bytes(data.replace(b"a photo 0", b"a photo 9", 1))  # same size, one byte edited
    assert Code.FILE_KNOWN_RELEASE not in {f.code for f in check_files([path], workers=1).findings}


def test_a_path_that_is_no_file_is_a_finding(tmp_path: Path) -> None:
    """file.unreadable: a missing path or a folder is reported with the path, not raised."""
    from audit.structure import check_files

    (tmp_path / "folder.json").mkdir()
    for name, why in (("missing.json", "not found"), ("folder.json", "directory")):
        found = check_files([tmp_path / name], workers=1).findings
        assert [f.code for f in found] == [Code.FILE_UNREADABLE]
        assert name in found[0].message and why in found[0].message
