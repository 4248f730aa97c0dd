"""The reports folder: checked before a run, and touched only where the tool wrote itself.

Before any work, :func:`prepare` makes sure the folder can hold reports (one line and exit 3
otherwise: a read-only folder, ``/proc``, a NUL in the path), that it is apart from the data it
reports on (a config error: publishing and retention must never write or delete among dataset
files) and that ``index.html`` there, if any, is one this tool wrote. Ours carry the generator
``<meta>`` tag of the page templates; anything else is a user's file and is never replaced.

Retention (``keep_runs``) deletes the oldest run folders, and only folders whose ``report.json``
names the folder's run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import msgspec

from audit.config import Config
from audit.errors import AuditError, ConfigError
from audit.output.model import PAGE_FILE, REPORT_FILE
from audit.output.publish import published_runs

#: What every page this tool renders carries (templates/_base.html.j2), in its first lines.
OWNER_MARK = b'<meta name="generator" content="llava-audit'
_PRUNING_PREFIX = ".pruning-"

log = logging.getLogger("audit.report")


def prepare(config: Config) -> Path:
    """The configured reports folder, created, writable, apart from the data, its index ours.

    Raises :class:`ConfigError` when it overlaps a dataset file or image root and
    :class:`AuditError` (exit 3) when it cannot be used.
    """
    reports = config.path(config.reports_dir)
    if "\0" in str(reports):
        raise AuditError(f"reports_dir {str(reports)!r}: a path cannot contain a NUL character")
    check_apart_from_data(config, reports)
    try:
        reports.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise AuditError(f"{reports}: reports_dir exists and is not a folder") from None
    except OSError as exc:
        raise AuditError(f"{reports}: cannot create the reports folder: {_why(exc)}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check-", suffix=".tmp", dir=reports)
        os.close(fd)
        Path(probe).unlink()
    except OSError as exc:
        raise AuditError(f"{reports}: cannot write reports there: {_why(exc)}") from None
    check_index_is_ours(reports)
    return reports


def check_apart_from_data(config: Config, reports: Path) -> None:
    """The reports folder is not, does not hold and does not sit inside a dataset's data."""
    mine = _real(reports)
    for ds in config.datasets:
        named = [("image root", p) for p in ds.images] + [
            (what, p)
            for what, p in (
                ("chat file", ds.chat),
                ("metadata file", ds.metadata),
                ("URL TSV", ds.url_tsv),
                ("COCO annotation file", ds.coco_annotations),
            )
            if p
        ]
        for what, value in named:
            theirs = _real(config.path(value))
            if mine == theirs or mine.is_relative_to(theirs) or theirs.is_relative_to(mine):
                raise ConfigError(
                    f"reports_dir {config.reports_dir} overlaps the {what} {value} of dataset "
                    f"{ds.name!r}: keep the reports folder apart from the data"
                )


def check_index_is_ours(reports: Path) -> None:
    """Refuse to go on when ``reports/index.html`` is a file this tool did not write."""
    index = reports / PAGE_FILE
    if os.path.lexists(index) and not is_ours(index):
        raise AuditError(
            f"{index}: not written by llava-audit, so it is left as it is; move it away or "
            "choose another reports_dir"
        )


def is_ours(path: Path) -> bool:
    """A regular file (not a symlink) whose head carries the generator tag of our pages."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with path.open("rb") as fh:
            return OWNER_MARK in fh.read(4096)
    except OSError:
        return False


def _real(path: Path) -> Path:
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError):
        return path.absolute()


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


# ---- retention ---------------------------------------------------------------------------------


class _RunStamp(msgspec.Struct):
    run_id: str
    started: datetime


def prunable_runs(
    reports_dir: str | Path, keep: int, *, protect: set[str], keep_bytes: int = 0
) -> list[str]:
    """Run folders beyond the newest ``keep`` (0 keeps all), or beyond ``keep_bytes`` of run
    folders in all (0: no cap; newest first, so the newest always stays), oldest first; never
    one in ``protect`` (a protected folder still counts towards the size).

    Only real folders whose ``report.json`` names that folder's run count: anything else a user
    put beside the runs (a README, a symlink, a copied folder) is neither counted nor deleted.
    Ordered by start time, which the run id's second-granular prefix cannot always tell apart.
    """
    if keep <= 0 and keep_bytes <= 0:
        return []
    root = Path(reports_dir)
    stamped = [(s.started, s.run_id) for r in published_runs(root) if (s := _stamp(root / r))]
    newest_first = [run_id for _, run_id in sorted(stamped, reverse=True)]
    kept = newest_first[:keep] if keep > 0 else newest_first
    if keep_bytes > 0:
        sizes = {run_id: folder_bytes(root / run_id) for run_id in kept}
        within = [r for r in kept if r in protect]  # stay whatever their size, and count
        total = sum(sizes[r] for r in within)
        for i, run_id in enumerate(kept):
            if run_id in protect or (i and total + sizes[run_id] > keep_bytes):
                continue  # i == 0: the newest run always stays
            total += sizes[run_id]
            within.append(run_id)
        kept = within
    return [r for r in reversed(newest_first) if r not in kept and r not in protect]


def folder_bytes(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (symlinks not followed)."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(dirpath) / name).lstat().st_size
    return total


def _stamp(path: Path) -> _RunStamp | None:
    """The run a folder holds, or None when it is not a run folder this tool published."""
    if path.is_symlink():
        return None
    try:
        found = msgspec.json.decode((path / REPORT_FILE).read_bytes(), type=_RunStamp)
    except (OSError, msgspec.DecodeError):
        return None
    return found if found.run_id == path.name else None


def remove_runs(reports_dir: str | Path, run_ids: list[str]) -> list[str]:
    """Delete run folders, returning those gone; a failure is logged, never raised.

    Each folder is first renamed out of the run namespace, so a half-finished delete is never
    mistaken for a run and is swept by the next call.
    """
    root = Path(reports_dir)
    leftovers = [p for p in _children(root) if p.name.startswith(_PRUNING_PREFIX)]
    removed = []
    for run_id in run_ids:
        doomed = root / f"{_PRUNING_PREFIX}{run_id}"
        try:
            (root / run_id).rename(doomed)
        except OSError as exc:
            log.warning("could not prune report %s: %s", run_id, _why(exc))
            continue
        removed.append(run_id)
        leftovers.append(doomed)
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            log.warning("could not delete %s completely; retried after the next run", path)
    return removed


def _children(root: Path) -> list[Path]:
    try:
        return list(root.iterdir())
    except OSError:
        return []
