"""Loaders: the only code that opens dataset files.

Submodules by input: ``records`` (conversation JSON arrays, JSON Lines, metadata files, kind
detection), ``imageroots`` (image folders and zips, read in place), ``urlsources`` (URL lists from
metadata files, the headerless CC-3M TSV, or a configured column).
"""

from __future__ import annotations

from pathlib import Path

from audit.errors import InputError


def read_input(path: Path, what: str) -> bytes:
    """The whole file's bytes; a missing or unreadable file is one InputError naming it (exit 3)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(str(path), f"{what} not found") from None
    except OSError as exc:
        raise InputError(str(path), f"cannot read {what}: {exc.strerror or exc}") from None
