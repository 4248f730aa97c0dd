"""Tabular views of loaded records: one polars row per record, one per turn.

Rules then run as vectorised polars expressions over whole columns, and only the few failing rows
ever come back to Python. Columns are built with list comprehensions straight from the msgspec
Structs (building frames from dicts is ~50x slower, see field-anchors §2.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import polars as pl

from audit import findings as fnd
from audit.findings import Finding, Severity


@dataclass(frozen=True)
class FileRef:
    """Which file the rows came from, so every finding names dataset, file and kind alike."""

    dataset: str
    file: str
    kind: str

    def finding(
        self,
        code: str,
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
    """``records``: idx, id, id_is_int, image, has_image, n_turns, has_model, first, start.
    ``turns``: rec (row in ``records``), pos, from, value."""

    records: pl.DataFrame
    turns: pl.DataFrame


def chat_tables(records: Sequence[Any], positions: Sequence[int] | None) -> ChatTables:
    """Frames for conversation records (ChatRecord Structs), in file order."""
    ids = [r.id for r in records]
    images = [r.image for r in records]
    n_turns = [len(r.conversations) for r in records]
    turns = [t for r in records for t in r.conversations]
    unset = msgspec.UNSET
    frame = pl.DataFrame(
        {
            "idx": range(len(records)) if positions is None else positions,
            "id": [i if i.__class__ is str else (None if i is None else str(i)) for i in ids],
            "id_is_int": [i.__class__ is int for i in ids],
            "image": [x if x.__class__ is str else None for x in images],
            "has_image": [x is not unset for x in images],
            "n_turns": n_turns,
            "has_model": [r.model is not unset for r in records],
        },
        schema={
            "idx": pl.Int64,
            "id": pl.Utf8,
            "id_is_int": pl.Boolean,
            "image": pl.Utf8,
            "has_image": pl.Boolean,
            "n_turns": pl.Int32,
            "has_model": pl.Boolean,
        },
    )
    frame = frame.with_columns(start=pl.col("n_turns").cum_sum() - pl.col("n_turns"))
    turn_frame = pl.DataFrame(
        {"from": [t.from_ for t in turns], "value": [t.value for t in turns]},
        schema={"from": pl.Utf8, "value": pl.Utf8},
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
    frame = frame.with_columns(first)
    return ChatTables(records=frame, turns=turn_frame)


def metadata_table(records: Sequence[Any], positions: Sequence[int] | None) -> pl.DataFrame:
    """One row per metadata record: idx, id, id_is_int, image, url, caption, blip_caption."""
    ids = [r.id for r in records]
    return pl.DataFrame(
        {
            "idx": range(len(records)) if positions is None else positions,
            "id": [i if i.__class__ is str else (None if i is None else str(i)) for i in ids],
            "id_is_int": [i.__class__ is int for i in ids],
            "image": [r.image for r in records],
            "url": [r.url for r in records],
            "caption": [r.caption for r in records],
            "blip_caption": [r.blip_caption for r in records],
        },
        schema={
            "idx": pl.Int64,
            "id": pl.Utf8,
            "id_is_int": pl.Boolean,
            "image": pl.Utf8,
            "url": pl.Utf8,
            "caption": pl.Utf8,
            "blip_caption": pl.Utf8,
        },
    )
