"""What one structure worker does with one file (or one side of a chat + metadata pair).

Kept apart from :mod:`audit.structure` so the parent process never imports polars or pandera: it
only plans, starts workers and merges their findings. This module imports nothing from there: the
pair's meeting is two plain arguments (where to leave the chat columns, how to receive them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import polars as pl

from audit.checks import crossfile, crossrecord, schema, stats, turns
from audit.checks.tables import (
    ChatTables,
    FileRef,
    chat_tables,
    chat_tables_from_chunks,
    metadata_table,
    metadata_table_from_chunks,
)
from audit.findings import Code, Finding, Severity
from audit.loaders.jsonfile import CHUNK_BYTES
from audit.loaders.records import (
    NotStreamableError,
    UnreadableFileError,
    known_release,
    load_records,
    open_stream,
)
from audit.loaders.shards import ShardInfo

WARN_UNKNOWN_PROMPT = frozenset({"cc3m-chat", "lcs-chat"})  # rules 14, 15: known prompt pools
ProgressSink = Callable[[int], None]
_sink: ProgressSink | None = None
_STEP = CHUNK_BYTES  # bytes reported per streamed chunk


def set_progress_sink(sink: ProgressSink | None) -> None:
    """Where this process reports bytes audited (a shared counter in a pool worker)."""
    global _sink
    _sink = sink


class _FileProgress:
    """Reports a file's bytes as its chunks are read, and exactly its size once it is done."""

    def __init__(self, path: Path) -> None:
        self.size = path.stat().st_size if path.exists() else 0
        self.reported = 0

    def add(self, n: int) -> None:
        n = min(n, self.size - self.reported)
        if n > 0 and _sink is not None:
            _sink(n)
        self.reported += max(n, 0)

    def counted(self, chunks: Iterable[list[Any]]) -> Iterator[list[Any]]:
        for chunk in chunks:
            self.add(_STEP)
            yield chunk

    def done(self) -> None:
        self.add(self.size - self.reported)


class Audited(NamedTuple):
    """One file's audit: findings, its stats by path, why it was unreadable, (chat file of a
    pair) the Arrow IPC file holding the key table its metadata partner compares with, and (a
    shard, or when asked) its key table for the set's cross-record checks."""

    findings: list[Finding]
    stats: dict[str, Any]
    unreadable: list[str]
    side: str | None = None
    keys: pl.DataFrame | None = None


@dataclass(frozen=True)
class Partner:
    """The chat file a metadata file is compared with, and how its columns arrive: ``receive``
    blocks until the chat file's worker is done and gives its IPC file (None: it was unreadable)."""

    path: str
    kind: str
    receive: Callable[[], str | None]


def audit_task(
    path_text: str,
    kind: str,
    dataset: str | None,
    prompts: dict[str, frozenset[str]],
    *,
    side_file: str | None = None,
    partner: Partner | None = None,
    shard: ShardInfo | None = None,
    want_keys: bool = False,
) -> Audited:
    """Audit one file; a chat file of a pair also leaves its key table in ``side_file``, and a
    metadata file of a pair compares itself with its ``partner``'s.

    A ``shard`` of a set (or a file whose set-level checks run elsewhere, ``want_keys``) returns
    its key table and leaves the duplicate rules and release count to its set.
    """
    path = Path(path_text)
    progress = _FileProgress(path)
    ordinal = 0 if shard is None else shard.ordinal
    try:
        try:
            loaded = _load(path, kind, dataset, progress, shard is not None)
        except UnreadableFileError as exc:
            return Audited([exc.finding], {}, [exc.message])
        ref = FileRef(dataset or path.stem, str(path), loaded.kind)
        whole = shard is None
        table: pl.DataFrame  # the key table
        findings = _kind_severity(loaded.findings, ref.kind) + _known_release(path, ref)
        side = None
        if isinstance(loaded.table, pl.DataFrame):
            frame, keys = loaded.table, loaded.metadata_keys
            del loaded
            findings += schema.validate(frame, schema.metadata_rules(ref.kind, keys), ref)
            meta_findings, file_stats = stats.metadata_stats(frame, ref, keys, whole)
            findings += meta_findings
            file_stats["metadata_keys"] = True
            table = crossrecord.metadata_keys(frame, str(path), ordinal)
            if partner is not None:
                chat_columns = partner.receive()
                if chat_columns is not None:
                    chat_ref = FileRef(
                        dataset or Path(partner.path).stem, partner.path, partner.kind
                    )
                    pair_findings, file_stats["crossfile"] = crossfile.compare(
                        pl.read_ipc(chat_columns), chat_ref, table, ref
                    )
                    findings += pair_findings
        else:
            tables = loaded.table
            del loaded
            table = crossrecord.chat_keys(tables, str(path), ordinal)
            found, file_stats = _chat_rules(tables, ref, prompts, table if whole else None)
            findings += found
            if side_file is not None:
                table.write_ipc(side_file)
                side = side_file
        wanted = table if want_keys or not whole else None
        return Audited(_first_per_record(findings), {str(path): file_stats}, [], side, wanted)
    finally:
        progress.done()


@dataclass
class _Tables:
    """A file turned into frames, with what loading it had to say."""

    kind: str
    table: ChatTables | pl.DataFrame  # a DataFrame for metadata files
    metadata_keys: dict[str, str]
    findings: list[Finding]


def _load(
    path: Path, kind: str, dataset: str | None, progress: _FileProgress, shard: bool = False
) -> _Tables:
    """Streamed typed decode into frames (a chunk with a bad record is decoded record by record);
    a file that needs it (BOM, JSON Lines, syntax or encoding errors) goes the whole-file way.
    A shard is read batch by batch by its own reader (JSON Lines or Parquet)."""
    if shard:
        from audit.loaders.shardread import open_shard

        shard_stream = open_shard(path, kind, dataset=dataset or path.stem)
        chunks = progress.counted(shard_stream)
        if shard_stream.is_metadata:
            table: ChatTables | pl.DataFrame = metadata_table_from_chunks(
                chunks, shard_stream.positions
            )
        else:
            table = chat_tables_from_chunks(chunks, shard_stream.positions)
        return _Tables(kind, table, shard_stream.metadata_keys, shard_stream.findings)
    stream = open_stream(path, kind, dataset=dataset)
    try:
        if stream.is_metadata:
            table = metadata_table_from_chunks(progress.counted(stream), stream.positions)
        else:
            table = chat_tables_from_chunks(progress.counted(stream), stream.positions)
        return _Tables(stream.kind, table, stream.metadata_keys, stream.findings)
    except NotStreamableError:
        pass
    loaded = load_records(path, kind, dataset=dataset)
    if loaded.is_metadata:
        table = metadata_table(loaded.records, loaded.index)
    else:
        table = chat_tables(loaded.records, loaded.index)
    return _Tables(loaded.kind, table, loaded.metadata_keys, loaded.findings)


def _kind_severity(found: list[Finding], kind: str) -> list[Finding]:
    """Rule 13: a non-string id is a warning in mix665k (int ids are normal there), else an error."""
    severity = Severity.WARNING if kind == "mix" else Severity.ERROR
    return [
        msgspec.structs.replace(f, severity=severity) if f.code == Code.RECORD_ID_TYPE else f
        for f in found
    ]


def _first_per_record(found: list[Finding]) -> list[Finding]:
    """One finding per record and code: the loader's precise one wins over a later rule's echo
    (a record whose float id was dropped while loading would otherwise be 'missing' its id too)."""
    seen: set[tuple[str, int, str]] = set()
    out = []
    for finding in found:
        if finding.index is not None:
            key = (finding.file, finding.index, finding.code)
            if key in seen:
                continue
            seen.add(key)
        out.append(finding)
    return out


def _chat_rules(
    tables: Any, ref: FileRef, prompts: dict[str, frozenset[str]], keys: pl.DataFrame | None
) -> tuple[list[Finding], dict[str, Any]]:
    findings = schema.validate(tables.records, schema.chat_rules(ref.kind), ref)
    flags = turns.turn_flags(tables)
    findings += turns.turn_findings(tables, flags, ref)
    stat_findings, chat_stats = stats.chat_stats(
        tables, flags, ref, prompts.get(ref.kind), ref.kind in WARN_UNKNOWN_PROMPT, keys
    )
    return findings + stat_findings, chat_stats


def _known_release(path: Path, ref: FileRef) -> list[Finding]:
    """Rule 3: the file is byte-identical to a published release."""
    name = known_release(path)
    return (
        []
        if name is None
        else [ref.finding(Code.FILE_KNOWN_RELEASE, f"byte-identical to the published {name}")]
    )


def collapse_info(findings: list[Finding]) -> list[Finding]:
    """Per-record `info` findings (extra keys, mix `model` key) become one line per file and code."""
    first: dict[tuple[str, str], int] = {}  # (file, code) -> position in out
    counts: dict[tuple[str, str], int] = {}
    out: list[Finding] = []
    for finding in findings:
        if finding.severity is not Severity.INFO or finding.index is None:
            out.append(finding)
            continue
        key = (finding.file, finding.code)
        counts[key] = counts.get(key, 0) + 1
        if key not in first:
            first[key] = len(out)
            out.append(finding)
    for key, position in first.items():
        if counts[key] > 1:
            finding = out[position]
            out[position] = msgspec.structs.replace(
                finding,
                message=f"{finding.message} ({counts[key]:,} records like this; first shown)",
            )
    return out
