"""Rich markup never eats text: a value holding ``[bold]`` and ``[[datasets]]`` (a file, dataset or
folder name, a config value in an error) is printed as written by every command that shows it."""

from __future__ import annotations

import json
from pathlib import Path

import imagefactory as make
import pytest
import realsamples

from audit.cli import main

ODD = "[bold]x[[datasets]]"


def _out(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    captured = capsys.readouterr()
    return captured.out.replace("\n", ""), captured.err.replace("\n", "")


def _chat(folder: Path) -> Path:
    path = folder / f"{ODD}.json"
    path.write_text(realsamples.CC3M_CHAT.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def test_error_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / f"{ODD}.json")]) == 3
    assert f"llava-audit: {tmp_path}/{ODD}.json: file not found" in _out(capsys)[1]
    assert main(["serve", "--dir", str(tmp_path / ODD)]) == 2
    assert f"{ODD}: no reports folder" in _out(capsys)[1]
    config = tmp_path / "audit.toml"
    config.write_text('[schedule]\ncron = "[bold] * * *"\n', encoding="utf-8")
    assert main(["schedule", "--once", "--config", str(config)]) == 2
    assert "llava-audit: [schedule] cron '[bold] * * *'" in _out(capsys)[1]


def test_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / f"{ODD}.toml"
    assert main(["init", str(target)]) == 0
    out = _out(capsys)[0]
    assert f"wrote {target}: edit the [[datasets]] entries" in out


def test_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(_chat(tmp_path))]) == 0
    out = _out(capsys)[0]
    assert f"Kind: cc3m-chat ({ODD}.json, detected)" in out
    assert f"{tmp_path}/{ODD}.json" in out  # the statistics' file line
    empty = tmp_path / f"{ODD}-empty.json"
    empty.write_bytes(b"")
    assert main(["check", str(empty)]) == 3
    assert f"llava-audit: {empty}" in _out(capsys)[1]


def test_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chat = _chat(tmp_path)
    root = tmp_path / "images"
    root.mkdir()
    for record in json.loads(chat.read_text(encoding="utf-8")):
        (root / record["image"]).write_bytes(make.jpeg(seed=1))
    assert main(["images", str(chat), "--root", str(root), "--no-cache"]) == 0
    assert ODD in _out(capsys)[0]


def test_urls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta = tmp_path / f"{ODD}.json"
    meta.write_text(json.dumps([{"id": "000000001", "url": "http://127.0.0.1:9/a.jpg"}]))
    main(["urls", str(meta), "--state", str(tmp_path / "s.sqlite")])  # refused: private
    assert f"{ODD}.json" in _out(capsys)[0]


def test_license(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "audit.toml"
    config.write_text(
        f'[[datasets]]\nname = "{ODD}"\nkind = "cc3m-chat"\nchat = "{_chat(tmp_path).name}"\n',
        encoding="utf-8",
    )
    main(["license", "--config", str(config)])
    assert f"dataset {ODD}" in _out(capsys)[0]
