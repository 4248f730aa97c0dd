"""One record that failed typed decoding: say exactly what is wrong, and keep it when trainable.

The typed fast path only tells us *that* a record is off (and where, as a JSON path). Here the
record is decoded generically and compared with the shape LLaVA's trainer needs, so the finding
names the rule (turn without `value`, image given as a list, ...) rather than a decoder message.
A record whose only defects are warnings (extra turn keys) is rebuilt and audited like the rest.
:class:`ElementDecoder` runs this element by element, for a whole file (``load_records``) or for
the one streamed chunk that failed the typed decode (``RecordStream``), so both report alike.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from typing import Any

import msgspec

from audit import findings as fnd
from audit.findings import Code, Finding
from audit.loaders import jsonscan
from audit.models import ChatRecord, MetadataRecord, Turn

CHAT_KEYS = frozenset({"id", "image", "conversations", "model"})
MakeFinding = Callable[[Code, str, Any], Finding]


def excerpt(value: Any, limit: int = 60) -> str:
    """A short, single-line rendering of a value for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _names(keys: list[str]) -> str:
    """Key names for a one-line message: plain names as they are, any other JSON-escaped."""
    return ", ".join(key if key.isidentifier() else json.dumps(key) for key in keys)


def _type_name(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


class ElementDecoder:
    """Decodes elements one at a time: a record, or findings (and maybe a salvaged record).

    Shared by :func:`load_records` and :class:`RecordStream`, so both report a bad record alike.
    """

    def __init__(
        self,
        record_type: type[Any],
        metadata_keys: dict[str, str] | None,  # None: conversation records
        findings: list[Finding],
        file: str,
        dataset: str,
    ) -> None:
        self.single = msgspec.json.Decoder(record_type)
        self.metadata_keys = metadata_keys
        self.findings = findings
        self.file = file
        self.dataset = dataset

    def decode(
        self, elements: list[Any], first: int, lines: list[int] | None = None
    ) -> tuple[list[Any], list[int]]:
        """The records among ``elements`` (the first at file position ``first``), with their
        positions."""
        records: list[Any] = []
        kept: list[int] = []
        gc_was_enabled = gc.isenabled()
        gc.disable()  # generic decoding builds many dicts; the cyclic GC only slows that down
        try:
            for position, element in enumerate(elements, start=first):
                try:
                    records.append(self.single.decode(element))
                    kept.append(position)
                    continue
                except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
                    pass  # the generic decode below says what is wrong with it
                where = f"line {lines[position]}" if lines else f"record {position}"
                record = self._salvage(element, position, where)
                if record is not None:
                    records.append(record)
                    kept.append(position)
        finally:
            if gc_was_enabled:
                gc.enable()
        return records, kept

    def _salvage(self, element: Any, position: int, where: str) -> Any:
        make = _finding_maker(self.dataset, self.file, position)
        obj = self._generic(element, where, make)
        if obj is _ABSENT:
            return None
        record: Any
        try:
            if self.metadata_keys is not None:
                record, found = salvage_metadata(obj, self.metadata_keys, make)
            else:
                record, found = salvage_chat(obj, make)
        except RecursionError:  # a value just shallow enough to decode, too deep to render
            text = bytes(element).decode("utf-8", errors="replace")
            self.findings.append(_too_deep(jsonscan.nesting_depth(text), make))
            return None
        self.findings.extend(found)
        return record

    def _generic(self, element: Any, where: str, make: MakeFinding) -> Any:
        """The element as plain Python values, as ``json.load`` reads it (NaN, Infinity, 1e400,
        lone surrogates reported and kept, surrogates replaced); ``_ABSENT`` when unreadable."""
        try:
            return msgspec.json.decode(element)
        except RecursionError:
            text = bytes(element).decode("utf-8", errors="replace")
            self.findings.append(_too_deep(jsonscan.nesting_depth(text), make))
            return _ABSENT
        except (msgspec.MsgspecError, UnicodeDecodeError):
            pass  # not strict JSON: read it the way LLaVA's trainer does
        try:
            obj, odd = jsonscan.clean_oddities(jsonscan.loads(bytes(element)))
        except jsonscan.TooDeepError as exc:
            self.findings.append(_too_deep(exc.depth, make))
            return _ABSENT
        except jsonscan.JsonSyntaxError as exc:
            message = f"{self.file}:{where}: invalid JSON: {exc.problem}"
            self.findings.append(make(Code.RECORD_INVALID_JSON, message, None))
            return _ABSENT
        self.findings.extend(_oddity_findings(odd, _usable_id(obj), make))
        return obj


def _too_deep(depth: int, make: MakeFinding) -> Finding:
    return make(
        Code.RECORD_TOO_DEEP,
        f"nested {depth:,} levels deep; json.load raises RecursionError at about 1,000",
        None,
    )


def _oddity_findings(odd: jsonscan.Oddities, record_id: Any, make: MakeFinding) -> list[Finding]:
    """One warning per kind of value only ``json.load`` accepts: the first place and a count."""
    out = []
    if odd.non_finite:
        path, value = odd.non_finite[0]
        more = f" (and {len(odd.non_finite) - 1:,} more)" if len(odd.non_finite) > 1 else ""
        out.append(make(Code.RECORD_NON_FINITE, f"`{path}` is {value}{more}", record_id))
    if odd.surrogates:
        more = f" (and {len(odd.surrogates) - 1:,} more)" if len(odd.surrogates) > 1 else ""
        message = f"`{odd.surrogates[0]}` holds a lone UTF-16 surrogate{more}"
        out.append(make(Code.RECORD_LONE_SURROGATE, message, record_id))
    return out


def _usable_id(obj: Any) -> Any:
    """The record's id when it is one (a string or an integer), for findings made before salvage."""
    record_id = obj.get("id") if isinstance(obj, dict) else None
    return (
        record_id if isinstance(record_id, str | int) and not isinstance(record_id, bool) else None
    )


def _finding_maker(dataset: str, file: str, position: int) -> MakeFinding:
    def make(code: Code, message: str, record_id: Any) -> Finding:
        return fnd.make(
            code, message, dataset=dataset, file=file, index=position, record_id=record_id
        )

    return make


def salvage_chat(obj: Any, make: MakeFinding) -> tuple[ChatRecord | None, list[Finding]]:
    """Findings for a generically decoded chat record, and the record if it can still be audited."""
    if not isinstance(obj, dict):
        return None, [
            make(Code.RECORD_NOT_OBJECT, f"element is a {_type_name(obj)}, not an object", None)
        ]
    record_id = obj.get("id")
    out: list[Finding] = []
    usable = True
    if record_id is not None and (
        isinstance(record_id, bool) or not isinstance(record_id, str | int)
    ):
        out.append(make(Code.RECORD_ID_TYPE, f"id is a {_type_name(record_id)}", None))
        record_id = None
    image = obj.get("image", _ABSENT)
    if image is not _ABSENT and image is not None and not isinstance(image, str):
        out.append(
            make(Code.IMAGE_PATH, f"image is a {_type_name(image)}: {excerpt(image)}", record_id)
        )
        usable = False
    model = obj.get("model", _ABSENT)
    if model is not _ABSENT and model is not None and not isinstance(model, str):
        model = _ABSENT  # an odd `model` value does not matter to the trainer
    extra = sorted(set(obj) - CHAT_KEYS)
    if extra:
        out.append(make(Code.RECORD_EXTRA_KEY, f"extra keys {_names(extra)}", record_id))
    conversations = obj.get("conversations", _ABSENT)
    turns: list[Turn] = []
    if not isinstance(conversations, list):
        what = "missing" if conversations is _ABSENT else f"a {_type_name(conversations)}"
        out.append(make(Code.RECORD_CONVERSATIONS, f"conversations is {what}", record_id))
        usable = False
    else:
        for position, turn in enumerate(conversations):
            parsed, turn_findings = _salvage_turn(position, turn, record_id, make)
            out.extend(turn_findings)
            if parsed is None:
                usable = False
            else:
                turns.append(parsed)
    if not usable:
        return None, out
    record = ChatRecord(conversations=turns, id=record_id)
    if image is not _ABSENT:
        record.image = image
    if model is not _ABSENT:
        record.model = model
    return record, out


def _salvage_turn(
    position: int, turn: Any, record_id: Any, make: MakeFinding
) -> tuple[Turn | None, list[Finding]]:
    if not isinstance(turn, dict):
        message = f"turn {position} is a {_type_name(turn)}: {excerpt(turn)}"
        return None, [make(Code.TURN_NOT_OBJECT, message, record_id)]
    bad = [
        f"`{key}` is {'missing' if key not in turn else 'a ' + _type_name(turn[key])}"
        for key in ("from", "value")
        if not isinstance(turn.get(key), str)
    ]
    out = []
    if bad:
        out.append(make(Code.TURN_KEYS, f"turn {position}: {', '.join(bad)}", record_id))
    extra = sorted(set(turn) - {"from", "value"})
    if extra:
        out.append(
            make(Code.TURN_EXTRA_KEY, f"turn {position}: extra keys {_names(extra)}", record_id)
        )
    if bad:
        return None, out
    return Turn(from_=turn["from"], value=turn["value"]), out


def salvage_metadata(
    obj: Any, keys: dict[str, str], make: MakeFinding
) -> tuple[MetadataRecord | None, list[Finding]]:
    """A metadata record under the file's own key names; fields of the wrong type are reported."""
    if not isinstance(obj, dict):
        return None, [
            make(Code.RECORD_NOT_OBJECT, f"element is a {_type_name(obj)}, not an object", None)
        ]
    values: dict[str, Any] = {}
    bad: list[str] = []
    for standard, key in keys.items():
        value = obj.get(key)
        allowed = (str, int) if standard == "id" else (str,)
        if value is None or (isinstance(value, allowed) and not isinstance(value, bool)):
            values[standard] = value
        else:
            bad.append(f"`{key}` is a {_type_name(value)}")
    record_id = values.get("id")
    if bad:
        return None, [make(Code.METADATA_FIELD, ", ".join(bad), record_id)]
    return MetadataRecord(**values), []


class _Absent:
    """Marks a key that is not in the record (different from JSON null)."""


_ABSENT: Any = _Absent()
