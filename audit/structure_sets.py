"""Shard sets in the structure stage: one worker task per shard, then the set's cross-record
checks over the concatenation of its shards' key tables (keys only, never records).

The planner (:func:`plan_sets`) expands each folder or glob into shard tasks sharing one kind; a
shard's worker audits its records like a file's and leaves its key table in an Arrow IPC file.
:func:`finish` concatenates a set's key tables and runs :mod:`audit.checks.crossrecord` (repeated
ids and images, exact duplicates, the release count) and, for a chat set and its metadata (a set
or a plain file), :func:`audit.checks.crossfile.compare`: the rules a plain file's worker runs on
its own key table. polars is imported only once a set is finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit import findings as fnd
from audit.errors import InputError
from audit.findings import Code, Finding
from audit.loaders import shards as shardpaths
from audit.loaders.shards import ShardInfo

PAIRS = {"cc3m-metadata": "cc3m-chat", "lcs-metadata": "lcs-chat"}


@dataclass
class Entry:
    """One path as given: a shard set, or a plain file whose key table a set's checks need."""

    source: str
    kind: str
    dataset: str
    is_set: bool
    tasks: list[int] = field(default_factory=list)  # positions in the task list


def set_kind(shards: list[Path], forced: str | None, dataset: str) -> str:
    """The set's kind: forced, or guessed from its first shard's first records."""
    if forced is not None:
        return forced
    from audit.loaders.shardread import shard_kind

    return shard_kind(shards[0], dataset).kind


def expand_sets(
    paths: list[Path], kind: str | None, dataset: str | None, max_bytes: int | None
) -> tuple[dict[str, tuple[str, list[Path]]], list[Finding]]:
    """Each shard-set path's (kind, shards); a set that cannot be expanded is a finding."""
    sets: dict[str, tuple[str, list[Path]]] = {}
    problems = []
    for path in paths:
        source = str(path)
        name = dataset or shardpaths.set_name(source)
        try:
            shards = shardpaths.expand(source, max_bytes)
            sets[source] = (set_kind(shards, kind, name), shards)
        except InputError as exc:
            problems.append(fnd.make(Code.FILE_UNREADABLE, exc.message, dataset=name, file=source))
    return sets, problems


def shard_specs(
    sets: dict[str, tuple[str, list[Path]]], dataset: str | None, folder: Path | None, first: int
) -> list[tuple[str, str, str, None, ShardInfo, str | None]]:
    """The arguments of each shard's ``structure.Task`` (numbered from ``first``): path, kind,
    dataset, no pair handoff, its place in the set, where it leaves its key table."""
    specs: list[tuple[str, str, str, None, ShardInfo, str | None]] = []
    for source, (kind, shards) in sets.items():
        for ordinal, shard in enumerate(shards):
            keys = None if folder is None else str(folder / f"keys-{first + len(specs)}.arrow")
            name = dataset or shardpaths.set_name(source)
            specs.append((str(shard), kind, name, None, ShardInfo(source, ordinal), keys))
    return specs


def entries(tasks: list[Any]) -> list[Entry]:
    """The paths as given, from the planned tasks (``structure.Task``): each set with its
    shards' task numbers, each plain file with its own."""
    found: dict[str, Entry] = {}
    for number, task in enumerate(tasks):
        source = task.path if task.shard is None else task.shard.source
        if source not in found:
            name = task.dataset or Path(task.path).stem
            found[source] = Entry(source, task.kind, name, task.shard is not None)
        found[source].tasks.append(number)
    return list(found.values())


def finish(
    entries: list[Entry], outcomes: dict[int, Any]
) -> tuple[list[Finding], dict[str, dict[str, Any]]]:
    """The sets' cross-record findings and their stats (keyed by the set's path); nothing to do
    (and no polars import) without a set."""
    if not any(entry.is_set for entry in entries):
        return [], {}
    import polars as pl

    from audit.checks import crossfile, crossrecord
    from audit.checks.tables import FileRef

    findings: list[Finding] = []
    set_stats: dict[str, dict[str, Any]] = {}
    keys: dict[str, Any] = {}
    metadata: dict[str, bool] = {}
    for entry in entries:
        files = [outcomes[n].keys for n in entry.tasks if n in outcomes and outcomes[n].keys]
        if not files:
            continue
        table = pl.concat([pl.read_ipc(f) for f in files], how="vertical")
        keys[entry.source] = table
        metadata[entry.source] = "url" in table.columns
        if not entry.is_set:
            continue  # a plain file's own rules ran in its worker
        records = sum(records_of(outcomes[n]) for n in entry.tasks if n in outcomes)
        found: list[Finding] = []
        if metadata[entry.source]:
            counts = {
                "repeated_ids": crossrecord.repeats(table, "id"),
                "repeated_urls": crossrecord.repeats(table, "url"),
            }
        else:
            found, counts = crossrecord.duplicate_counts(table, entry.dataset)
        lines, set_stats[entry.source] = set_summary(entry, counts, records)
        findings += [*found, *lines]
    for chat, meta in set_pairs(entries):
        if chat.source not in keys or meta.source not in keys:
            continue
        chat_ref = FileRef(chat.dataset, chat.source, chat.kind)
        meta_ref = FileRef(meta.dataset, meta.source, meta.kind)
        pair, compared = crossfile.compare(keys[chat.source], chat_ref, keys[meta.source], meta_ref)
        findings += pair
        set_stats.setdefault(meta.source, {"records": 0, "metadata_keys": True})
        set_stats[meta.source]["crossfile"] = compared
    return findings, set_stats


def set_summary(
    entry: Entry, counts: dict[str, int], records: int
) -> tuple[list[Finding], dict[str, Any]]:
    """A set's summary lines and stats from the counts of the cross-record rules over all its
    shards (computed here on the concatenation, or summed over Spark partitions)."""
    from audit.checks import crossrecord, stats
    from audit.checks.tables import FileRef

    ref = FileRef(entry.dataset, entry.source, entry.kind)
    if "repeated_urls" in counts:  # a metadata set
        line = ref.finding(
            Code.STATS_SUMMARY,
            f"{records:,} metadata records in {len(entry.tasks)} shard(s); "
            f"{counts['repeated_ids']:,} repeated ids, "
            f"{counts['repeated_urls']:,} repeated URLs",
        )
        return [line, *stats.record_count(ref, records)], {
            "records": 0,
            "metadata_keys": True,
            **counts,
        }
    lines = [crossrecord.duplicate_summary(counts, ref), *stats.record_count(ref, records)]
    return lines, {"records": 0, "duplicates": counts}


def set_pairs(entries: list[Entry]) -> list[tuple[Entry, Entry]]:
    """(chat, metadata) entries compared through their key tables: where either is a set (two
    plain files meet in their workers)."""
    pairs = []
    for meta in entries:
        chat = next((e for e in entries if e.kind == PAIRS.get(meta.kind)), None)
        if chat is not None and (chat.is_set or meta.is_set):
            pairs.append((chat, meta))
    return pairs


def records_of(outcome: Any) -> int:
    """The records a task's outcome (``structure.Outcome``) audited."""
    return sum(int(s.get("records", 0)) for s in outcome.stats.values())
