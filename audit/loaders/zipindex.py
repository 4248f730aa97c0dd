"""A zip's member table, parsed from its central directory by hand.

``zipfile.ZipFile`` builds a ZipInfo object per member, about 4 s for 595K names on this machine;
the audit needs membership in under 2 s, so this keeps only what reading a member needs. A zip is
dataset input, so every offset, size and count is checked against the file before it is used: a
malformed zip is one :class:`ZipFormatError` with fixed wording, never a huge read or a crash.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

_EOCD = struct.Struct("<4sHHHHIIH")
_EOCD64_LOCATOR = struct.Struct("<4sIQI")
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")
#: Central directory entry, only the fields a reader needs (x = skipped bytes): signature, flags,
#: method, crc, compressed size, size, name/extra/comment lengths, local header offset.
_CENTRAL = struct.Struct("<4s4xHH4xIIIHHH8xI")
_UTF8_FLAG = 0x800
_ZIP64_TAG = 1
_FULL = 0xFFFFFFFF  # a 32-bit field that says "the real value is in the zip64 extra field"

#: One zip member: (local header offset, compressed size, size, crc, method, flags). A plain tuple
#: because 595K of them are built per index; a dataclass or NamedTuple costs 2x the time.
Member = tuple[int, int, int, int, int, int]
#: Reads ``size`` bytes at ``offset`` (``os.pread`` bound to an open zip).
ReadAt = Callable[[int, int], bytes]


class ZipFormatError(ValueError):
    """The zip's directory records are missing, inconsistent or point outside the file."""


def read_index(read_at: ReadAt, file_size: int) -> tuple[dict[str, Member], str]:
    """Members keyed below the single top folder (if any), and that folder (``images/`` or "")."""
    tail_len = min(file_size, 65_535 + _EOCD.size + _EOCD64_LOCATOR.size)
    tail = read_at(tail_len, file_size - tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + _EOCD.size > len(tail):
        raise ZipFormatError("no end-of-central-directory record")
    _, _, _, _, count, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, pos)
    locator = pos - _EOCD64_LOCATOR.size
    if locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
        _, _, eocd64_offset, _ = _EOCD64_LOCATOR.unpack_from(tail, locator)
        if eocd64_offset > file_size - _EOCD64.size:
            raise ZipFormatError(
                "zip64 end-of-central-directory record is past the end of the file"
            )
        record = read_at(_EOCD64.size, eocd64_offset)
        if record[:4] != b"PK\x06\x06":
            raise ZipFormatError("bad zip64 end-of-central-directory record")
        *_, count, cd_size, cd_offset = _EOCD64.unpack(record)
    if cd_offset > file_size or cd_size > file_size - cd_offset:
        raise ZipFormatError("central directory runs past the end of the file")
    members = _parse_entries(read_at(cd_size, cd_offset), count)
    top = _single_top_folder(members)
    return _below_top(members, top), top


def _parse_entries(cd: bytes, count: int) -> dict[str, Member]:
    members: dict[str, Member] = {}
    unpack = _CENTRAL.unpack_from
    pos = 0
    end = len(cd)
    for _ in range(count):
        if pos + _CENTRAL.size > end:
            raise ZipFormatError("central directory is truncated")
        sig, flags, method, crc, csize, size, nlen, elen, clen, offset = unpack(cd, pos)
        if sig != b"PK\x01\x02":
            raise ZipFormatError(f"bad central directory entry at byte {pos}")
        name_end = pos + _CENTRAL.size + nlen
        if name_end + elen + clen > end:
            raise ZipFormatError("central directory is truncated")
        raw = cd[pos + _CENTRAL.size : name_end]
        if _FULL in (csize, size, offset):
            size, csize, offset = _zip64_extra(cd[name_end : name_end + elen], size, csize, offset)
        pos = name_end + elen + clen
        if raw.endswith(b"/"):
            continue
        if flags & _UTF8_FLAG or raw.isascii():  # ASCII: skip the slow pure-Python cp437 codec
            name = raw.decode("utf-8", "replace")
        else:
            name = raw.decode("cp437")
        members[name] = (offset, csize, size, crc, method, flags)
    return members


def _zip64_extra(extra: bytes, size: int, csize: int, offset: int) -> tuple[int, int, int]:
    """The 64-bit values of the fields that hold 0xFFFFFFFF, in the order the zip spec gives."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if pos + 4 + length > len(extra):
            break
        if tag == _ZIP64_TAG:
            wanted = [size == _FULL, csize == _FULL, offset == _FULL]
            if length < 8 * sum(wanted):
                break
            values = iter(struct.unpack_from(f"<{sum(wanted)}Q", extra, pos + 4))
            size, csize, offset = (
                next(values) if need else value
                for need, value in zip(wanted, (size, csize, offset), strict=True)
            )
            return size, csize, offset
        pos += 4 + length
    raise ZipFormatError("a member's zip64 extra field is missing or malformed")


def _single_top_folder(members: dict[str, Member]) -> str:
    """``images/`` when every member sits under that one folder (a common way images.zip is made)."""
    first = next(iter(members), "")
    top = first.split("/", 1)[0] + "/" if "/" in first else ""
    if top and all(name.startswith(top) for name in members):
        return top
    return ""


def _below_top(members: dict[str, Member], top: str) -> dict[str, Member]:
    """Key members by their path below the top folder: one dict lookup per record, not two."""
    if not top:
        return members
    cut = len(top)
    return {name[cut:]: member for name, member in members.items()}
