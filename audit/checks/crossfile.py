"""Chat file vs its metadata file (CC-3M chat.json + metadata.json, LCS-558K + _meta.json).

The two files are released side by side and must describe the same records: the same ids, the same
image file names, and for CC-3M the gpt answer is the raw CC-3M caption of the metadata. A record
present in only one file loses its provenance (no source URL for the licence audit).
"""

from __future__ import annotations

import polars as pl

from audit.checks.tables import ChatTables, FileRef
from audit.findings import Finding


def chat_side(tables: ChatTables) -> pl.DataFrame:
    """What the comparison needs from the chat file: idx, id, image, answer (turn 1)."""
    turns = tables.turns
    answers = turns.filter(pl.col("pos") == 1).select("rec", answer="value")
    frame = tables.records.select("idx", "id", "image").with_row_index("rec")
    frame = frame.with_columns(pl.col("rec").cast(pl.Int32))
    return frame.join(answers, on="rec", how="left").drop("rec")


def compare(
    chat: pl.DataFrame, chat_ref: FileRef, meta: pl.DataFrame, meta_ref: FileRef
) -> tuple[list[Finding], dict[str, int]]:
    """Findings for both files; ``chat`` from :func:`chat_side`, ``meta`` the metadata table."""
    chat_ids = chat.filter(pl.col("id").is_not_null()).unique(
        "id", keep="first", maintain_order=True
    )
    meta_ids = meta.filter(pl.col("id").is_not_null()).unique(
        "id", keep="first", maintain_order=True
    )
    out: list[Finding] = []
    only_chat = chat_ids.join(meta_ids, on="id", how="anti")
    for idx, rid in only_chat.select("idx", "id").iter_rows():
        out.append(
            chat_ref.finding(
                "xfile.missing_metadata", f"id {rid!r} is not in {meta_ref.file}", idx, rid
            )
        )
    only_meta = meta_ids.join(chat_ids, on="id", how="anti")
    for idx, rid in only_meta.select("idx", "id").iter_rows():
        out.append(
            meta_ref.finding(
                "xfile.missing_chat", f"id {rid!r} is not in {chat_ref.file}", idx, rid
            )
        )
    both = chat_ids.join(
        meta_ids.select("id", "image", "caption", meta_idx="idx"), on="id", suffix="_meta"
    )
    images = both.filter(
        pl.col("image").is_not_null()
        & pl.col("image_meta").is_not_null()
        & (pl.col("image") != pl.col("image_meta"))
    )
    for idx, rid, image, other, meta_idx in images.select(
        "idx", "id", "image", "image_meta", "meta_idx"
    ).iter_rows():
        out.append(
            chat_ref.finding(
                "xfile.image_mismatch",
                f"image {image!r} here, {other!r} in metadata record {meta_idx}",
                idx,
                rid,
            )
        )
    captions = 0
    if chat_ref.kind == "cc3m-chat":
        differ = both.filter(
            pl.col("caption").is_not_null()
            & pl.col("answer").is_not_null()
            & (pl.col("caption") != pl.col("answer"))
        )
        captions = differ.height
        for idx, rid, answer, caption in differ.select(
            "idx", "id", "answer", "caption"
        ).iter_rows():
            out.append(
                chat_ref.finding(
                    "xfile.caption_mismatch",
                    f"gpt answer {answer[:50]!r} differs from the metadata caption {caption[:50]!r}",
                    idx,
                    rid,
                )
            )
    stats = {
        "matched": both.height,
        "only_in_chat": only_chat.height,
        "only_in_metadata": only_meta.height,
        "image_mismatches": images.height,
        "caption_mismatches": captions,
    }
    return out, stats
