"""audit/atomic.py: every output file appears whole or not at all, and only replaces a file."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from lcs_records import lcs_records

from audit.atomic import atomic_open, write_atomic, write_output
from audit.cli import main
from audit.errors import OutputError


def _full_disk(path: Path, data: bytes) -> None:
    """A writer that gets half the bytes out, then fails like a full disk."""
    path.write_bytes(data[: len(data) // 2])
    raise OSError(errno.ENOSPC, "No space left on device")


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_failed_write_leaves_no_temp_file_and_the_old_file_untouched(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    write_atomic(target, b'{"passed": true}')
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b'{"passed": false}', write=_full_disk)
    assert _listing(tmp_path) == {"result.json": b'{"passed": true}'}


def test_a_failed_first_write_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="No space"):
        write_atomic(tmp_path / "new.json", b"{}", write=_full_disk)
    assert list(tmp_path.iterdir()) == []


def test_a_streamed_file_appears_only_when_the_block_ends_cleanly(tmp_path: Path) -> None:
    target = tmp_path / "attribution.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_open(target) as out:
        out.write("half of the new file\n")
        raise RuntimeError("the export failed half way")
    assert _listing(tmp_path) == {"attribution.jsonl": b"old\n"}
    with atomic_open(target) as out:
        out.write("new\n")
    assert _listing(tmp_path) == {"attribution.jsonl": b"new\n"}


@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink to a fifo"])
def test_a_folder_or_fifo_in_the_way_is_refused_and_left_alone(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "out.json"
    if kind == "directory":
        target.mkdir()
    else:
        fifo = tmp_path / "pipe"
        os.mkfifo(fifo)
        if kind == "fifo":
            fifo.rename(target)
        else:
            target.symlink_to(fifo)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(OutputError, match="not a regular file"):
        write_atomic(target, b"{}")
    with pytest.raises(OutputError, match="not a regular file"), atomic_open(target):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temp file either
    assert os.path.lexists(target) and not target.is_file()


def test_an_unwritable_place_is_one_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"file/out\.json: cannot write the gate result"):
        write_output(tmp_path / "file" / "out.json", b"{}", "gate result")
    with pytest.raises(OutputError, match="NUL"):
        write_output(f"{tmp_path}/a\0b", b"{}", "gate result")


def test_check_findings_into_a_folder_is_one_line_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps(lcs_records(2)))
    out = tmp_path / "findings.jsonl"
    out.mkdir()
    assert main(["check", str(chat), "--findings", str(out)]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out) in err and "not a regular file" in err
