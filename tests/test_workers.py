"""Worker processes: one module decides how they start, and a worker that fails or dies is
reported at once, never waited for (the metadata file of a pair waits for its chat file)."""

from __future__ import annotations

import ast
import json
import os
import signal
from pathlib import Path

import pytest
import realsamples

from audit import structure, workers
from audit.errors import ProbeError
from audit.structure import Task, check_files
from audit.structure import run_task as real_run_task

PACKAGE = Path(workers.__file__).parent
#: what chooses or bypasses a start method; only audit/workers.py may use these
_STARTERS = {"get_context", "set_start_method", "Process", "ProcessPoolExecutor", "fork"}
_FROM = ("multiprocessing", "concurrent.futures", "os")


def _starters(tree: ast.AST) -> set[str]:
    """``multiprocessing.get_context``, ``os.fork``, ``from concurrent.futures import
    ProcessPoolExecutor`` and the like (Great Expectations' ``get_context`` is another thing)."""
    found = {
        f"{n.value.id}.{n.attr}"
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
        if n.value.id in {"multiprocessing", "os", "concurrent"} and n.attr in _STARTERS
    }
    found |= {
        f"{n.module}.{a.name}"
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and (n.module or "").startswith(_FROM)
        for a in n.names
        if a.name in _STARTERS
    }
    return found


def test_only_audit_workers_chooses_how_worker_processes_start() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path != PACKAGE / "workers.py":
            bad = sorted(_starters(ast.parse(path.read_text(encoding="utf-8"))))
            assert not bad, f"{path.relative_to(PACKAGE)} uses {bad}: start them via audit.workers"


def _pair(folder: Path) -> list[Path]:
    chat = json.loads(realsamples.CC3M_CHAT.read_text(encoding="utf-8"))
    meta = [{"id": r["id"], "image": r["image"], "url": "http://e.invalid/1.jpg"} for r in chat]
    (folder / "chat.json").write_text(json.dumps(chat), encoding="utf-8")
    (folder / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    return [folder / "chat.json", folder / "metadata.json"]


def _is_chat(task: Task) -> bool:
    return task.handoff is not None and task.handoff.role == "chat"


def dies_on_the_chat_file(task: Task) -> bytes:
    """Runs in a worker process (pickled by reference): the chat file's worker is killed."""
    if _is_chat(task):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_run_task(task)


def fails_on_the_chat_file(task: Task) -> bytes:
    """Runs in a worker process: the chat file's audit raises (a bug, not bad data)."""
    if _is_chat(task):
        raise RuntimeError("chat worker failed")
    return real_run_task(task)


@pytest.mark.timeout(120)
def test_a_structure_worker_that_dies_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(structure, "run_task", dies_on_the_chat_file)
    with pytest.raises(ProbeError, match="structure worker process died"):
        check_files(_pair(tmp_path), workers=2)


@pytest.mark.timeout(120)
def test_a_failing_chat_file_does_not_leave_its_metadata_file_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(structure, "run_task", fails_on_the_chat_file)
    with pytest.raises(RuntimeError, match="chat worker failed"):
        check_files(_pair(tmp_path), workers=2)
