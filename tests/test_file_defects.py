"""File-level defects: one clear line naming the file and the position, the right exit code, and
whatever records can still be read are audited. Never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cc3m_records import cc3m_records
from lcs_records import LCS_RECORD

from audit import structure_worker
from audit.cli import main
from audit.findings import from_jsonl
from audit.loaders import records
from audit.loaders.jsonfile import NotStreamableError
from audit.structure import check_files

GOOD = LCS_RECORD
ARRAY = json.dumps(
    [GOOD, GOOD | {"id": "004539376", "image": "00453/004539376.jpg"}], indent=2
).encode()
BAD_TOKEN = ARRAY.replace(b'"gpt"', b"gpt", 1)
BAD_LINE = BAD_TOKEN[: BAD_TOKEN.index(b"gpt,")].count(b"\n") + 1
END_LINE = ARRAY.count(b"\n") + 2
LINES = b"".join(json.dumps(r).encode() + b"\n" for r in json.loads(ARRAY))

# name, bytes, exit code, code, text in the one-line message, records still audited
DEFECTS = [
    ("empty", b"", 3, "file.empty", "the file is empty", 0),
    ("whitespace", b" \n\n", 3, "file.empty", "only whitespace", 0),
    ("truncated in record 0", ARRAY[:100], 3, "file.invalid_json", "truncated JSON", 0),
    (
        "truncated in record 1",
        ARRAY[:-40],
        1,
        "file.invalid_json",
        "complete records before line",
        1,
    ),
    ("bad token", BAD_TOKEN, 3, "file.invalid_json", f"line {BAD_LINE}, column", 0),
    (
        "top-level object",
        json.dumps({"data": [GOOD]}).encode(),
        3,
        "file.not_array",
        "an object",
        0,
    ),
    ("scalar", b"42", 3, "file.not_array", "an int", 0),
    (
        "trailing garbage",
        ARRAY + b"\n]\n",
        1,
        "file.trailing_data",
        f"line {END_LINE}, column 1",
        2,
    ),
    ("two arrays", ARRAY + ARRAY, 1, "file.trailing_data", "data after the end", 2),
    ("json lines", LINES, 1, "file.jsonl", "JSON Lines (2 lines)", 2),
    ("bom", b"\xef\xbb\xbf" + ARRAY, 1, "file.bom", "byte 0", 2),
    ("latin-1", ARRAY.replace(b"mattress", b"matt\xe9ress"), 1, "file.encoding", "0xe9", 2),
]


@pytest.mark.parametrize(
    ("data", "exit_code", "code", "text", "audited"),
    [d[1:] for d in DEFECTS],
    ids=[d[0] for d in DEFECTS],
)
def test_file_level_defect(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    data: bytes,
    exit_code: int,
    code: str,
    text: str,
    audited: int,
) -> None:
    path = tmp_path / "blip_laion_cc_sbu_558k.json"
    path.write_bytes(data)
    out = tmp_path / "findings.jsonl"
    assert main(["check", str(path), "--findings", str(out), "--json"]) == exit_code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    file_level = [
        f
        for f in from_jsonl(out.read_bytes())
        if f.index is None and not f.code.startswith("stats.")
    ]
    file_level = [f for f in file_level if f.code != "file.record_count"]
    assert [f.code for f in file_level] == [code]
    assert str(path) in file_level[0].message and text in file_level[0].message
    assert "\n" not in file_level[0].message
    summary = json.loads(captured.out)
    assert summary["records"] == audited
    if exit_code == 3:  # the one-line message on stderr names the file and what is wrong
        assert str(path) in captured.err and text.split()[0] in captured.err


def test_jsonl_line_that_is_not_json_is_one_finding(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(LINES + b'{"id": "x", "conv\n' + LINES)
    out = tmp_path / "f.jsonl"
    assert main(["check", str(path), "--kind", "lcs-chat", "--findings", str(out)]) == 1
    codes = {
        (f.code, f.index) for f in from_jsonl(out.read_bytes()) if not f.code.startswith("stats.")
    }
    assert ("record.invalid_json", 2) in codes and ("file.jsonl", None) in codes


@pytest.mark.parametrize("target", ["missing.json", "."], ids=["missing", "directory"])
def test_unreadable_path_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    path = tmp_path / target
    assert main(["check", str(path)]) == 3
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err


def test_unknown_kind_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(ARRAY)
    with pytest.raises(SystemExit) as exc:
        main(["check", str(path), "--kind", "laion"])
    assert exc.value.code == 2


def _pair_with_bad_records(folder: Path) -> list[Path]:
    """A CC-3M chat + metadata pair, 60 records each, with defects in a middle chunk of each."""
    chat = cc3m_records(60)
    meta = [
        {
            "id": r["id"],
            "image": r["image"],
            "caption": r["conversations"][1]["value"],
            "url": f"http://x/{i}.jpg",
        }
        for i, r in enumerate(chat)
    ]
    chat[30]["conversations"][1]["value"] = None  # dropped: turn.keys
    chat[31]["conversations"][0]["lang"] = "en"  # kept: turn.extra_key
    chat[32]["conversations"][0]["from"] = "gpt"  # a rule on the columns, after the drop
    meta[33]["url"] = 5  # dropped: metadata.field
    meta[34]["caption"] = "not the chat's caption"  # a cross-file rule, after the drop
    paths = [folder / "chat.json", folder / "metadata.json"]
    for path, data in zip(paths, (chat, meta), strict=True):
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return paths


def test_chunk_fallback_reports_what_the_whole_file_fallback_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streamed in small chunks, a bad record takes only its chunk off the typed path, and the
    audit (findings, indexes, stats, cross-file checks) equals the whole-file fallback's."""
    paths = _pair_with_bad_records(tmp_path)
    streams: list[records.RecordStream] = []

    def small_chunks(path: Path, kind: str, *, dataset: str | None) -> records.RecordStream:
        streams.append(records.open_stream(path, kind, dataset=dataset, chunk_bytes=1_500))
        return streams[-1]

    monkeypatch.setattr(structure_worker, "open_stream", small_chunks)
    streamed = check_files(paths, workers=1)
    assert len(streams) == 2
    for stream in streams:
        assert stream.stats["chunks"] >= 5 and 1 <= stream.stats["untyped_chunks"] <= 2

    def never_streams(*args: object, **kwargs: object) -> None:
        raise NotStreamableError("forced")

    monkeypatch.setattr(records, "iter_array_chunks", never_streams)
    whole_file = check_files(paths, workers=1)
    assert streamed.findings == whole_file.findings
    assert streamed == whole_file
    assert [
        (Path(f.file).name, f.index, f.code) for f in streamed.findings if f.index is not None
    ] == [
        ("chat.json", 30, "turn.keys"),
        ("chat.json", 31, "turn.extra_key"),
        ("chat.json", 32, "turn.order"),
        ("metadata.json", 33, "metadata.field"),
        ("chat.json", 33, "xfile.missing_metadata"),
        ("metadata.json", 30, "xfile.missing_chat"),
        ("chat.json", 34, "xfile.caption_mismatch"),
    ]
