"""Publishing a run: its folder appears in ``reports/`` whole, or not at all.

A run writes into a hidden staging folder beside ``reports/<run-id>/``, fsyncs it and renames it
into place; the runner then swaps ``reports/index.html`` with :func:`audit.atomic.write_atomic`.
A run killed at any point leaves the previously published reports exactly as they were, and a
write that fails (a full disk) leaves no staging folder or temp file behind. What else the tool
may touch in the reports folder (pre-flight checks, retention) is in
:mod:`audit.output.reportsdir`.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from audit.atomic import Writer, fsync_dir, write_file
from audit.errors import AuditError
from audit.output import sharedassets
from audit.output.model import (
    DATA_DOCS_DIR,
    FINDINGS_FILE,
    PAGE_FILE,
    REPORT_FILE,
    AuditReport,
    compress_findings,
    to_files,
)

_STAGING_PREFIX = ".staging-"
_STAGING_NAME = re.compile(r"\.staging-\d{8}T\d{6}Z-[0-9a-f]{4}")


def staging_dir(reports_dir: str | Path, run_id: str) -> Path:
    """Where a run writes before it is published (Data Docs go in ``<staging>/data-docs``).

    Beside the final folder so the publishing rename stays on one file system.
    """
    path = Path(reports_dir) / f"{_STAGING_PREFIX}{run_id}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AuditError(
            f"{path.parent}: cannot write reports there: {exc.strerror or exc}"
        ) from None
    return path


def remove_stale_staging(reports_dir: str | Path) -> int:
    """Delete staging folders left by killed runs (call while holding the run lock).

    Only names a run of this tool gives its staging folder: a user's ``.staging-notes`` stays.
    """
    try:
        found = [p for p in Path(reports_dir).iterdir() if _STAGING_NAME.fullmatch(p.name)]
    except OSError:
        return 0
    for p in found:
        shutil.rmtree(p, ignore_errors=True)
    return len(found)


def publish(
    report: AuditReport,
    reports_dir: str | Path,
    *,
    render_page: Callable[[AuditReport], str] | None = None,
    before_rename: Callable[[Path], None] | None = None,
    write: Writer = write_file,
) -> Path:
    """Write the run into its staging folder, fsync everything, rename it to ``<run-id>/``.

    ``render_page`` makes the run's HTML page; ``before_rename`` is a hook for tests (simulate a
    kill) and for adding files. Returns the published folder. The run's previous reports and
    ``index.html`` are never modified in place; when a write fails the staging folder is removed.
    """
    root = Path(reports_dir)
    stage = staging_dir(root, report.run_id)
    try:
        report_json, findings_jsonl = to_files(report)
        write(stage / FINDINGS_FILE, compress_findings(findings_jsonl))
        write(stage / REPORT_FILE, report_json)
        if render_page is not None:
            write(stage / PAGE_FILE, render_page(report).encode("utf-8"))
        if before_rename is not None:
            before_rename(stage)
        if (stage / DATA_DOCS_DIR).is_dir():  # its pages link to the one shared copy
            sharedassets.ensure(root, write=write)
        _fsync_tree(stage)
        final = root / report.run_id
        stage.rename(final)  # fails rather than overwrite: run ids are never reused
    except Exception:  # a kill (BaseException) leaves it to the next run's sweep, as documented
        shutil.rmtree(stage, ignore_errors=True)
        raise
    fsync_dir(root)
    return final


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(Path(dirpath) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def published_runs(reports_dir: str | Path) -> list[str]:
    """Run ids with a complete published folder, newest first."""
    root = Path(reports_dir)
    if not root.is_dir():
        return []
    runs = [
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / REPORT_FILE).is_file()
    ]
    return sorted(runs, reverse=True)
