"""The export's file writing: a subset written from its parts is whole, a failure is one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from audit.errors import OutputError
from audit.export import write as out
from audit.export.layout import read_raw


def test_a_subset_is_written_whole_even_when_the_disk_takes_a_few_bytes_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "chat.json"
    source.write_text('[\n  {"id": "a"},\n  {"id": "b"},\n  {"id": "c"}\n]')
    raw = read_raw(source)
    real = os.writev

    def short(fd: int, buffers: list[bytes]) -> int:  # a short write, as a signal can cause
        return (
            real(fd, [bytes(buffers[0])[:3]])
            if buffers and len(buffers[0]) > 3
            else real(fd, buffers[:1])
        )

    monkeypatch.setattr(out.os, "writev", short)
    target = tmp_path / "out" / "chat.json"
    with out.Writer() as writes:
        writes.parts(target, raw.subset_parts([0, 2]))
    assert target.read_text() == '[\n  {"id": "a"},\n  {"id": "c"}\n]'
    assert [p.name for p in target.parent.iterdir()] == ["chat.json"]  # no temp file left


def test_a_file_that_cannot_be_written_is_one_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "chat.json").mkdir()  # a folder where the subset should go
    with pytest.raises(OutputError, match=r"chat\.json: is a directory"), out.Writer() as writes:
        writes.parts(tmp_path / "chat.json", [b"[]"])
        writes.file(tmp_path / "dropped.jsonl", b"")
    assert (tmp_path / "dropped.jsonl").is_file()  # the other files are still written
