"""Records LLaVA's trainer still reads with ``json.load`` (NaN, Infinity, 1e400, lone surrogates)
or that it cannot (1,000+ levels of nesting) are findings on that record, never an unauditable
file or a crash; and the file-level verdicts come from the bytes, not from a decoder's messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cc3m_records import cc3m_records
from test_file_defects import DEFECTS

from audit.cli import main
from audit.findings import from_jsonl
from audit.loaders import jsonfile, records, salvage
from audit.structure import check_files

N, BAD = 3_000, 2_500
ID = f'"id": "GCC_train_{BAD:09d}"'
ANSWER = f'"value": "a photo of thing number {BAD} ."'
DEEP = "[" * 1_200 + "]" * 1_200

# name, (text in record 2,500, what replaces it), its codes, records checked, exit code
ODDITIES = [
    ("NaN", (ID, f'"model": NaN, {ID}'), {"record.non_finite"}, N, 0),
    ("Infinity", (ID, f'"model": Infinity, {ID}'), {"record.non_finite"}, N, 0),
    ("-Infinity", (ID, f'"model": -Infinity, {ID}'), {"record.non_finite"}, N, 0),
    ("1e400", (ID, f'"model": 1e400, {ID}'), {"record.non_finite"}, N, 0),
    ("NaN answer", (ANSWER, '"value": NaN'), {"record.non_finite", "turn.keys"}, N - 1, 1),
    (
        "lone surrogate",
        (ANSWER, ANSWER.replace("photo", "photo \\ud800")),
        {"record.lone_surrogate"},
        N,
        1,
    ),
    ("1,200 levels deep", (ANSWER, f'"value": {DEEP}'), {"record.too_deep"}, N - 1, 1),
]


def _chat_file(folder: Path, change: tuple[str, str], compact: bool) -> Path:
    """3,000 clean CC-3M chat records whose record 2,500 is broken one way (as text: json.dumps
    cannot write most of these)."""
    text = json.dumps(cc3m_records(N), indent=None if compact else 2)
    assert text.count(change[0]) == 1
    path = folder / "chat.json"
    path.write_text(text.replace(*change), encoding="utf-8")
    return path


@pytest.mark.parametrize("compact", [False, True], ids=["indented", "compact"])
@pytest.mark.parametrize(
    ("replacement", "codes", "checked", "exit_code"),
    [o[1:] for o in ODDITIES],
    ids=[o[0] for o in ODDITIES],
)
def test_odd_record_is_reported_and_the_rest_audited(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    compact: bool,
    replacement: tuple[str, str],
    codes: set[str],
    checked: int,
    exit_code: int,
) -> None:
    path = _chat_file(tmp_path, replacement, compact)
    out = tmp_path / "findings.jsonl"
    assert main(["check", str(path), "--findings", str(out), "--json"]) == exit_code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    found = [f for f in from_jsonl(out.read_bytes()) if not f.code.startswith("stats.")]
    assert {f.code for f in found if f.index is not None} == codes
    assert {f.index for f in found if f.index is not None} == {BAD}
    assert [f.code for f in found if f.index is None] == ["file.record_count"]
    assert json.loads(captured.out)["records"] == checked
    assert all("\n" not in f.message and "\ud800" not in f.message for f in found)


@pytest.mark.parametrize(
    ("replacement", "codes"), [(o[1], o[2]) for o in ODDITIES], ids=[o[0] for o in ODDITIES]
)
def test_only_the_odd_records_chunk_leaves_the_fast_path(
    tmp_path: Path, replacement: tuple[str, str], codes: set[str]
) -> None:
    path = _chat_file(tmp_path, replacement, compact=False)
    stream = records.open_stream(path, "cc3m-chat", chunk_bytes=20_000)
    streamed = sum(len(chunk) for chunk in stream)
    assert stream.stats["chunks"] > 10 and stream.stats["untyped_chunks"] == 1
    assert stream.stats["elements"] == N
    whole = records.load_records(path, "cc3m-chat")
    assert streamed == len(whole.records) and stream.positions() == whole.index
    assert stream.findings == whole.findings
    assert {f.code for f in whole.findings} == codes


def test_a_surrogate_is_audited_as_a_replacement_character(tmp_path: Path) -> None:
    path = _chat_file(tmp_path, ODDITIES[5][1], compact=False)
    loaded = records.load_records(path, "cc3m-chat")
    assert loaded.records[BAD].conversations[1].value.startswith("a photo \ufffd of")


class _Scrambled:
    """A msgspec JSON decoder whose errors say nothing useful, and that reports bad UTF-8 as
    UnicodeDecodeError as msgspec < 0.23 did: what another msgspec version may well do."""

    real = msgspec.json.Decoder

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.inner = self.real(*args, **kwargs)

    def decode(self, data: Any) -> Any:
        try:
            return self.inner.decode(data)
        except msgspec.ValidationError:
            raise msgspec.ValidationError("no details") from None
        except msgspec.DecodeError:
            try:
                bytes(data).decode("utf-8")
            except UnicodeDecodeError:
                raise UnicodeDecodeError("utf-8", b"", 0, 1, "no details") from None
            raise msgspec.DecodeError("no details") from None


@pytest.mark.parametrize("data", [d[1] for d in DEFECTS], ids=[d[0] for d in DEFECTS])
def test_verdicts_do_not_depend_on_decoder_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes
) -> None:
    path = tmp_path / "blip_laion_cc_sbu_558k.json"
    path.write_bytes(data)
    expected = check_files([path], workers=1)
    scrambled_decode = _Scrambled()
    monkeypatch.setattr(msgspec.json, "Decoder", _Scrambled)
    monkeypatch.setattr(msgspec.json, "decode", scrambled_decode.decode)
    monkeypatch.setattr(jsonfile, "_RAW_LIST", _Scrambled(list[msgspec.Raw]))
    scrambled = check_files([path], workers=1)
    assert scrambled.findings == expected.findings
    assert scrambled == expected


def test_odd_key_names_keep_messages_on_one_line(tmp_path: Path) -> None:
    path = _chat_file(tmp_path, (ID, f'"a\\nb": 1, "\\ud800": 2, {ID}'), compact=False)
    loaded = records.load_records(path, "cc3m-chat")
    [extra] = [f for f in loaded.findings if f.code == "record.extra_key"]
    assert extra.index == BAD and extra.message == 'extra keys "a\\nb", "\\ufffd"'


def test_a_record_too_deep_to_render_is_too_deep_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value msgspec just manages to decode can still be too deep for repr() in a message."""
    image = f'"image": "GCC_train_{BAD:09d}.jpg"'
    path = _chat_file(tmp_path, (image, '"image": [[["deep"]]]'), compact=False)

    def too_deep(value: object, limit: int = 60) -> str:
        raise RecursionError

    monkeypatch.setattr(salvage, "excerpt", too_deep)
    loaded = records.load_records(path, "cc3m-chat")
    assert [(f.code, f.index) for f in loaded.findings] == [("record.too_deep", BAD)]
    assert len(loaded.records) == N - 1
