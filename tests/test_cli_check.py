"""`llava-audit check`: exit codes, the findings JSONL contract, the --json summary, the console."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import realsamples

from audit.cli import main

FIELDS = {"dataset", "file", "index", "record_id", "code", "severity", "message"}


def _lcs() -> list[dict[str, object]]:
    """Ten real LCS-558K records (tests/data), so these tests run without ../shared."""
    records: list[dict[str, object]] = realsamples.load(realsamples.LCS_CHAT)[:10]
    return records


def test_clean_real_file_exits_0_and_writes_the_findings_contract(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "findings.jsonl"
    path = realsamples.CC3M_CHAT
    assert main(["check", str(path), "--findings", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines and all(set(line) == FIELDS for line in lines)
    assert {line["severity"] for line in lines} == {"info"}
    assert "0 errors" in capsys.readouterr().out


def test_errors_exit_1_and_the_console_shows_code_index_and_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = _lcs()
    records[7]["conversations"][1]["from"] = "assistant"  # type: ignore[index]
    path = tmp_path / "blip_laion_cc_sbu_558k.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    out = tmp_path / "f.jsonl"
    assert main(["check", str(path), "--findings", str(out)]) == 1
    console = capsys.readouterr().out
    assert "turn.role" in console and "[7]" in console and str(records[7]["id"]) in console
    errors = [json.loads(x) for x in out.read_text().splitlines() if '"error"' in x]
    assert [(e["code"], e["index"], e["record_id"]) for e in errors] == [
        ("turn.role", 7, records[7]["id"])
    ]


def test_json_summary_is_machine_readable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = _lcs()
    records[2]["image"] = ""
    path = tmp_path / "data.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    assert main(["check", str(path), "--json", "--kind", "lcs-chat"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["exit_code"] == 1
    assert summary["records"] == 10
    assert summary["by_severity"]["error"] == 1
    assert summary["by_code"]["image.path"] == 1
    assert summary["files"][str(path)]["image_records"] == 10


def test_chat_and_metadata_are_paired(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chat = json.loads((realsamples.CC3M_CHAT).read_text(encoding="utf-8"))
    meta = [
        {"id": r["id"], "image": r["image"], "url": "http://e.invalid/1.jpg", "caption": "other"}
        for r in chat
    ]
    (tmp_path / "chat.json").write_text(json.dumps(chat), encoding="utf-8")
    (tmp_path / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    paths = [str(tmp_path / "metadata.json"), str(tmp_path / "chat.json")]
    assert main(["check", *paths, "--json"]) == 0  # caption differences are warnings
    summary = json.loads(capsys.readouterr().out)
    assert summary["by_code"]["xfile.caption_mismatch"] == 5
    assert summary["files"][str(tmp_path / "metadata.json")]["crossfile"]["matched"] == 5


def test_help_lists_check(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    assert "--findings" in capsys.readouterr().out


def test_forced_kind_keeps_the_metadata_file_a_metadata_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chat = json.loads((realsamples.CC3M_CHAT).read_text(encoding="utf-8"))
    meta = [{"id": r["id"], "image": r["image"], "url": "http://e.invalid/1.jpg"} for r in chat]
    (tmp_path / "chat.json").write_text(json.dumps(chat), encoding="utf-8")
    (tmp_path / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    paths = [str(tmp_path / "chat.json"), str(tmp_path / "metadata.json")]
    assert main(["check", *paths, "--kind", "cc3m-chat", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["files"][paths[1]]["crossfile"]["matched"] == 5


@pytest.mark.parametrize("workers", ["1", "2"])
def test_unreadable_chat_file_does_not_hold_up_its_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: str
) -> None:
    chat = json.loads((realsamples.CC3M_CHAT).read_text(encoding="utf-8"))
    meta = [{"id": r["id"], "image": r["image"], "url": "http://e.invalid/1.jpg"} for r in chat]
    (tmp_path / "chat.json").write_bytes(b"")
    (tmp_path / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    paths = [str(tmp_path / "chat.json"), str(tmp_path / "metadata.json")]
    assert main(["check", *paths, "--json", "--workers", workers]) == 3
    summary = json.loads(capsys.readouterr().out)
    assert summary["by_code"]["file.empty"] == 1
    assert "crossfile" not in summary["files"][paths[1]]
    assert summary["records"] == 5


def _instruct_records() -> list[dict[str, object]]:
    """The demo's Instruct file in small: COCO-named records, one with an integer id."""
    records: list[dict[str, object]] = [
        {
            "id": f"{442786 + i:012d}",
            "image": f"{442786 + i:012d}.jpg",
            "conversations": [
                {"from": "human", "value": "What do you see happening in this image?\n<image>"},
                {"from": "gpt", "value": "A plaza with people walking."},
            ],
        }
        for i in range(8)
    ]
    records[4]["id"] = 442790
    return records


def test_one_odd_record_does_not_flip_the_kind_and_the_first_line_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "llava_instruct_150k.json"
    path.write_text(json.dumps(_instruct_records()), encoding="utf-8")
    main(["check", str(path)])
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "Kind: instruct (llava_instruct_150k.json, detected)"
    assert "mix.prefix" not in out
    main(["check", str(path), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["files"][str(path)]["kind"] == "instruct"
    assert "mix.prefix" not in summary["by_code"]


def test_an_ambiguous_kind_is_said_and_names_the_kind_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [*_instruct_records()[:5], *_lcs()[:5]]
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    main(["check", str(path)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Kind: ")
    assert "disagree" in lines[1] and "--kind" in lines[1]
    main(["check", str(path), "--json"])
    assert "disagree" in json.loads(capsys.readouterr().out)["files"][str(path)]["kind_note"]
    main(["check", str(path), "--kind", "lcs-chat"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Kind: lcs-chat (mine.json, from --kind)"
    assert "--kind" not in lines[1]


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        (
            "x.jpg",
            b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
            "file is a JPEG image, not a LLaVA JSON file",
        ),
        ("x.json", b"\x89PNG\r\n\x1a\n\x00\x00", "file is a PNG image, not a LLaVA JSON file"),
        ("images.zip", b"PK\x03\x04\x14\x00", "file is a zip archive, not a LLaVA JSON file"),
        ("x.json", b"PAR1\x15\x04", "file is a Parquet file, not a LLaVA JSON file; name it"),
        ("x.parquet", b"PK\x03\x04\x14\x00", "shard is not a Parquet file"),
        ("folder", None, "file is a directory with no .jsonl, .jsonl.gz or .parquet shards"),
        ("missing.json", "absent", "file not found"),
    ],
)
def test_what_is_not_a_llava_file_is_said_first_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes | str | None,
    said: str,
) -> None:
    path = tmp_path / name
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content + b"\x00" * 600)
    good = tmp_path / "blip_laion_cc_sbu_558k.json"
    good.write_text(json.dumps(_lcs()), encoding="utf-8")
    assert main(["check", str(good), str(path)]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing audited, nothing printed before the error
    [line] = captured.err.splitlines()
    assert line.startswith(f"llava-audit: {path}: {said}")
