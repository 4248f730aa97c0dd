"""The hostile-input matrix: scenarios (what a path really is) x commands (where the path goes).

Shared by ``tests/test_hostile_matrix.py`` (asserts exit code, one stderr line, no traceback, no
hang) and ``benchmarks/hostile_matrix.py`` (prints the table with seconds), so both always cover
the same cases. Each case runs the real CLI in a fresh folder, as a user would.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: A hang is a failure: no case may take longer than this.
TIMEOUT_SECONDS = 20.0
#: Bigger than every default [limits] cap (dataset files 8 GB); sparse, so it costs no disk.
HUGE_BYTES = 9 << 30

_RECORD = {
    "id": "000000001",
    "image": "000000001.jpg",
    "conversations": [
        {"from": "human", "value": "<image>\nWhat is in the picture?"},
        {"from": "gpt", "value": "A cat on a sofa."},
    ],
}


def _fifo(work: Path) -> str:
    os.mkfifo(work / "input.json")
    return str(work / "input.json")


def _socket(work: Path) -> str:
    with contextlib.chdir(work), socket.socket(socket.AF_UNIX) as sock:
        sock.bind("input.json")  # relative: a long tmp path would pass AF_UNIX's 108 bytes
    return str(work / "input.json")


def _symlink_device(work: Path) -> str:
    (work / "input.json").symlink_to("/dev/zero")
    return str(work / "input.json")


def _directory(work: Path) -> str:
    (work / "input.json").mkdir()
    return str(work / "input.json")


def _empty(work: Path) -> str:
    (work / "input.json").touch()
    return str(work / "input.json")


def _huge(work: Path) -> str:
    with (work / "input.json").open("wb") as handle:
        handle.truncate(HUGE_BYTES)
    return str(work / "input.json")


def _shard_folder(work: Path, *members: str) -> Path:
    """A shard set folder (named input.json, as every scenario's path) with a clean first shard."""
    folder = work / "input.json"
    folder.mkdir()
    (folder / "train-00000-of-00002.jsonl").write_text(json.dumps(_RECORD) + "\n", "utf-8")
    for name in members:
        (folder / name).touch()
    return folder


def _shards_empty(work: Path) -> str:
    folder = work / "input.json"
    folder.mkdir()
    (folder / "README.md").write_text("a dataset card, no shards\n", "utf-8")
    return str(folder)


def _shards_fifo(work: Path) -> str:
    folder = _shard_folder(work)
    os.mkfifo(folder / "train-00001-of-00002.jsonl")
    return str(folder)


def _shards_symlink_out(work: Path) -> str:
    folder = _shard_folder(work)
    (folder / "train-00001-of-00002.jsonl").symlink_to(work / "good.json")
    return str(folder)


def _shards_no_match(work: Path) -> str:
    _shard_folder(work)
    return str(work / "input.json" / "train-*.parquet")


def _shards_not_parquet(work: Path) -> str:
    folder = work / "input.json"
    folder.mkdir()
    (folder / "train-00000-of-00001.parquet").write_text("not parquet", "utf-8")
    return str(folder)


#: scenario -> builds the hostile path inside the case's folder and returns it.
SCENARIOS: dict[str, Callable[[Path], str]] = {
    "fifo": _fifo,
    "dev-zero": lambda _: "/dev/zero",
    "dev-urandom": lambda _: "/dev/urandom",
    "socket": _socket,
    "symlink-to-device": _symlink_device,
    "directory": _directory,
    "missing": lambda work: str(work / "no-such-file.json"),
    "empty": _empty,
    "huge-sparse": _huge,
    "nul-in-path": lambda work: str(work / "bad\x00name.json"),  # only through audit.toml
    # a shard set (folder or glob of JSON Lines / Parquet shards)
    "shards-empty-folder": _shards_empty,
    "shards-fifo-member": _shards_fifo,
    "shards-symlink-out": _shards_symlink_out,
    "shards-mixed-formats": lambda work: str(_shard_folder(work, "train-00001-of-00002.parquet")),
    "shards-glob-no-match": _shards_no_match,
    "shards-not-parquet": _shards_not_parquet,
}
#: commands that take a shard set (the others take one file; a folder is refused there)
SHARD_COMMANDS = frozenset({"check", "urls", "run", "gate"})


@dataclass(frozen=True)
class Command:
    """Where the hostile path goes: ``argv(path)`` after the folder was prepared."""

    argv: Callable[[str], list[str]]
    via_config: bool = False  # the path is a configured dataset file (a NUL can only come so)
    takedown: bool = False  # a takedown request must exist first
    skip: frozenset[str] = frozenset()  # scenarios that make no sense here


_CONFIG = ["--config", "audit.toml"]
COMMANDS: dict[str, Command] = {
    "check": Command(lambda p: ["check", p]),
    "images": Command(lambda p: ["images", p, "--root", "images"]),
    "urls": Command(lambda p: ["urls", p]),
    "license": Command(lambda p: ["license", p]),
    "license --coco-annotations": Command(
        lambda p: ["license", "good.json", "--coco-annotations", p]
    ),
    "license --policy": Command(lambda p: ["license", "good.json", "--policy", p]),
    "run": Command(lambda _: ["run", *_CONFIG], via_config=True),
    "gate": Command(lambda _: ["gate", *_CONFIG], via_config=True),
    "gate --baseline": Command(lambda p: ["gate", *_CONFIG, "--baseline", p]),
    "takedown match": Command(
        lambda _: ["takedown", "match", "{request}", *_CONFIG], via_config=True, takedown=True
    ),
    "--config": Command(lambda p: ["run", "--config", p]),
    # never a real device: old code renamed its output over the target (as root: over /dev/zero)
    "init": Command(
        lambda p: ["init", p, "--force"],
        skip=frozenset({"dev-zero", "dev-urandom", "huge-sparse"}),
    ),
}

#: Exit codes other than 3 (could not run): config problems are 2, and some "scenarios" are fine.
_EXPECTED: dict[str | tuple[str, str], int] = {
    "--config": 2,  # audit.toml itself: a config error, whatever is wrong with it
    ("init", "missing"): 0,  # written
    ("init", "empty"): 0,  # overwritten (--force)
    ("gate --baseline", "missing"): 2,
    ("gate --baseline", "directory"): 2,  # a folder without report.json: not a run folder
    ("gate --baseline", "empty"): 2,
    ("license --policy", "empty"): 0,  # an empty policy overrides nothing
}

#: (command, scenario) -> why it still fails: areas other engineers are fixing.
XFAIL: dict[tuple[str, str], str] = {}


def applicable(command: str, scenario: str) -> bool:
    cmd = COMMANDS[command]
    if scenario in cmd.skip:
        return False
    if scenario.startswith("shards-") and command not in SHARD_COMMANDS:
        return False
    return cmd.via_config or scenario != "nul-in-path"  # argv cannot carry a NUL byte


CASES: list[tuple[str, str]] = [(c, s) for c in COMMANDS for s in SCENARIOS if applicable(c, s)]


def expected_exit(command: str, scenario: str) -> int:
    """The exit code the case must end with."""
    return _EXPECTED.get((command, scenario), _EXPECTED.get(command, 3))


@dataclass(frozen=True)
class Outcome:
    code: int | None  # None: killed after TIMEOUT_SECONDS
    stdout: str
    stderr: str
    seconds: float


def _write_config(work: Path, chat: str) -> None:
    dataset = {"name": "hostile", "kind": "instruct", "chat": chat, "images": ["images"]}
    lines = ["[[datasets]]"] + [f"{k} = {json.dumps(v)}" for k, v in dataset.items()]
    (work / "audit.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _cli(work: Path, argv: list[str], timeout: float) -> Outcome:
    started = time.perf_counter()
    env = {**os.environ, "COLUMNS": "200", "PYTHONWARNINGS": "ignore"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "audit", *argv],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return Outcome(None, out, err, time.perf_counter() - started)
    return Outcome(done.returncode, done.stdout, done.stderr, time.perf_counter() - started)


def run_case(command: str, scenario: str, work: Path, timeout: float = TIMEOUT_SECONDS) -> Outcome:
    """Prepare ``work`` (an empty folder), build the scenario's path, run the command on it."""
    cmd = COMMANDS[command]
    (work / "images").mkdir()
    (work / "good.json").write_text(json.dumps([_RECORD]), encoding="utf-8")
    path = SCENARIOS[scenario](work)
    _write_config(work, path if cmd.via_config else str(work / "good.json"))
    argv = cmd.argv(path)
    if cmd.takedown:
        new = _cli(
            work,
            [
                "takedown",
                "new",
                *_CONFIG,
                "--ground",
                "copyright",
                "--contact",
                "rights@example.org",
                "--record-id",
                "000000001",
            ],
            timeout,
        )
        found = re.search(r"\S+(?= recorded)", new.stdout)
        if found is None:
            raise RuntimeError(f"takedown new failed: {new.stdout}{new.stderr}")
        argv = [found.group(0) if a == "{request}" else a for a in argv]
    return _cli(work, argv, timeout)
