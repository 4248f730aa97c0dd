"""Chat file vs its metadata file (CC-3M chat.json + metadata.json, LCS-558K + _meta.json).

The two files are released side by side and must describe the same records: the same ids, the same
image file names, and for CC-3M the gpt answer is the raw CC-3M caption of the metadata. A record
present in only one file loses its provenance (no source URL for the licence audit).

The comparison joins on ids and compares 64-bit hashes of images and captions, so no copy of the
text columns is made; the few differing rows fetch their text for the message.
"""

from __future__ import annotations

import polars as pl

from audit.checks.tables import ChatTables, FileRef
from audit.findings import Code, Finding


def chat_side(tables: ChatTables) -> pl.DataFrame:
    """What the comparison needs from the chat file: idx, id, image, answer (turn 1)."""
    records = tables.records
    answers = pl.Series("answer", [None] * records.height, dtype=pl.Utf8)
    if tables.turns.height:
        row = (records["start"] + 1).clip(upper_bound=tables.turns.height - 1)
        answers = pl.select(
            pl.when(records["n_turns"] > 1)
            .then(tables.turns["value"].gather(row))
            .otherwise(None)
            .alias("answer")
        ).to_series()
    return records.select("idx", "id", "image").with_columns(answers)


def _first_per_id(frame: pl.DataFrame, text: str) -> pl.DataFrame:
    """Row, idx, id and hashes of image and ``text``, for the first record of each id."""
    return (
        frame.with_row_index("row")
        .filter(pl.col("id").is_not_null() & pl.col("id").is_first_distinct())
        .select(
            "row",
            "idx",
            "id",
            h_image=pl.col("image").hash(),
            has_image=pl.col("image").is_not_null() & (pl.col("image") != ""),
            h_text=pl.col(text).hash(),
            has_text=pl.col(text).is_not_null(),
        )
    )


def compare(
    chat: pl.DataFrame, chat_ref: FileRef, meta: pl.DataFrame, meta_ref: FileRef
) -> tuple[list[Finding], dict[str, int]]:
    """Findings for both files; ``chat`` from :func:`chat_side`, ``meta`` the metadata table."""
    left = _first_per_id(chat, "answer")
    right = _first_per_id(meta, "caption")
    out: list[Finding] = []
    only_chat = left.filter(~pl.col("id").is_in(right["id"].implode()))
    for idx, rid in only_chat.select("idx", "id").iter_rows():
        out.append(
            chat_ref.finding(
                Code.XFILE_MISSING_METADATA, f"id {rid!r} is not in {meta_ref.file}", idx, rid
            )
        )
    only_meta = right.filter(~pl.col("id").is_in(left["id"].implode()))
    for idx, rid in only_meta.select("idx", "id").iter_rows():
        out.append(
            meta_ref.finding(
                Code.XFILE_MISSING_CHAT, f"id {rid!r} is not in {chat_ref.file}", idx, rid
            )
        )
    both = left.join(right, on="id", suffix="_meta")
    images = both.filter(
        pl.col("has_image")
        & pl.col("has_image_meta")
        & (pl.col("h_image") != pl.col("h_image_meta"))
    )
    for row, row_meta, idx, rid, meta_idx in images.select(
        "row", "row_meta", "idx", "id", "idx_meta"
    ).iter_rows():
        image, other = chat["image"][row], meta["image"][row_meta]
        if image != other:  # a hash collision would compare equal here
            out.append(
                chat_ref.finding(
                    Code.XFILE_IMAGE_MISMATCH,
                    f"image {image!r} here, {other!r} in metadata record {meta_idx}",
                    idx,
                    rid,
                )
            )
    captions = 0
    if chat_ref.kind == "cc3m-chat":
        differ = both.filter(
            pl.col("has_text")
            & pl.col("has_text_meta")
            & (pl.col("h_text") != pl.col("h_text_meta"))
        )
        for row, row_meta, idx, rid in differ.select("row", "row_meta", "idx", "id").iter_rows():
            answer, caption = chat["answer"][row], meta["caption"][row_meta]
            if answer != caption:
                captions += 1
                out.append(
                    chat_ref.finding(
                        Code.XFILE_CAPTION_MISMATCH,
                        f"gpt answer {answer[:50]!r} differs from the metadata caption "
                        f"{caption[:50]!r}",
                        idx,
                        rid,
                    )
                )
    stats = {
        "matched": both.height,
        "only_in_chat": only_chat.height,
        "only_in_metadata": only_meta.height,
        "image_mismatches": sum(f.code == Code.XFILE_IMAGE_MISMATCH for f in out),
        "caption_mismatches": captions,
    }
    return out, stats
