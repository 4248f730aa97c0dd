"""Statistics as `info` findings and JSON-able stats, plus the rules that are counts at heart:
unknown prompts (14, 15), exact duplicates, record counts vs the releases (4), mix665k folders (17).

Ids repeat legitimately in LLaVA data (they are source image ids), so repeated ids and images are
counted here, not reported per record; only byte-for-byte duplicate records are warnings.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from audit.checks import crossrecord
from audit.checks.tables import ChatTables, FileRef
from audit.checks.turns import IMAGE
from audit.findings import Code, Finding, Severity
from audit.models import MIX_PREFIXES

RELEASE_COUNTS = {
    "cc3m-chat": 595_375,
    "cc3m-metadata": 595_375,
    "lcs-chat": 558_128,
    "lcs-metadata": 558_128,
    "mix": 665_298,
    "instruct": 157_712,
}
# mix665k records per top image folder in the release (spec §1.4)
MIX_RELEASE = {"coco": 364_100, "gqa": 72_140, "ocr_vqa": 80_000, "textvqa": 21_953, "vg": 86_417}


def _top(series: pl.Series, limit: int = 20) -> dict[str, int]:
    counts = series.drop_nulls().value_counts(sort=True).head(limit)
    return {str(k): int(v) for k, v in counts.iter_rows()}


def chat_stats(
    tables: ChatTables,
    flags: pl.DataFrame,
    ref: FileRef,
    prompts: frozenset[str] | None,
    warn_unknown_prompt: bool,
    keys: pl.DataFrame | None = None,
) -> tuple[list[Finding], dict[str, Any]]:
    """Statistics findings and stats for a conversation file (and rule 14/15 prompt warnings).

    ``keys``: the file's key table when the file is a whole dataset file; the duplicate rules and
    the release count then run on it here. A shard leaves both to its set (structure_sets).
    """
    records = tables.records
    out: list[Finding] = []
    n = records.height
    n_image = int(records["has_image"].sum())
    turn_counts = records["n_turns"]
    stats: dict[str, Any] = {
        "records": n,
        "turns": flags.height,
        "image_records": n_image,
        "text_only_records": n - n_image,
        "turn_counts": _top(turn_counts.cast(pl.Utf8), 10),
    }
    out.append(
        ref.finding(
            Code.STATS_SUMMARY,
            f"{n:,} records, {flags.height:,} turns, {n_image:,} with an image, "
            f"{n - n_image:,} text-only"
            + (f"; turns per record {turn_counts.min()!s}..{turn_counts.max()!s}" if n else ""),
        )
    )
    first = records.filter(pl.col("has_image") & (pl.col("first_n_img") == 1))["first"]
    start = int(first.str.starts_with(IMAGE).sum())
    end = int(first.str.ends_with(IMAGE).sum()) - int((first == IMAGE).sum())
    stats["image_token_position"] = {"start": start, "end": end, "other": first.len() - start - end}
    out.append(
        ref.finding(
            Code.STATS_IMAGE_TOKEN_POSITION,
            f"<image> at the start in {start:,} records, at the end in {end:,}, "
            f"elsewhere in {first.len() - start - end:,}",
        )
    )
    prompt_findings, stats["prompts"] = _prompts(records, ref, prompts, warn_unknown_prompt)
    out += prompt_findings
    if keys is not None:
        dup_findings, stats["duplicates"] = crossrecord.duplicate_counts(keys, ref.dataset)
        out += [*dup_findings, crossrecord.duplicate_summary(stats["duplicates"], ref)]
    if ref.kind == "mix":
        stats["mix"] = _mix(records)
        grouped: dict[str, int] = {}
        for prefix, count in stats["mix"]["prefixes"].items():
            top = prefix.split("/")[0]
            grouped[top] = grouped.get(top, 0) + count
        folders = ", ".join(
            f"{top} {n:,} (release {MIX_RELEASE[top]:,})" for top, n in grouped.items()
        )
        out.append(
            ref.finding(
                Code.STATS_SUMMARY,
                f"image folders: {folders}; text-only {stats['mix']['text_only']:,} (release 40,688); "
                f"integer ids {stats['mix']['int_ids']:,}",
            )
        )
    if keys is not None:
        out += record_count(ref, n)
    return out, stats


def _prompts(
    records: pl.DataFrame, ref: FileRef, known: frozenset[str] | None, warn: bool
) -> tuple[list[Finding], dict[str, Any]]:
    prompt = (
        records["first"].str.replace_all(IMAGE, "", literal=True).str.strip_chars().alias("prompt")
    )
    frame = (
        records.select("idx", "id", "has_image").with_columns(prompt).filter(pl.col("has_image"))
    )
    stats: dict[str, Any] = {"top": _top(frame["prompt"])}
    out: list[Finding] = []
    if known is not None:
        unknown = frame.filter(
            ~pl.col("prompt").is_in(list(known)) & pl.col("prompt").is_not_null()
        )
        stats["known"] = frame.height - unknown.height
        stats["unknown"] = unknown.height
        if warn:
            out += [
                ref.finding(
                    Code.PROMPT_UNKNOWN,
                    f"instruction {p[:70]!r} is not a known {ref.kind} prompt",
                    i,
                    rid,
                )
                for i, rid, p in unknown.select("idx", "id", "prompt").iter_rows()
            ]
        message = f"{stats['known']:,} records use a known prompt, {stats['unknown']:,} another one"
    else:
        message = f"{len(stats['top'])} most common instructions counted"
    out.append(ref.finding(Code.STATS_PROMPTS, message))
    return out, stats


def _mix(records: pl.DataFrame) -> dict[str, Any]:
    image = records["image"]
    prefixes = {p: int(image.str.starts_with(p).sum()) for p in MIX_PREFIXES}
    return {
        "prefixes": prefixes,
        "text_only": int((~records["has_image"]).sum()),
        "int_ids": int(records["id_is_int"].sum()),
    }


def record_count(ref: FileRef, n: int) -> list[Finding]:
    """Rule 4: the release count of the kind; a near miss is a warning, a subset is info."""
    expected = RELEASE_COUNTS.get(ref.kind)
    if expected is None or n == expected:
        return []
    near = abs(n - expected) <= expected // 10
    return [
        ref.finding(
            Code.FILE_RECORD_COUNT,
            f"{n:,} records; the {ref.kind} release has {expected:,}",
            severity=Severity.WARNING if near else Severity.INFO,
        )
    ]


def metadata_stats(
    frame: pl.DataFrame, ref: FileRef, keys: dict[str, str], whole: bool = True
) -> tuple[list[Finding], dict[str, Any]]:
    """Counts for a metadata file: which fields it has, missing BLIP captions, repeated ids/URLs
    (a shard, not ``whole``, leaves the release count to its set)."""
    n = frame.height
    blip_missing = int((frame["blip_caption"].is_null() | (frame["blip_caption"] == "")).sum())
    stats = {
        "records": n,
        "keys": keys,
        "repeated_ids": n - frame["id"].n_unique(),
        "repeated_urls": n - frame["url"].n_unique(),
        "blip_caption_missing": blip_missing if "blip_caption" in keys else None,
    }
    missing = sorted({"id", "image", "url"} - set(keys))
    blip = f", {blip_missing:,} without a BLIP caption" if "blip_caption" in keys else ""
    out = [
        ref.finding(
            Code.STATS_SUMMARY,
            f"{n:,} metadata records with fields {', '.join(f'{k}={v}' for k, v in keys.items())}"
            f"{blip}; {stats['repeated_ids']:,} repeated ids, {stats['repeated_urls']:,} repeated URLs",
        )
    ]
    if missing and n:
        out.append(ref.finding(Code.METADATA_FIELD, f"the file has no {', '.join(missing)} field"))
    return out + (record_count(ref, n) if whole else []), stats
