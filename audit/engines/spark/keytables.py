"""The shard sets' cross-record checks on Spark, over their shards' key tables.

Each shard's worker leaves its key table (audit.checks.crossrecord) with its outcome; here those
become one DataFrame of key rows that never reaches the driver. Repartitioned so that every row
of one key lands in one partition, each partition runs THE SAME polars functions the local engine
runs on the concatenation (crossrecord.exact_duplicates, repeats, rows_sharing;
crossfile.compare), through mapInArrow; their findings stay in Spark and only their counts come
back, summed into the set's lines by audit.structure_sets.set_summary, as on the local engine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import msgspec
import pyarrow as pa

from audit.engines.spark import candidates
from audit.engines.spark.candidates import BY_ID, CANDIDATES_DDL, KEY, PASS
from audit.engines.spark.findingtable import Source
from audit.engines.spark.outrows import (
    FINDING_COLUMNS,
    KEYS,
    outcome_row,
    rows,
)

if TYPE_CHECKING:
    import polars as pl
    from pyspark.sql import DataFrame, SparkSession

    from audit.findings import Finding
    from audit.structure_sets import Entry

CHAT = ("file", "shard", "index", "id", "image", "h1", "h2", "answer_hash", "answer50")
METADATA = ("file", "shard", "index", "id", "image", "url", "caption_hash", "caption50")
HASHES = ("h1", "h2", "answer_hash", "caption_hash")
#: where set-level findings sort: after every file's (the local engine appends them)
SET_RANK = 1 << 30


@dataclass(frozen=True)
class Pair:
    """Two plain files, chat and metadata, compared through their key tables: the comparison's
    findings come after the metadata file's own, at its ``place`` (as its local worker adds
    them)."""

    chat: str
    metadata: str
    place: int


@dataclass(frozen=True)
class SetChecks:
    """The sets' cross-record checks, planned on Spark."""

    #: their record findings and, on rows of their own, their counts (OUTCOME)
    findings: Source
    #: the sets' summary lines and stats by source (as audit.structure_sets.finish merges them),
    #: from the counts
    summaries: Callable[[list[bytes]], tuple[pa.Table | None, dict[str, dict[str, Any]]]]


@dataclass(frozen=True)
class Side:
    """What an executor needs to know of an entry (a path as given)."""

    source: str
    kind: str
    dataset: str
    metadata: bool
    is_set: bool  # a plain file's own rules ran in its worker: it only takes part in a pair


def _frame(batches: Iterator[pa.RecordBatch]) -> pl.DataFrame | None:
    """A partition's key rows (hashes as UInt64 again), or None when it has none."""
    import polars as pl

    rows = list(batches)
    if not rows or not sum(b.num_rows for b in rows):
        return None
    frame = pl.from_arrow(pa.Table.from_batches(rows))
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.col(h).reinterpret(signed=False) for h in HASHES)


def passes(
    sides: dict[int, Side],
    pairs: list[tuple[int, int, int, int]],
    batches: Iterator[pa.RecordBatch],
) -> Iterator[pa.RecordBatch]:
    """Executor side, a partition of candidate rows (grouped by pass and key): both passes'
    findings, then one row of their counts."""
    frame = _frame(batches)
    if frame is None:
        return
    counts: dict[str, Counter[str]] = {}
    for key, rows_of_pass in frame.partition_by(PASS, as_dict=True).items():
        if int(key[0]) == BY_ID:
            yield from _by_id(sides, pairs, rows_of_pass, counts)
        else:
            _by_second_key(sides, rows_of_pass, counts)
    yield _counts(counts)


def _by_id(
    sides: dict[int, Side],
    pairs: list[tuple[int, int, int, int]],
    frame: pl.DataFrame,
    counts: dict[str, Counter[str]],
) -> Iterator[pa.RecordBatch]:
    """Rows grouped by id: a set's exact copies and repeated ids, and each chat/metadata
    pair's comparison (crossfile.compare)."""
    import polars as pl

    from audit.checks import crossfile, crossrecord
    from audit.checks.tables import FileRef

    parts = {int(k[0]): v for k, v in frame.partition_by("_entry", as_dict=True).items()}
    for number, part in parts.items():
        side = sides[number]
        if not side.is_set:
            continue
        tally = counts.setdefault(f"entry:{number}", Counter())
        if side.metadata:
            tally["repeated_ids"] += crossrecord.repeats(part.select(METADATA), "id")
            continue
        found = crossrecord.exact_duplicates(part.select(CHAT), side.dataset)
        tally["repeated_ids"] += crossrecord.repeats(part.select(CHAT), "id")
        tally["exact_duplicates"] += len(found)
        yield _findings(found, SET_RANK + number, part, 0)
    for n, (chat, meta, rank, base) in enumerate(pairs):
        if chat not in parts and meta not in parts:
            continue
        empty = frame.clear()
        left = parts.get(chat, empty).select(CHAT)
        right = parts.get(meta, empty).select(METADATA)
        refs = [FileRef(s.dataset, s.source, s.kind) for s in (sides[chat], sides[meta])]
        found, compared = crossfile.compare(left, refs[0], right, refs[1])
        counts.setdefault(f"pair:{n}", Counter()).update(compared)
        yield _findings(found, rank, pl.concat([left, right], how="diagonal"), base)


def _by_second_key(
    sides: dict[int, Side], frame: pl.DataFrame, counts: dict[str, Counter[str]]
) -> None:
    """Rows grouped by image (chat) or URL (metadata): rows sharing an image, repeated URLs."""
    from audit.checks import crossrecord

    for key, part in frame.partition_by("_entry", as_dict=True).items():
        number = int(key[0])
        tally = counts.setdefault(f"entry:{number}", Counter())
        if sides[number].metadata:
            tally["repeated_urls"] += crossrecord.repeats(part.select(METADATA), "url")
        else:
            tally["repeated_images"] += crossrecord.rows_sharing(part.select(CHAT), "image")


def _findings(found: list[Finding], rank: int, keys: pl.DataFrame, base: int) -> pa.RecordBatch:
    """Set-level findings as output rows, ordered as the local engine lists them (by shard and
    index within their rule)."""
    shard_of = dict(keys.select("file", "shard").unique().iter_rows())
    order = [base + (shard_of.get(f.file, 0) << 32) + (f.index or 0) for f in found]
    return rows(found, rank, order)


def _counts(counts: dict[str, Counter[str]]) -> pa.RecordBatch:
    return outcome_row(-1, -1, msgspec.msgpack.encode({k: dict(v) for k, v in counts.items()}))


def cross_record(
    keys: DataFrame,
    sides: dict[int, Side],
    pairs: list[tuple[int, int, int, int]],
    partitions: int,
) -> Source:
    """Both passes over ``keys`` (candidate rows, audit.engines.spark.candidates), by id and by
    image or URL, in one shuffle into ``partitions`` partitions, as a source of the findings
    table (run by the tasks that write their findings); ``pairs`` are (chat, metadata)
    entries."""
    grouped = keys.repartition(partitions, PASS, KEY)
    return Source(grouped, partial(passes, sides, pairs))


def summed(rows: list[Any]) -> dict[str, Counter[str]]:
    """The passes' count rows (msgpack) added up per entry and pair."""
    total: dict[str, Counter[str]] = {}
    for row in rows:
        for key, counts in msgspec.msgpack.decode(row).items():
            total.setdefault(key, Counter()).update(counts)
    return total


def sets_on_spark(
    spark: SparkSession,
    frame: DataFrame,
    planned: list[Entry],
    outcomes: dict[int, Any],
    keyed: set[int],
    plain: list[Pair],
    repeats: pa.Array,
) -> SetChecks:
    """Driver side of audit.structure_sets.finish: the sets' checks, to run with the findings'
    publication.

    ``frame`` holds the tasks' outcome rows with their key tables; ``outcomes`` their stats by
    task number; ``keyed`` the tasks that left a key table; ``plain`` the pairs of plain files;
    ``repeats`` the digests seen more than once (candidates.counted)."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    from audit.structure_sets import set_pairs

    present = [e for e in planned if any(n in keyed for n in e.tasks)]  # finish: "if not files"
    number_of = {e.source: n for n, e in enumerate(present)}
    metadata = {
        e.source
        for e in present
        if any(outcomes[n].stats and _is_metadata(outcomes[n]) for n in e.tasks if n in outcomes)
    }
    pairs = [  # (chat, metadata, rank, base) of each comparison, then the stats of which
        (number_of[c.source], number_of[m.source], SET_RANK + len(present) + n, 0)
        for n, (c, m) in enumerate(set_pairs(planned))
        if c.source in number_of and m.source in number_of
    ]
    merged = len(pairs)  # a set's comparison gives the set's stats; a plain file's, its own
    pairs += [
        (number_of[p.chat], number_of[p.metadata], p.place, _LAST)
        for p in plain
        if p.chat in number_of and p.metadata in number_of
    ]
    entry_of = {t: n for n, e in enumerate(present) for t in e.tasks}
    sides = {
        n: Side(e.source, e.kind, e.dataset, e.source in metadata, e.is_set)
        for n, e in enumerate(present)
    }
    sets = frozenset(n for n, e in enumerate(present) if e.is_set)
    whole = frozenset(n for pair in pairs for n in pair[:2])
    chosen = candidates.Passes(by_id=sets | whole, by_second=sets, whole=whole)
    partitions = spark.sparkContext.defaultParallelism
    wanted = spark.sparkContext.broadcast(repeats)
    keys = (
        frame.where(F.col(KEYS).isNotNull())
        .select("_seq", KEYS)
        .coalesce(partitions)  # a Python task costs more than reading a few key tables
        .mapInArrow(partial(candidates.explode, entry_of, chosen, wanted), CANDIDATES_DDL)
    )
    # the counts come back with the findings' first rows (findingtable.write_findings)
    findings = cross_record(keys, sides, pairs, partitions)
    summary = _Summary(present, frozenset(metadata), outcomes, merged, pairs)
    return SetChecks(findings, summary.lines)


@dataclass(frozen=True)
class _Summary:
    """What the sets' summary lines and stats are made from, besides the passes' counts."""

    present: list[Entry]
    metadata: frozenset[str]  # the sources that are metadata sets
    outcomes: dict[int, Any]
    merged: int  # the first pairs compare sets: their comparison gives a set's stats
    pairs: list[tuple[int, int, int, int]]  # (chat, metadata, rank, base)

    def lines(self, count_rows: list[bytes]) -> tuple[pa.Table | None, dict[str, dict[str, Any]]]:
        """The sets' summary lines (FINDING_COLUMNS) and stats by source, from the passes'
        count rows (msgpack)."""
        from audit.structure_sets import records_of, set_summary

        totals = summed(count_rows)
        lines: list[pa.RecordBatch] = []
        set_stats: dict[str, dict[str, Any]] = {}
        for n, entry in enumerate(self.present):
            if not entry.is_set:
                continue
            metadata = entry.source in self.metadata
            zero = ("repeated_ids", "repeated_urls") if metadata else _CHAT_COUNTS
            counts = {k: int(totals.get(f"entry:{n}", Counter())[k]) for k in zero}
            records = sum(records_of(self.outcomes[t]) for t in entry.tasks if t in self.outcomes)
            found, set_stats[entry.source] = set_summary(entry, counts, records)
            lines.append(rows(found, SET_RANK + n, [_LAST + k for k in range(len(found))]))
        for n, (_, meta, _, _) in enumerate(self.pairs):
            compared = {k: int(totals.get(f"pair:{n}", Counter())[k]) for k in _PAIR_COUNTS}
            new = {"records": 0, "metadata_keys": True} if n < self.merged else {}
            set_stats.setdefault(self.present[meta].source, new)["crossfile"] = compared
        summaries = pa.Table.from_batches(lines).select(FINDING_COLUMNS) if lines else None
        return summaries, set_stats


def _is_metadata(outcome: Any) -> bool:
    return any(stats.get("metadata_keys") for stats in outcome.stats.values())


_CHAT_COUNTS = ("repeated_ids", "repeated_images", "exact_duplicates")
_PAIR_COUNTS = (
    "matched",
    "only_in_chat",
    "only_in_metadata",
    "image_mismatches",
    "caption_mismatches",
)
_LAST = 1 << 62  # a set's summary lines come after its record findings
