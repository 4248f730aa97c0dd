"""The container of a conversation or metadata file: one JSON array, read strictly but forgivingly.

LLaVA's trainer calls ``json.load`` on the whole file, so anything that is not exactly one UTF-8
JSON array is a defect. We still want to audit what can be audited: a BOM is stripped, bad UTF-8 is
replaced, trailing garbage is cut, JSON Lines are read line by line. Each repair leaves a file-level
finding; only when no record can be read at all does :class:`UnreadableFileError` end the file.

The fast path is one typed msgspec decode of the whole array (no Python dicts, no GC pressure).
When it fails on a record (wrong type, extra turn key), the file is re-read as ``list[Raw]``
(tokenised, not materialised) and decoded record by record, so one bad record costs one finding.
When msgspec cannot even tokenise it (syntax, truncation, trailing data, or a record only
``json.load`` reads: NaN, 1e400, lone surrogates, deep nesting), :mod:`.jsonscan` reads the array
as ``json.load`` does and tells what is wrong from the bytes: no verdict here depends on the text
of a decoder's exception, which changes between msgspec versions. The streamed path
(:func:`iter_array_chunks`) does the same for just the piece holding the record.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from audit import findings as fnd
from audit.errors import InputError
from audit.findings import Code, Finding
from audit.loaders import jsonscan

_BOM = b"\xef\xbb\xbf"
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])


class UnreadableFileError(InputError):
    """Nothing in the file can be audited (exit code 3); ``finding`` says why, for the report."""

    def __init__(self, finding: Finding, problem: str, position: str | None = None) -> None:
        super().__init__(finding.file, problem, position)
        self.finding = finding


@dataclass
class Container:
    """What the container parse produced: typed records (fast path) or raw elements to decode one
    by one, plus the file-level findings of every repair made on the way."""

    typed: list[Any] | None = None
    elements: list[Any] | None = None  # msgspec.Raw or bytes, in file order
    element_lines: list[int] | None = None  # 1-based line per element (JSON Lines only)
    findings: list[Finding] = field(default_factory=list)


def position(data: bytes, offset: int, shift: int = 0) -> str:
    """`line L, column C (byte B)` for a byte offset, the form every file-level message uses."""
    offset = max(0, min(offset, len(data)))
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {column} (byte {offset + shift})"


class _Reader:
    """Carries the file identity so every finding names the dataset and file the same way."""

    def __init__(self, path: Path, dataset: str, decoder: msgspec.json.Decoder[Any]) -> None:
        self.path = path
        self.file = str(path)
        self.dataset = dataset
        self.decoder = decoder
        self.findings: list[Finding] = []

    def note(self, code: Code, message: str) -> None:
        self.findings.append(fnd.make(code, message, dataset=self.dataset, file=self.file))

    def fail(self, code: Code, problem: str, where: str | None = None) -> UnreadableFileError:
        message = f"{self.file}:{where}: {problem}" if where else f"{self.file}: {problem}"
        finding = fnd.make(code, message, dataset=self.dataset, file=self.file)
        return UnreadableFileError(finding, problem, where)


def parse_container(path: Path, dataset: str, decoder: msgspec.json.Decoder[Any]) -> Container:
    """Parse the file's container; raises :class:`UnreadableFileError` when nothing is auditable."""
    reader = _Reader(path, dataset, decoder)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise reader.fail(Code.FILE_UNREADABLE, "is a directory, not a file") from None
    except OSError as exc:
        raise reader.fail(Code.FILE_UNREADABLE, f"cannot read: {exc.strerror or exc}") from None
    shift = 0
    if data.startswith(_BOM):
        reader.note(Code.FILE_BOM, f"{reader.file}:byte 0: UTF-8 byte-order mark (EF BB BF)")
        data, shift = data[len(_BOM) :], len(_BOM)
    if not data or data.isspace():
        raise reader.fail(Code.FILE_EMPTY, "the file is empty" if not data else "only whitespace")
    container = _parse(reader, data, shift)
    container.findings[:0] = reader.findings
    return container


_FAILED = (msgspec.MsgspecError, UnicodeDecodeError, RecursionError)  # what a decode may raise


def _parse(reader: _Reader, data: bytes, shift: int) -> Container:
    """The typed fast path; when it fails, the bytes themselves say why (never the message of
    the decoder's exception, which changes between versions)."""
    try:
        return Container(typed=reader.decoder.decode(data))
    except _FAILED:
        pass
    bad = _first_bad_utf8(data)
    if bad is not None:
        data = _repair_encoding(reader, data, bad, shift)
        try:
            return Container(typed=reader.decoder.decode(data))
        except _FAILED:
            pass
    start = jsonscan.leading_space(data)
    if data[start : start + 1] != b"[":
        return _not_an_array(reader, data, shift, start)
    return Container(elements=_array_elements(reader, data, shift))


def _first_bad_utf8(data: bytes) -> int | None:
    """Offset of the first invalid UTF-8 byte, checked in chunks to keep memory flat."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    chunk = 1 << 20
    for start in range(0, len(data), chunk):
        try:
            decoder.decode(data[start : start + chunk], final=start + chunk >= len(data))
        except UnicodeDecodeError as exc:
            return start + exc.start - len(decoder.getstate()[0])
    return None


def _repair_encoding(reader: _Reader, data: bytes, offset: int, shift: int) -> bytes:
    """Name the first invalid byte, then audit a copy with replacement characters."""
    reader.note(
        Code.FILE_ENCODING,
        f"{reader.file}:{position(data, offset, shift)}: invalid UTF-8 byte "
        f"0x{data[offset]:02x}; audited with the bad bytes replaced",
    )
    return data.decode("utf-8", errors="replace").encode("utf-8")


def _array_elements(reader: _Reader, data: bytes, shift: int) -> list[Any]:
    """The array's elements for one-by-one decoding: msgspec's tokeniser when it accepts the
    array, else ``json.load``'s reading, which also says where trailing data or a break is."""
    try:
        return _RAW_LIST.decode(data)
    except _FAILED:
        pass
    try:
        split = jsonscan.split_array(data)
    except jsonscan.JsonSyntaxError as exc:
        if not exc.truncated:
            where = position(data, exc.offset, shift)
            raise reader.fail(
                Code.FILE_INVALID_JSON, f"invalid JSON: {exc.problem}", where
            ) from None
        where = position(data, len(data), shift)
        problem = "truncated JSON: the file ends inside a value"
        if not exc.elements:
            raise reader.fail(Code.FILE_INVALID_JSON, problem, where) from None
        reader.note(
            Code.FILE_INVALID_JSON,
            f"{reader.file}:{where}: {problem}; the complete records before "
            f"{position(data, exc.complete_end, shift)} were audited",
        )
        return exc.elements
    if split.trailing is not None:
        reader.note(
            Code.FILE_TRAILING_DATA,
            f"{reader.file}:{position(data, split.trailing, shift)}: data after the end of the "
            "JSON array; the array before it was audited",
        )
    return split.elements


def _not_an_array(reader: _Reader, data: bytes, shift: int, start: int) -> Container:
    """JSON Lines when the file is one object per line; otherwise what the top level is."""
    if data[start : start + 1] == b"{":
        lines = _json_lines(reader, data, shift)
        if lines is not None:
            return lines
    got = jsonscan.top_level_type(data, start)
    where = position(data, start, shift)
    if got is None:
        raise reader.fail(Code.FILE_INVALID_JSON, "invalid JSON: no JSON value at the start", where)
    raise reader.fail(
        Code.FILE_NOT_ARRAY,
        f"the top-level value is {'an' if got[:1] in 'aeiou' else 'a'} {got}, not an array of records",
        where,
    )


def _json_lines(reader: _Reader, data: bytes, shift: int) -> Container | None:
    """JSON Lines: one record per non-blank line. None when the first line is not one value."""
    elements: list[bytes] = []
    line_numbers: list[int] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.strip():
            elements.append(line)
            line_numbers.append(number)
    if len(elements) < 2:
        return None
    try:
        jsonscan.loads(elements[0])
    except jsonscan.JsonSyntaxError:
        return None
    except jsonscan.TooDeepError:
        pass  # one value, too deep to read: its record says so
    reader.note(
        Code.FILE_JSONL,
        f"{reader.file}:{position(data, 0, shift)}: JSON Lines ({len(elements):,} lines) where "
        "LLaVA expects one JSON array; each line was audited as a record",
    )
    return Container(elements=elements, element_lines=line_numbers)


class NotStreamableError(Exception):
    """The streamed fast path does not apply (not an indented array, a syntax or encoding problem);
    the caller re-reads the file with :func:`parse_container`, which says what is wrong."""


@dataclass
class UntypedPiece:
    """A piece of the array in which some record failed the typed decode: its elements, for the
    caller to decode one by one. Only this piece leaves the fast path, not the whole file."""

    elements: list[msgspec.Raw]


CHUNK_BYTES = 8 << 20  # bytes read and typed-decoded at a time by the streamed path
_INDENTED_ARRAY = re.compile(rb"\[\r?\n([ \t]+)\{")


def iter_array_chunks(
    path: Path,
    decoder: msgspec.json.Decoder[Any],
    chunk_bytes: int = CHUNK_BYTES,
    *,
    split_mismatches: bool = False,
) -> Iterator[list[Any] | UntypedPiece]:
    """Typed records of a JSON array, decoded a few MB at a time so the file's bytes and all its
    Python objects are never in memory together.

    In an indented array (``json.dump(..., indent=N)``, the layout of every LLaVA release)
    top-level elements are found by the line break plus the array's own indentation before ``{``:
    strings cannot hold a raw line break and nested objects are indented deeper; the file is read
    a chunk at a time. A compact array is read whole and split by a raw tokenising pass. Anything
    unexpected raises :class:`NotStreamableError` and the whole-file path takes over, as does a
    record that fails the typed decode (or that only ``json.load`` reads) unless
    ``split_mismatches``: then its piece comes back as an :class:`UntypedPiece` (once the whole
    file is known to be valid UTF-8, which the careful path would otherwise repair and report) and
    every other piece stays typed.
    """
    pieces = _PieceDecoder(path, decoder, split_mismatches)
    with path.open("rb") as handle:
        buffer = bytearray(handle.read(chunk_bytes))
        match = _INDENTED_ARRAY.match(buffer)
        if match is None:
            if buffer[:1] != b"[":  # BOM, JSON Lines, an object: the careful path says what
                raise NotStreamableError("not a JSON array")
            buffer += handle.read()
            yield from _compact_chunks(buffer, pieces, chunk_bytes)
            return
        separator = b"\n" + match.group(1) + b"{"
        first, at_end = True, len(buffer) < chunk_bytes
        while True:
            if at_end:
                yield pieces.decode(buffer)
                return
            cut = buffer.rfind(separator)
            if cut <= (match.end() - len(separator) if first else 0):  # < 2 record starts: read on
                more = handle.read(chunk_bytes)
                at_end = not more
                buffer += more
                continue
            comma = cut - 1
            while comma > 0 and buffer[comma] in b" \t\r\n":
                comma -= 1
            if buffer[comma] != ord(","):
                raise NotStreamableError("unexpected text between records")
            buffer[comma] = ord("]")  # close this piece's array in place: no copy of the piece
            with memoryview(buffer) as view:
                records = pieces.decode(view[: comma + 1])
            yield records
            del records
            buffer = buffer[cut:]
            buffer[0] = ord("[")  # the separator's line break opens the next piece's array
            first = False
            more = handle.read(chunk_bytes)
            at_end = not more
            buffer += more


def _compact_chunks(
    data: bytearray, pieces: _PieceDecoder, chunk_bytes: int
) -> Iterator[list[Any] | UntypedPiece]:
    """A compact (single-line) array: elements located by a raw tokenising pass, then typed-decoded
    a few MB at a time, so the Python objects of the whole file never exist at once."""
    elements = _elements(data)
    begin, size = 0, 0
    for end, element in enumerate(elements, start=1):
        size += len(element)
        if size >= chunk_bytes or end == len(elements):
            yield pieces.decode(b"[" + b",".join(elements[begin:end]) + b"]")
            elements[begin:end] = [None] * (end - begin)
            begin, size = end, 0
    if not elements:
        yield []


class _PieceDecoder:
    """Typed decode of one piece (a JSON array of some of the file's records)."""

    def __init__(
        self, path: Path, decoder: msgspec.json.Decoder[Any], split_mismatches: bool
    ) -> None:
        self.path = path
        self.decoder = decoder
        self.split_mismatches = split_mismatches
        self.utf8_checked = False

    def decode(self, piece: bytes | bytearray | memoryview) -> list[Any] | UntypedPiece:
        try:
            return self.decoder.decode(piece)
        except _FAILED:  # a record of the wrong shape, or one only json.load reads (NaN, ...)
            if not self.split_mismatches:
                raise NotStreamableError("a record fails the typed decode") from None
        if not self.utf8_checked:
            if not _file_is_utf8(self.path):
                raise NotStreamableError("invalid UTF-8")
            self.utf8_checked = True
        # a copy: the elements must not pin the reader's buffer, which it reuses
        return UntypedPiece(_elements(bytes(piece)))


def _elements(piece: bytes | bytearray) -> list[Any]:
    """A piece's elements, when the piece is a well-formed array as ``json.load`` reads it;
    anything else is for the careful whole-file path to report."""
    try:
        return _RAW_LIST.decode(piece)
    except _FAILED:
        pass
    try:
        split = jsonscan.split_array(bytes(piece))
    except (jsonscan.JsonSyntaxError, UnicodeDecodeError):
        raise NotStreamableError("not a well-formed JSON array") from None
    if split.trailing is not None:
        raise NotStreamableError("data after the array")
    return list(split.elements)


def _file_is_utf8(path: Path, block: int = 1 << 20) -> bool:
    """Whether the whole file is valid UTF-8, read a block at a time (memory stays flat)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as handle:
            while data := handle.read(block):
                decoder.decode(data)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True
