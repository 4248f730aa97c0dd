"""Image roots: the folders and zip files that hold a dataset's images, read in place.

LLaVA ships images both ways: folders under ``--image_folder`` (mix665k's ``playground/data``) and
``images.zip`` (595K CC-3M images, 558K LCS images). ``zipfile.ZipFile`` builds a ZipInfo object per
member, about 4 s for 595K names on this machine; the audit needs membership in under 2 s, so
:class:`ZipRoot` parses the central directory itself and keeps only what reading a member needs.
Members are read by offset into memory and never extracted, so a hostile member name cannot write
anywhere. Record paths that escape the root (``..``, absolute) are refused, as LLaVA's trainer would
otherwise read outside ``--image_folder``.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

from audit.errors import InputError

#: How a worker reads an image: ("file", path) or ("zip", zip path, member name, header offset,
#: compressed size, method, size, crc, zip size:mtime). Plain tuples: they pickle cheaply.
Source = tuple[object, ...]

_EOCD = struct.Struct("<4sHHHHIIH")
_EOCD64_LOCATOR = struct.Struct("<4sIQI")
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")
#: Central directory entry, only the fields a reader needs (x = skipped bytes): signature, flags,
#: method, crc, compressed size, size, name/extra/comment lengths, local header offset.
_CENTRAL = struct.Struct("<4s4xHH4xIIIHHH8xI")
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_UTF8_FLAG = 0x800
#: Relative paths with no empty, "." or ".." segment and no drive letter: already normalized.
_PLAIN = re.compile(r"(?!\.\.?(?:/|$))[^/\\:]+(?:/(?!\.\.?(?:/|$))[^/\\:]+)*")
_DRIVE = re.compile(r"[A-Za-z]:[/\\]")
_ENCRYPTED_FLAG = 0x1
_ENCRYPTED = "zip member is encrypted"


class UnsafePathError(ValueError):
    """A record's image path is empty, absolute or climbs out of the root."""


class DamagedMemberError(OSError):
    """A zip member's bytes are damaged (CRC, inflate or header failure): the image is corrupt."""


@dataclass(slots=True)  # not frozen: a frozen __init__ is 2x slower and 600K are built per run
class Location:
    """Where a record's image was found, and the identity a probe result is cached under."""

    root: str  # the root's path: the cache namespace
    name: str  # path inside the root (relative path or zip member name)
    size: int
    signature: str  # "size:mtime_ns" for files, "size:crc32" for zip members ("" = unknown)
    source: Source
    problem: str = ""  # why it cannot be read at all (stat failed, encrypted member)


def normalize(image: str) -> str:
    """The relative path LLaVA's trainer would open, or :class:`UnsafePathError` if it escapes the root."""
    if not image.strip():
        raise UnsafePathError("empty image path")
    if _PLAIN.fullmatch(image):  # the common case, decided without normpath
        return image
    if image.startswith(("/", "\\")) or _DRIVE.match(image):
        raise UnsafePathError(f"absolute image path {image!r}")
    norm = posixpath.normpath(image)
    if norm == ".." or norm.startswith("../") or norm == ".":
        raise UnsafePathError(f"image path {image!r} leaves the image root")
    return norm


class DirRoot:
    """A folder of images: membership is one ``stat`` per lookup (263K/s, no index needed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.key = str(path)

    def locate(self, name: str) -> Location | None:
        full = os.path.join(self.key, name)  # noqa: PTH118 - str paths: 2x faster than Path here
        try:
            st = os.stat(full)  # noqa: PTH116
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:  # e.g. a folder on the way without permission
            return Location(self.key, name, -1, "", ("file", full), exc.strerror or str(exc))
        if not stat.S_ISREG(st.st_mode):
            return None
        return Location(
            self.key, name, st.st_size, f"{st.st_size}:{st.st_mtime_ns}", ("file", full)
        )


#: One zip member: (local header offset, compressed size, size, crc, method, flags). A plain tuple
#: because 595K of them are built per index; a dataclass or NamedTuple costs 2x the time.
_Member = tuple[int, int, int, int, int, int]


class ZipRoot:
    """A zip of images indexed from its central directory; a single top folder is optional."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.key = str(path)
        self.members, self.top, self.stamp = _zip_index(path)

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, name: str) -> bool:
        return self._find(name) is not None

    def _find(self, name: str) -> tuple[str, _Member] | None:
        """Members are keyed below the top folder; a record may name it or not."""
        member = self.members.get(name)
        if member is not None:
            return name, member
        if self.top and name.startswith(self.top):
            inner = name[len(self.top) :]
            member = self.members.get(inner)
            if member is not None:
                return inner, member
        return None

    def locate(self, name: str) -> Location | None:
        member = self.members.get(name)  # _find inlined: called once per distinct image
        member_name = name
        if member is None:
            found = self._find(name)
            if found is None:
                return None
            member_name, member = found
        offset, csize, size, crc, method, flags = member
        key = self.key
        source: Source = (
            "zip",
            key,
            self.top + member_name,
            offset,
            csize,
            method,
            size,
            crc,
            self.stamp,
        )
        if flags & _ENCRYPTED_FLAG:
            return Location(key, member_name, size, f"{size}:{crc:08x}", source, _ENCRYPTED)
        return Location(key, member_name, size, f"{size}:{crc:08x}", source)


Root = DirRoot | ZipRoot
_ZIP_CACHE: dict[tuple[str, int, int], tuple[dict[str, _Member], str]] = {}
_OPEN_ZIPS: dict[str, tuple[object, int]] = {}  # zip path -> (size and mtime stamp, open fd)


def open_roots(paths: Sequence[str | Path]) -> list[Root]:
    """Open each folder or zip once; a root that is neither is an input error (exit code 3)."""
    roots: list[Root] = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            roots.append(DirRoot(path))
        elif path.is_file():
            roots.append(ZipRoot(path))
        else:
            raise InputError(str(path), "image root not found (expected a folder or a zip file)")
    return roots


def locate(roots: Sequence[Root], image: str) -> Location | None:
    """The first root that has the record's image, as LLaVA users list roots in priority order."""
    name = image if _PLAIN.fullmatch(image) and not image.isspace() else normalize(image)
    for root in roots:
        found = root.locate(name)
        if found is not None:
            return found
    return None


def locator(roots: Sequence[Root]) -> Callable[[str], Location | None]:
    """:func:`locate` bound to ``roots``; with one root (the usual case) a call level shorter."""
    if len(roots) != 1:
        return partial(locate, roots)
    find, plain = roots[0].locate, _PLAIN.fullmatch

    def locate_in_root(image: str) -> Location | None:
        return find(image if plain(image) and not image.isspace() else normalize(image))

    return locate_in_root


def _zip_index(path: Path) -> tuple[dict[str, _Member], str, str]:
    """Member table of a zip, memoised per path, size and mtime (a rewritten zip is re-read)."""
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _ZIP_CACHE:
            with path.open("rb") as fh:
                _ZIP_CACHE[key] = _read_central_directory(fh, st.st_size)
        return (*_ZIP_CACHE[key], f"{st.st_size}:{st.st_mtime_ns}")
    except OSError as exc:
        raise InputError(str(path), f"cannot read zip: {exc.strerror or exc}") from None
    except (ValueError, struct.error) as exc:
        raise InputError(str(path), f"not a readable zip file: {exc}") from None


def _read_central_directory(fh: BinaryIO, file_size: int) -> tuple[dict[str, _Member], str]:
    tail_len = min(file_size, 65_535 + _EOCD.size + _EOCD64_LOCATOR.size)
    fh.seek(file_size - tail_len)
    tail = fh.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0:
        raise ValueError("no end-of-central-directory record")
    _, _, _, _, count, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, pos)
    locator = pos - _EOCD64_LOCATOR.size
    if locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
        _, _, eocd64_offset, _ = _EOCD64_LOCATOR.unpack_from(tail, locator)
        fh.seek(eocd64_offset)
        record = fh.read(_EOCD64.size)
        if record[:4] != b"PK\x06\x06":
            raise ValueError("bad zip64 end-of-central-directory record")
        *_, count, cd_size, cd_offset = _EOCD64.unpack(record)
    fh.seek(cd_offset)
    cd = fh.read(cd_size)
    if len(cd) != cd_size:
        raise ValueError("central directory runs past the end of the file")
    return _parse_entries(cd, count)


def _parse_entries(cd: bytes, count: int) -> tuple[dict[str, _Member], str]:
    members: dict[str, _Member] = {}
    unpack = _CENTRAL.unpack_from
    pos = 0
    end = len(cd)
    for _ in range(count):
        if pos + 46 > end:
            raise ValueError("central directory is truncated")
        sig, flags, method, crc, csize, size, nlen, elen, clen, offset = unpack(cd, pos)
        if sig != b"PK\x01\x02":
            raise ValueError(f"bad central directory entry at byte {pos}")
        raw = cd[pos + 46 : pos + 46 + nlen]
        if 0xFFFFFFFF in (csize, size, offset):
            size, csize, offset = _zip64_extra(
                cd[pos + 46 + nlen : pos + 46 + nlen + elen], size, csize, offset
            )
        pos += 46 + nlen + elen + clen
        if raw.endswith(b"/"):
            continue
        if flags & _UTF8_FLAG or raw.isascii():  # ASCII: skip the slow pure-Python cp437 codec
            name = raw.decode("utf-8", "replace")
        else:
            name = raw.decode("cp437")
        members[name] = (offset, csize, size, crc, method, flags)
    top = _single_top_folder(members)
    return _below_top(members, top), top


def _zip64_extra(extra: bytes, size: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            values = iter(struct.unpack_from(f"<{length // 8}Q", extra, pos + 4))
            if size == 0xFFFFFFFF:
                size = next(values)
            if csize == 0xFFFFFFFF:
                csize = next(values)
            if offset == 0xFFFFFFFF:
                offset = next(values)
            break
        pos += 4 + length
    return size, csize, offset


def _single_top_folder(members: dict[str, _Member]) -> str:
    """``images/`` when every member sits under that one folder (a common way images.zip is made)."""
    first = next(iter(members), "")
    top = first.split("/", 1)[0] + "/" if "/" in first else ""
    if top and all(name.startswith(top) for name in members):
        return top
    return ""


def _below_top(members: dict[str, _Member], top: str) -> dict[str, _Member]:
    """Key members by their path below the top folder: one dict lookup per record, not two."""
    if not top:
        return members
    cut = len(top)
    return {name[cut:]: member for name, member in members.items()}


def read_source(source: Source) -> bytes:
    """The bytes of one image, from a file or a zip member (decompressed and CRC-checked in memory).

    Raises ``OSError`` when the bytes cannot be had; the message says why (CRC, method, encryption).
    """
    kind = source[0]
    if kind == "file":
        return Path(str(source[1])).read_bytes()
    _, zip_path, name, offset, csize, method, size, crc, stamp = source
    assert isinstance(zip_path, str) and isinstance(offset, int) and isinstance(csize, int)
    assert isinstance(size, int) and isinstance(crc, int)
    fd = _zip_fd(zip_path, stamp)
    header = os.pread(fd, _LOCAL.size, offset)
    if len(header) < _LOCAL.size or header[:4] != b"PK\x03\x04":
        raise DamagedMemberError("zip member's local header is missing (damaged zip)")
    nlen, elen = _LOCAL.unpack(header)[9:]
    data = os.pread(fd, csize, offset + _LOCAL.size + nlen + elen)
    if len(data) != csize:
        raise DamagedMemberError("zip member runs past the end of the file (truncated zip)")
    if method == zipfile.ZIP_DEFLATED:
        try:
            data = zlib.decompressobj(-15).decompress(data, size + 1)
        except zlib.error as exc:
            raise DamagedMemberError(f"zip member does not inflate: {exc}") from None
    elif method != zipfile.ZIP_STORED:
        try:  # rare methods (bzip2, lzma): the slow, general path
            with zipfile.ZipFile(zip_path) as zf:
                data = zf.read(str(name))
        except (zipfile.BadZipFile, NotImplementedError, EOFError) as exc:
            raise DamagedMemberError(f"zip member cannot be read: {exc}") from None
    if len(data) != size or zlib.crc32(data) != crc:
        raise DamagedMemberError("zip member fails its CRC check (damaged zip)")
    return data


def _zip_fd(zip_path: str, stamp: object) -> int:
    """One open descriptor per zip and process (pread needs no seek state); reopened if rewritten."""
    held = _OPEN_ZIPS.get(zip_path)
    if held is not None and held[0] == stamp:
        return held[1]
    if held is not None:
        os.close(held[1])
    fd = os.open(zip_path, os.O_RDONLY)
    _OPEN_ZIPS[zip_path] = (stamp, fd)
    return fd
