"""Chat file vs its metadata file (CC-3M chat.json + metadata.json, LCS-558K + _meta.json).

The two files are released side by side and must describe the same records: the same ids, the same
image file names, and for CC-3M the gpt answer is the raw CC-3M caption of the metadata. A record
present in only one file loses its provenance (no source URL for the licence audit).

The comparison joins the two sides' KEY TABLES (:mod:`audit.checks.crossrecord`: id, image, a
hash and the first 50 characters of the answer or caption, and where each row is), so a sharded
chat or metadata set is compared through the concatenation of its shards' key tables. Partition
key: ``id`` on both tables; findings and summed stats are the same per partition.
"""

from __future__ import annotations

import polars as pl

from audit import findings as fnd
from audit.checks.tables import FileRef
from audit.findings import Code, Finding


def _first_per_id(keys: pl.DataFrame, text: str) -> pl.DataFrame:
    """file, index, id, image and the text's hash and start, for the first row of each id."""
    return (
        keys.sort("shard", "index")
        .filter(pl.col("id").is_not_null() & pl.col("id").is_first_distinct())
        .select(
            "file",
            "index",
            "id",
            "image",
            has_image=pl.col("image").is_not_null() & (pl.col("image") != ""),
            h_text=pl.col(f"{text}_hash"),
            text50=pl.col(f"{text}50"),
        )
    )


def compare(
    chat: pl.DataFrame, chat_ref: FileRef, meta: pl.DataFrame, meta_ref: FileRef
) -> tuple[list[Finding], dict[str, int]]:
    """Findings for both sides; ``chat`` and ``meta`` are chat and metadata key tables. The refs
    give dataset, kind and the name each side's messages use for the other (file or set)."""
    left = _first_per_id(chat, "answer")
    right = _first_per_id(meta, "caption")
    out: list[Finding] = []

    def add(ref: FileRef, code: Code, message: str, file: str, index: int, rid: str) -> None:
        out.append(
            fnd.make(code, message, dataset=ref.dataset, file=file, index=index, record_id=rid)
        )

    only_chat = left.filter(~pl.col("id").is_in(right["id"].implode()))
    for file, idx, rid in only_chat.select("file", "index", "id").iter_rows():
        add(
            chat_ref,
            Code.XFILE_MISSING_METADATA,
            f"id {rid!r} is not in {meta_ref.file}",
            file,
            idx,
            rid,
        )
    only_meta = right.filter(~pl.col("id").is_in(left["id"].implode()))
    for file, idx, rid in only_meta.select("file", "index", "id").iter_rows():
        add(
            meta_ref,
            Code.XFILE_MISSING_CHAT,
            f"id {rid!r} is not in {chat_ref.file}",
            file,
            idx,
            rid,
        )
    both = left.join(right, on="id", suffix="_meta")
    images = both.filter(
        pl.col("has_image") & pl.col("has_image_meta") & (pl.col("image") != pl.col("image_meta"))
    )
    for file, idx, rid, image, other, meta_file, meta_idx in images.select(
        "file", "index", "id", "image", "image_meta", "file_meta", "index_meta"
    ).iter_rows():
        where = "" if meta_file == meta_ref.file else f" of {meta_file}"
        message = f"image {image!r} here, {other!r} in metadata record {meta_idx}{where}"
        add(chat_ref, Code.XFILE_IMAGE_MISMATCH, message, file, idx, rid)
    captions = 0
    if chat_ref.kind == "cc3m-chat":
        differ = both.filter(pl.col("h_text") != pl.col("h_text_meta"))  # null: a side has none
        for file, idx, rid, answer, caption in differ.select(
            "file", "index", "id", "text50", "text50_meta"
        ).iter_rows():
            captions += 1
            message = f"gpt answer {answer!r} differs from the metadata caption {caption!r}"
            add(chat_ref, Code.XFILE_CAPTION_MISMATCH, message, file, idx, rid)
    stats = {
        "matched": both.height,
        "only_in_chat": only_chat.height,
        "only_in_metadata": only_meta.height,
        "image_mismatches": images.height,
        "caption_mismatches": captions,
    }
    return out, stats
