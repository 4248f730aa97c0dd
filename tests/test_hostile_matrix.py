"""The hostile-input matrix through the real CLI: every command x every kind of bad path.

A FIFO, a device, a socket, a folder, a missing, empty or huge file, a NUL in a configured path:
each case must end (no hang: a subprocess timeout), with its exit code, exactly one line on stderr
(none when it succeeds) that names the file, and never a traceback. The cases are shared with
``benchmarks/hostile_matrix.py`` (``benchmarks/hostile_cases.py``). No timing is asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.hostile_cases import (
    CASES,
    HUGE_BYTES,
    TIMEOUT_SECONDS,
    XFAIL,
    expected_exit,
    run_case,
)

#: What the error line says, per scenario, when the path itself is refused.
_SAYS = {
    "fifo": "is a FIFO, not a regular file",
    "dev-zero": "is a character device, not a regular file",
    "dev-urandom": "is a character device, not a regular file",
    "socket": "is a socket, not a regular file",
    "symlink-to-device": "is a character device (a symlink to /dev/zero), not a regular file",
    "directory": "is a directory",
    "missing": "not found",
    "empty": "empty",
    "huge-sparse": "9 GB, over the",
    "nul-in-path": "path contains a NUL byte",
    "shards-empty-folder": "is a directory with no .jsonl, .jsonl.gz or .parquet shards",
    "shards-fifo-member": "is a FIFO, not a regular file",
    "shards-symlink-out": "outside",
    "shards-mixed-formats": "mixes jsonl and parquet shards",
    "shards-glob-no-match": "pattern matches no file",
    "shards-not-parquet": "shard is not a Parquet file",
}


def _sparse_files_work(tmp: Path) -> bool:
    probe = tmp / "sparse-probe"
    with probe.open("wb") as handle:
        handle.truncate(HUGE_BYTES)
    blocks = probe.stat().st_blocks
    probe.unlink()
    return blocks == 0


@pytest.mark.timeout(TIMEOUT_SECONDS * 3)
@pytest.mark.parametrize(("command", "scenario"), CASES, ids=[f"{c}|{s}" for c, s in CASES])
def test_hostile_input(command: str, scenario: str, tmp_path: Path) -> None:
    if (command, scenario) in XFAIL:
        pytest.xfail(XFAIL[command, scenario])
    if scenario == "huge-sparse" and not _sparse_files_work(tmp_path):
        pytest.skip("this file system does not make sparse files")
    outcome = run_case(command, scenario, tmp_path)
    assert outcome.code is not None, f"hung: killed after {TIMEOUT_SECONDS} s"
    everything = outcome.stdout + outcome.stderr
    assert "Traceback" not in everything, everything
    expected = expected_exit(command, scenario)
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert outcome.code == expected, outcome.stderr
    if expected == 0:
        assert lines == []
        return
    assert len(lines) == 1, outcome.stderr
    (line,) = lines
    assert line.startswith("llava-audit: ")
    if command == "--config" and scenario == "empty":
        assert "no datasets configured" in line  # an empty audit.toml is valid TOML
    elif command == "gate --baseline" and scenario in ("directory", "empty"):
        assert "baseline" in line  # the folder or file is no published run
    else:
        assert _SAYS[scenario] in line
        assert "input.json" in line or "no-such-file" in line or "/dev/" in line or "\\x00" in line
