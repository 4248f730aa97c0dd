"""The Data Docs' browser assets, kept once per reports folder in ``reports/_assets/``.

Every run's Data Docs link to these files (:mod:`audit.webassets`) instead of CDNs; one copy
serves all runs, where GX alone copies its 4 MB ``static/`` folder into each run. Each asset
folder appears whole or not at all (copied into a hidden temp folder, fsynced, renamed), a
complete one is left as it is, and one that lost or changed a file is replaced. Retention
deletes run folders only (a ``report.json`` naming the folder's run), never this one.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from audit import webassets
from audit.atomic import Writer, fsync_dir, write_file
from audit.errors import AuditError

_TEMP_SUFFIX = ".partial"


def ensure(reports_dir: str | Path, *, write: Writer = write_file) -> Path:
    """Make ``reports/_assets/`` hold every vendored asset folder, complete; return it.

    Idempotent and cheap when nothing is missing (a size check per file). A leftover temp
    folder of a killed copy is removed. Raises OSError when a write fails (a full disk, the
    temp folder removed) and :class:`AuditError` when ``_assets`` is not a plain folder.
    """
    target = Path(reports_dir) / webassets.ASSETS_DIR
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise AuditError(
            f"{target}: not a folder llava-audit made for the Data Docs assets; move it away"
        )
    target.mkdir(exist_ok=True)
    for leftover in target.glob(f".*{_TEMP_SUFFIX}"):
        shutil.rmtree(leftover, ignore_errors=True)
    for name in webassets.folders():
        source, final = webassets.SOURCE / name, target / name
        if _listing(source) == _listing(final):
            continue
        temp = target / f".{name}.{secrets.token_hex(4)}{_TEMP_SUFFIX}"
        try:
            _copy(source, temp, write)
            if final.exists() or final.is_symlink():  # incomplete or altered: swap it out
                final.rename(old := target / f".{name}.old.{secrets.token_hex(4)}{_TEMP_SUFFIX}")
                shutil.rmtree(old, ignore_errors=True)
            temp.rename(final)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    fsync_dir(target)
    return target


def _listing(folder: Path) -> dict[str, int]:
    """Each regular file under ``folder`` (relative path) with its size; {} when unreadable."""
    found: dict[str, int] = {}
    try:
        for dirpath, _dirs, files in os.walk(folder):
            for name in files:
                path = Path(dirpath) / name
                if path.is_symlink() or not path.is_file():
                    return {}
                found[str(path.relative_to(folder))] = path.stat().st_size
    except OSError:
        return {}
    return found


def _copy(source: Path, temp: Path, write: Writer) -> None:
    for dirpath, _dirs, files in os.walk(source):
        folder = temp / Path(dirpath).relative_to(source)
        folder.mkdir(parents=True, exist_ok=True)
        for name in files:
            write(folder / name, (Path(dirpath) / name).read_bytes())
        fsync_dir(folder)
