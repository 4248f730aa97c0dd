"""What a file given as a LLaVA JSON file really is, from its first bytes (magic numbers).

An image, a zip or a Parquet file passed to ``check`` by mistake is named for what it is in one
line ("x.jpg: file is a JPEG image, not a LLaVA JSON file") instead of a JSON syntax error at
byte 0. Only regular files are opened (:func:`audit.loaders.regular_file` runs first).
"""

from __future__ import annotations

import os
from pathlib import Path

from audit.errors import InputError
from audit.loaders import regular_file

_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (0, b"GIF87a", "a GIF image"),
    (0, b"GIF89a", "a GIF image"),
    (8, b"WEBP", "a WebP image"),
    (0, b"II*\x00", "a TIFF image"),
    (0, b"MM\x00*", "a TIFF image"),
    (0, b"BM", "a BMP image"),
    (4, b"ftypheic", "a HEIC image"),
    (4, b"ftypavif", "an AVIF image"),
    (0, b"PK\x03\x04", "a zip archive"),
    (0, b"PK\x05\x06", "a zip archive"),
    (0, b"PAR1", "a Parquet file"),
    (0, b"ARROW1", "an Arrow file"),
    (0, b"\x1f\x8b", "a gzip file"),
    (0, b"(\xb5/\xfd", "a zstd file"),
    (0, b"\xfd7zXZ\x00", "an xz file"),
    (0, b"BZh", "a bzip2 file"),
    (0, b"7z\xbc\xaf'\x1c", "a 7-Zip archive"),
    (257, b"ustar", "a tar archive"),
    (0, b"%PDF-", "a PDF document"),
    (0, b"SQLite format 3\x00", "an SQLite database"),
    (0, b"\x93NUMPY", "a NumPy array file"),
)
_HINTS = {
    "a zip archive": "; an images zip goes to `llava-audit images --root`",
    "a Parquet file": "; name it .parquet (or give its folder) to audit it as conversation shards",
}


def file_type(head: bytes) -> str | None:
    """The non-JSON format these first bytes (at least 262) begin, or None."""
    return next((name for at, magic, name in _MAGIC if head[at : at + len(magic)] == magic), None)


def json_file(
    path: str | Path, what: str = "file", max_bytes: int | None = None, setting: str | None = None
) -> Path:
    """``path`` when :func:`regular_file` passes it and its first bytes are no other known format.

    The one-line :class:`InputError` says what the file is instead.
    """
    p = regular_file(path, what, max_bytes, setting)
    try:  # non-blocking, so a file swapped for a FIFO after the check cannot block the read
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as handle:
            head = handle.read(512)
    except OSError as exc:
        raise InputError(str(p), f"cannot read {what}: {exc.strerror or exc}") from None
    found = file_type(head)
    if found is not None:
        raise InputError(str(p), f"{what} is {found}, not a LLaVA JSON file{_HINTS.get(found, '')}")
    return p
