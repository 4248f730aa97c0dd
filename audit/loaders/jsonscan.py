"""JSON read the way LLaVA's trainer reads it (``json.load``), for the careful path only.

msgspec is fast but stricter than ``json.load`` (it rejects NaN, Infinity, 1e400 and lone
surrogates such as ``"\\ud800"``) and its error messages change between versions. When it fails,
this module says what is wrong from the data's structure alone: the stdlib decoder's documented
``JSONDecodeError.pos`` for where the syntax breaks, ``raw_decode``'s end index for where a value
ends, a bracket scan for "the file ends inside a value" and for nesting depth. No code here reads
an error message. Positions are byte offsets into the UTF-8 data.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

_DECODER = json.JSONDecoder()  # json.load's own: NaN, Infinity, 1e400 and lone surrogates pass
_WS = re.compile(r"[ \t\n\r]*")
_WS_BYTES = re.compile(rb"[ \t\n\r]*")
# One token of a bracket scan: a whole string, one bracket, or a run of anything else.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]|[\]}]|[^"\[\]{}]+', re.DOTALL)
_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_NAMED = {b"{": "object", b"[": "array", b'"': "str"}
_WORDS = ((b"true", "bool"), (b"false", "bool"), (b"null", "null"))
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class JsonSyntaxError(Exception):
    """The data is not JSON at ``offset``; ``truncated`` when it ends inside a value, in which
    case ``elements`` are the array's complete elements before ``complete_end``."""

    def __init__(
        self,
        problem: str,
        offset: int,
        *,
        truncated: bool = False,
        elements: list[bytes] | None = None,
        complete_end: int = 0,
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.offset = offset
        self.truncated = truncated
        self.elements = elements or []
        self.complete_end = complete_end


class TooDeepError(Exception):
    """A value nested deeper than Python's recursion limit lets ``json.load`` read."""

    def __init__(self, depth: int) -> None:
        super().__init__(f"nested {depth:,} levels deep")
        self.depth = depth


@dataclass
class Split:
    """A JSON array's elements (exact bytes, in order) and where non-whitespace follows it."""

    elements: list[bytes] = field(default_factory=list)
    trailing: int | None = None  # byte offset of data after the closing `]`


def leading_space(data: bytes | bytearray) -> int:
    """Offset of the first non-whitespace byte (len(data) when there is none)."""
    match = _WS_BYTES.match(data)
    return match.end() if match else 0


def top_level_type(data: bytes, start: int) -> str | None:
    """The JSON type of the value at ``start`` (msgspec's names: object, str, int, ...), from its
    first bytes; None when no JSON value starts there."""
    first = data[start : start + 1]
    if first in _NAMED:
        return _NAMED[first]
    for word, name in _WORDS:
        if data.startswith(word, start):
            return name
    if data.startswith((b"NaN", b"Infinity", b"-Infinity"), start):
        return "float"
    number = _NUMBER.match(data, start)
    if number is None:
        return None
    return "float" if number.group(1) or number.group(2) else "int"


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting in a JSON text, by a flat scan (never recurses)."""
    return _scan(text, _skip(text, 0))[1]


def shallow(raw: bytes) -> bytes:
    """An object's JSON with every nested container replaced by ``0``, by a flat scan.

    What a record too deep for any recursive decoder still tells: its top-level scalar keys (id,
    image, url), so a takedown can still find it.
    """
    out = bytearray()
    depth, in_string, escaped = 0, False, False
    for byte in raw:
        if in_string:
            if depth <= 1:
                out.append(byte)
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
            if depth <= 1:
                out.append(byte)
        elif byte in b"[{":
            depth += 1
            if depth == 2:
                out += b"0"
            elif depth < 2:
                out.append(byte)
        elif byte in b"]}":
            if depth <= 1:
                out.append(byte)
            depth -= 1
        elif depth <= 1:
            out.append(byte)
    return bytes(out)


def _skip(text: str, position: int) -> int:
    """The first non-whitespace index at or after ``position``."""
    match = _WS.match(text, position)
    return match.end() if match else position


def _scan(text: str, start: int) -> tuple[int | None, int]:
    """End of the value at ``start`` by brackets alone (None: the text ends inside it, or inside a
    string), and the deepest nesting seen. Strings are skipped whole, so brackets in them don't
    count."""
    depth = deepest = 0
    position, size = start, len(text)
    while position < size:
        token = _TOKEN.match(text, position)
        if token is None:  # a string that never closes
            return None, deepest
        kind = text[position]
        position = token.end()
        if kind in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif kind in "]}":
            depth -= 1
            if depth <= 0:
                return position, deepest
        elif depth == 0:  # a scalar element: it ends with its run, unless the text does
            return (position if position < size else None), deepest
    return None, deepest


class _ByteOffsets:
    """Byte offset of a character index in text decoded from UTF-8; indexes asked in order."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.ascii = text.isascii()
        self.char = self.byte = 0

    def __call__(self, index: int) -> int:
        if self.ascii:
            return index
        if index < self.char:
            self.char = self.byte = 0
        self.byte += len(self.text[self.char : index].encode("utf-8"))
        self.char = index
        return self.byte


def split_array(data: bytes) -> Split:
    """The elements of the JSON array that ``data`` (valid UTF-8) starts with, read as
    ``json.load`` would. Raises :class:`JsonSyntaxError` where it is not JSON; an element too
    deep for the stdlib decoder is located by brackets and kept (its record reports it)."""
    text = data.decode("utf-8")
    to_byte = _ByteOffsets(text)
    size = len(text)
    position = _skip(text, 0)
    if text[position : position + 1] != "[":
        raise JsonSyntaxError("expected '['", to_byte(position))
    split = Split()
    position = _skip(text, position + 1)
    complete_end = position
    if text[position : position + 1] != "]":
        while True:
            start = position
            end = _value_end(text, start, to_byte, split.elements, complete_end)
            split.elements.append(data[to_byte(start) : to_byte(end)])
            complete_end = end
            position = _skip(text, end)
            if position >= size:
                raise _truncated(to_byte(size), split.elements, to_byte(complete_end))
            if text[position] == "]":
                break
            if text[position] != ",":
                raise JsonSyntaxError("expected ',' or ']' after an element", to_byte(position))
            position = _skip(text, position + 1)
    after = _skip(text, position + 1)
    split.trailing = to_byte(after) if after < size else None
    return split


def _value_end(
    text: str, start: int, to_byte: _ByteOffsets, elements: list[bytes], complete_end: int
) -> int:
    """End of the element at ``start``, or the syntax error (truncated or not) it holds."""
    try:
        return _DECODER.raw_decode(text, start)[1]
    except json.JSONDecodeError as exc:
        if _scan(text, start)[0] is None:
            raise _truncated(to_byte(len(text)), elements, to_byte(complete_end)) from None
        raise JsonSyntaxError(exc.msg, to_byte(exc.pos)) from None
    except RecursionError:
        end = _scan(text, start)[0]
        if end is None:
            raise _truncated(to_byte(len(text)), elements, to_byte(complete_end)) from None
        return end


def _truncated(offset: int, elements: list[bytes], complete_end: int) -> JsonSyntaxError:
    return JsonSyntaxError(
        "the file ends inside a value",
        offset,
        truncated=True,
        elements=list(elements),
        complete_end=complete_end,
    )


def loads(data: bytes | str) -> Any:
    """One value as ``json.loads`` reads it; :class:`JsonSyntaxError` (offset relative to
    ``data``'s text) or :class:`TooDeepError` when it cannot."""
    text = data if isinstance(data, str) else bytes(data).decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JsonSyntaxError(f"{exc.msg} at column {exc.colno}", exc.pos) from None
    except RecursionError:
        raise TooDeepError(nesting_depth(text)) from None


@dataclass
class Oddities:
    """Values ``json.load`` reads but strict JSON (and msgspec) rejects: the first path of each,
    and how many there were."""

    non_finite: list[tuple[str, str]] = field(default_factory=list)  # (path, NaN/Infinity/...)
    surrogates: list[str] = field(default_factory=list)  # paths of strings with lone surrogates


def clean_oddities(value: Any) -> tuple[Any, Oddities]:
    """The value with lone surrogates in strings and keys replaced by U+FFFD (so text columns and
    reports stay valid UTF-8), and what was odd in it, in document order. Walks with a stack:
    values ~1,000 levels deep must not recurse."""
    found = Oddities()
    holder = [value]
    stack: list[tuple[Any, Any]] = [(holder, iter([(0, value, "")]))]
    while stack:
        container, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            continue
        key, item, path = child
        if isinstance(item, dict):
            if any(_SURROGATE.search(name) for name in item):
                found.surrogates.append(f"{path or '(record)'} (a key)")
                cleaned = {_SURROGATE.sub("\ufffd", name): inner for name, inner in item.items()}
                item.clear()
                item.update(cleaned)
            stack.append((item, iter([(k, v, _path(path, k)) for k, v in item.items()])))
        elif isinstance(item, list):
            stack.append((item, iter([(i, v, f"{path}[{i}]") for i, v in enumerate(item)])))
        elif isinstance(item, float) and not math.isfinite(item):
            found.non_finite.append((path or "(record)", _float_name(item)))
        elif isinstance(item, str) and _SURROGATE.search(item):
            found.surrogates.append(path or "(record)")
            container[key] = _SURROGATE.sub("\ufffd", item)
    return holder[0], found


def _path(path: str, key: str) -> str:
    """``path.key``, or ``path["odd key"]`` (escaped: a message stays one printable line)."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _float_name(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"
