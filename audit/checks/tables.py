"""Tabular views of loaded records: one polars row per record, one per turn.

Rules then run as vectorised polars expressions over whole columns, and only the few failing rows
ever come back to Python. Columns are built with list comprehensions straight from the msgspec
Structs (building frames from dicts is ~50x slower, see field-anchors §2.3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import polars as pl

from audit import findings as fnd
from audit.findings import Code, Finding, Severity


@dataclass(frozen=True)
class FileRef:
    """Which file the rows came from, so every finding names dataset, file and kind alike."""

    dataset: str
    file: str
    kind: str

    def finding(
        self,
        code: Code,
        message: str,
        index: int | None = None,
        record_id: Any = None,
        severity: Severity | None = None,
    ) -> Finding:
        return fnd.make(
            code,
            message,
            dataset=self.dataset,
            file=self.file,
            index=index,
            record_id=record_id,
            severity=severity,
        )


@dataclass
class ChatTables:
    """``records``: idx, id, id_is_int, image, has_image, n_turns, has_model, start (row of the
    first turn in ``turns``), first (turn 0's value), first_n_img (<image> count in it).
    ``turns``: rec (row in ``records``), pos, from, value."""

    records: pl.DataFrame
    turns: pl.DataFrame


_CHUNK = 65_536  # records turned into columns at a time; their Structs are freed right after
# Each record's position in the file (None: the i-th record is element i). A callable is asked
# once every chunk has arrived: a streamed file knows which elements it dropped only by then.
Positions = Sequence[int] | Callable[[], Sequence[int] | None] | None


def _id_columns(ids: list[Any]) -> list[pl.Series]:
    """`id` as text plus whether it was a JSON integer; all-string ids (the norm) in one step."""
    try:
        return [
            pl.Series("id", ids, dtype=pl.Utf8),
            pl.Series("id_is_int", [False], dtype=pl.Boolean).extend_constant(False, len(ids) - 1)
            if ids
            else pl.Series("id_is_int", [], dtype=pl.Boolean),
        ]
    except (TypeError, ValueError, OverflowError):
        pass
    text = [i if i.__class__ is str else (None if i is None else str(i)) for i in ids]
    return [
        pl.Series("id", text, dtype=pl.Utf8),
        pl.Series("id_is_int", [i.__class__ is int for i in ids], dtype=pl.Boolean),
    ]


def _present(values: list[Any], name: str) -> pl.Series:
    """Whether each optional key was in the record (msgspec leaves UNSET where it was absent)."""
    absent = values.count(msgspec.UNSET)  # a C-speed identity scan
    if absent in (0, len(values)):
        return pl.Series(name, [absent == 0] * len(values), dtype=pl.Boolean)
    return pl.Series(name, [v is not msgspec.UNSET for v in values], dtype=pl.Boolean)


def _chat_chunk(records: list[Any]) -> tuple[pl.DataFrame, pl.DataFrame]:
    images = [r.image for r in records]
    has_image = _present(images, "has_image")
    if not has_image.all():
        images = [x if x.__class__ is str else None for x in images]
    conversations = [r.conversations for r in records]
    turns = [t for c in conversations for t in c]
    frame = pl.DataFrame(
        [
            *_id_columns([r.id for r in records]),
            pl.Series("image", images, dtype=pl.Utf8),
            has_image,
            pl.Series("n_turns", list(map(len, conversations)), dtype=pl.Int32),
            _present([r.model for r in records], "has_model"),
        ]
    )
    turn_frame = pl.DataFrame(
        [
            pl.Series("from", [t.from_ for t in turns], dtype=pl.Utf8),
            pl.Series("value", [t.value for t in turns], dtype=pl.Utf8),
        ]
    )
    return frame, turn_frame


def consume(records: list[Any]) -> Iterator[list[Any]]:
    """Slices of ``records``, each released from the list once the caller is done with it."""
    for begin in range(0, len(records), _CHUNK):
        yield records[begin : begin + _CHUNK]
        records[begin : begin + _CHUNK] = [None] * min(_CHUNK, len(records) - begin)
    records.clear()


def chat_tables(records: list[Any], positions: Sequence[int] | None) -> ChatTables:
    """Frames for conversation records (ChatRecord Structs), in file order.

    Consumes ``records``: each chunk's Structs are released once its columns exist, so the Python
    objects and the frames are never both fully in memory.
    """
    return chat_tables_from_chunks(consume(records), positions)


def chat_tables_from_chunks(chunks: Iterable[list[Any]], positions: Positions) -> ChatTables:
    """:func:`chat_tables` over record lists arriving one chunk at a time (a streamed file)."""
    frames: list[pl.DataFrame] = []
    turn_frames: list[pl.DataFrame] = []
    for chunk in chunks:
        frame, turn_frame = _chat_chunk(chunk)
        del chunk
        frames.append(frame)
        turn_frames.append(turn_frame)
    if not frames:
        frames, turn_frames = [_chat_chunk([])[0]], [_chat_chunk([])[1]]
    frame = pl.concat(frames, rechunk=True)
    turn_frame = pl.concat(turn_frames, rechunk=True)
    idx = _index(frame.height, positions)
    frame = frame.with_columns(
        idx=idx.cast(pl.Int64), start=pl.col("n_turns").cum_sum() - pl.col("n_turns")
    )
    rec = pl.int_range(0, frame.height, eager=True, dtype=pl.Int32).repeat_by(frame["n_turns"])
    turn_frame = turn_frame.with_columns(rec=rec.explode().drop_nulls().cast(pl.Int32))
    starts = frame["start"].gather(turn_frame["rec"]) if turn_frame.height else frame["start"][:0]
    turn_frame = turn_frame.with_columns(
        pos=(pl.int_range(0, turn_frame.height, eager=True, dtype=pl.Int64) - starts).cast(pl.Int32)
    )
    first = pl.Series("first", [None] * frame.height, dtype=pl.Utf8)
    if turn_frame.height:
        safe = frame["start"].clip(upper_bound=turn_frame.height - 1)
        gathered = turn_frame["value"].gather(safe)
        first = pl.select(
            pl.when(frame["n_turns"] > 0).then(gathered).otherwise(None).alias("first")
        ).to_series()
    frame = frame.with_columns(first, first_n_img=first.str.count_matches("<image>", literal=True))
    return ChatTables(records=frame, turns=turn_frame)


def _index(height: int, positions: Positions) -> pl.Series:
    if callable(positions):
        positions = positions()
    return pl.int_range(0, height, eager=True) if positions is None else pl.Series(positions)


def metadata_table(records: list[Any], positions: Sequence[int] | None) -> pl.DataFrame:
    """One row per metadata record: idx, id, id_is_int, image, url, caption, blip_caption.

    Consumes ``records`` chunk by chunk, like :func:`chat_tables`.
    """
    return metadata_table_from_chunks(consume(records), positions)


def metadata_table_from_chunks(chunks: Iterable[list[Any]], positions: Positions) -> pl.DataFrame:
    """:func:`metadata_table` over record lists arriving one chunk at a time."""
    frames = []
    for chunk in chunks:
        columns = _id_columns([r.id for r in chunk])
        columns += [
            pl.Series("image", [r.image for r in chunk], dtype=pl.Utf8),
            pl.Series("url", [r.url for r in chunk], dtype=pl.Utf8),
            pl.Series("caption", [r.caption for r in chunk], dtype=pl.Utf8),
            pl.Series("blip_caption", [r.blip_caption for r in chunk], dtype=pl.Utf8),
        ]
        frames.append(pl.DataFrame(columns))
        del chunk
    if not frames:
        schema = {"id": pl.Utf8, "id_is_int": pl.Boolean, "image": pl.Utf8, "url": pl.Utf8}
        frames = [pl.DataFrame(schema=schema | {"caption": pl.Utf8, "blip_caption": pl.Utf8})]
    frame = pl.concat(frames, rechunk=True)
    idx = _index(frame.height, positions)
    return frame.with_columns(idx=idx.cast(pl.Int64))
