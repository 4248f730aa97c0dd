"""One shard's records, batch by batch, as the same typed Structs the JSON reader gives.

JSON Lines shards (``.jsonl``, ``.jsonl.gz``) are read a batch of lines at a time; Parquet shards
through ``pyarrow.parquet.ParquetFile.iter_batches`` (never the whole file). A batch is decoded in
one typed pass; when some record fails it, each record of the batch is decoded alone through
:class:`audit.loaders.salvage.ElementDecoder`, so a bad record gets the same findings as in a
JSON file. In Parquet a null top-level value means the key is absent (Hugging Face writes null
for a text-only record's image).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

from audit import findings as fnd
from audit.findings import Code, Finding
from audit.loaders.jsonfile import UnreadableFileError
from audit.loaders.kindguess import KindGuess, guess_from_sample
from audit.loaders.recordkinds import LoadedFile, record_type_for
from audit.loaders.salvage import ElementDecoder
from audit.loaders.shards import shard_format

BATCH_ROWS = 65_536
_SAMPLE_ROWS = 2_000  # records the kind of a set is guessed from
_FAILED = (msgspec.MsgspecError, UnicodeDecodeError, RecursionError)


@dataclass
class ShardStream:
    """A shard's typed records in batches (the interface of :class:`records.RecordStream`):
    after iteration ``findings`` and :meth:`positions` describe the whole shard."""

    path: Path
    kind: str
    dataset: str
    is_metadata: bool
    metadata_keys: dict[str, str]
    record_type: type[Any]
    batch_rows: int = BATCH_ROWS
    findings: list[Finding] = field(default_factory=list, init=False)
    elements: int = field(default=0, init=False)  # records + unusable elements, once read
    _kept: list[int] | None = field(default=None, init=False, repr=False)

    def __iter__(self) -> Iterator[list[Any]]:
        self.findings, self._kept, self.elements = [], None, 0
        keys = self.metadata_keys if self.is_metadata else None
        one_by_one = ElementDecoder(
            self.record_type, keys, self.findings, str(self.path), self.dataset
        )
        batch_type = list[self.record_type]  # type: ignore[name-defined]
        decoder = msgspec.json.Decoder(batch_type)
        first = 0
        for elements in raw_batches(self.path, self.batch_rows, self.dataset):
            records: list[Any] | None = None
            if shard_format(self.path) == "parquet":
                count = elements.num_rows
                records = _typed_batch(elements, decoder, self.is_metadata)
                if records is None:
                    rows = _rows(elements)
                    try:
                        records = msgspec.convert(rows, batch_type)
                    except _FAILED:
                        elements = [msgspec.json.encode(e) for e in rows]
            else:
                with contextlib.suppress(*_FAILED):
                    records = decoder.decode(b"[" + b",".join(elements) + b"]")
                if records is not None and len(records) != len(elements):
                    records = None  # a line held two values ("{...},{...}"): one by one
                count = len(elements)
            kept = None
            if records is None:
                records, kept = one_by_one.decode(elements, first)
            self._track(first, count, kept)
            first += count
            self.elements = first
            yield records

    def _track(self, first: int, count: int, kept: list[int] | None) -> None:
        if self._kept is None and kept is not None and len(kept) < count:
            self._kept = list(range(first))
        if self._kept is not None:
            self._kept.extend(range(first, first + count) if kept is None else kept)

    def positions(self) -> list[int] | None:
        """Each record's position in the shard; None when every element was a record."""
        return self._kept


def open_shard(path: Path, kind: str, *, dataset: str, batch_rows: int = BATCH_ROWS) -> ShardStream:
    """The shard's record stream; :class:`UnreadableFileError` when its format cannot be read."""
    head = json.dumps(dict.fromkeys(_columns(path, dataset), 0)).encode()
    is_metadata, keys, record_type = record_type_for(kind, head)
    return ShardStream(path, kind, dataset, is_metadata, keys, record_type, batch_rows)


def shard_kind(path: Path, dataset: str) -> KindGuess:
    """A set's kind, from the first records of its first shard."""
    rows: list[bytes] = []
    for elements in raw_batches(path, _SAMPLE_ROWS, dataset):
        if not isinstance(elements, list):  # a Parquet batch
            elements = [_id_first(row) for row in _rows(elements)]
        rows += elements
        break
    return guess_from_sample([b"[" + b",".join(rows) + b"]"], None)


def _id_first(row: dict[str, Any]) -> bytes:
    """A Parquet row as JSON with ``id`` first, the order the kind sampler splits records by."""
    ordered = {"id": row["id"], **row} if "id" in row else row
    return msgspec.json.encode(ordered)


def _columns(path: Path, dataset: str) -> list[str]:
    """The record keys of a shard: Parquet's column names, or the first JSON line's keys."""
    if shard_format(path) == "parquet":
        return list(_parquet(path, dataset).schema_arrow.names)
    for elements in raw_batches(path, 1, dataset):
        for element in elements:
            try:
                value = msgspec.json.decode(element)
            except _FAILED:
                return []
            return list(value) if isinstance(value, dict) else []
    return []


def _typed_batch(
    batch: Any, decoder: msgspec.json.Decoder[Any], metadata: bool
) -> list[Any] | None:
    """A Parquet batch's records in one typed pass (polars writes the batch as JSON Lines, which
    msgspec decodes; 2-3x faster than Python rows), or None: some row needs the careful path.

    A null there is an absent key, so a chat record's null ``image`` or ``model`` becomes unset.
    """
    import polars as pl

    try:
        text = pl.from_arrow(batch).write_ndjson().encode()  # type: ignore[union-attr]
        records: list[Any] = decoder.decode(b"[" + text.rstrip(b"\n").replace(b"\n", b",") + b"]")
    except (*_FAILED, pl.exceptions.PolarsError):
        return None
    if len(records) != batch.num_rows:
        return None
    if not metadata:
        for record in records:
            if record.image is None:
                record.image = msgspec.UNSET
            if record.model is None:
                record.model = msgspec.UNSET
    return records


def _rows(batch: Any) -> list[dict[str, Any]]:
    """A Parquet batch's rows as dicts without their null values (a null is an absent key)."""
    return [{k: v for k, v in row.items() if v is not None} for row in batch.to_pylist()]


def raw_batches(path: Path, batch_rows: int, dataset: str = "") -> Iterator[Any]:
    """The shard's records in batches: raw lines (JSON Lines) or Arrow record batches (Parquet)."""
    if shard_format(path) == "parquet":
        parquet = _parquet(path, dataset)
        try:
            yield from parquet.iter_batches(batch_size=batch_rows)
        except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
            raise _unreadable(path, dataset, f"cannot read Parquet data: {_reason(exc)}") from None
        return
    try:
        with _open_lines(path) as handle:
            lines: list[bytes] = []
            for line in handle:
                if line.strip():
                    lines.append(line.rstrip(b"\r\n"))
                    if len(lines) >= batch_rows:
                        yield lines
                        lines = []
            if lines:
                yield lines
    except (OSError, EOFError, zlib.error) as exc:
        raise _unreadable(path, dataset, f"cannot read the shard: {_reason(exc)}") from None


def _open_lines(path: Path) -> IO[bytes]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def shard_sha256(path: Path) -> str:
    """A shard's SHA-256, read a block at a time (an export's manifest names each shard's)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
    except OSError as exc:
        raise _unreadable(path, "", f"cannot read the shard: {_reason(exc)}") from None
    return digest.hexdigest()


def parquet_schema(path: Path, dataset: str = "") -> Any:
    """A Parquet shard's Arrow schema, its key-value metadata included (a copy keeps it)."""
    return _parquet(path, dataset).schema_arrow


def _parquet(path: Path, dataset: str) -> Any:
    import pyarrow.parquet as pq  # only when a Parquet shard is read

    try:
        return pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise _unreadable(path, dataset, f"not a readable Parquet file: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    """The first line of an error, for a one-line message (never matched on)."""
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _unreadable(path: Path, dataset: str, problem: str) -> UnreadableFileError:
    finding = fnd.make(
        Code.FILE_UNREADABLE, f"{path}: {problem}", dataset=dataset or path.stem, file=str(path)
    )
    return UnreadableFileError(finding, problem)


def load_shard(path: Path, kind: str, dataset: str) -> LoadedFile:
    """One shard's records (positions within it), read batch by batch: a set of one shard, so
    a record placed (:meth:`LoadedFile.placed`) names the shard."""
    stream = open_shard(path, kind, dataset=dataset)
    records = [record for batch in stream for record in batch]
    return LoadedFile(
        path,
        kind,
        stream.is_metadata,
        records,
        stream.positions(),
        stream.elements,
        stream.findings,
        stream.metadata_keys,
        shards=[(path, 0)],
    )


def load_set(source: str, kind: str | None, dataset: str) -> LoadedFile:
    """Every record of a shard set, for stages that need all of them at once (image and licence
    references). ``index`` holds each record's position in the whole set (the shards in
    :func:`shards.expand` order, their elements counted one after another); the loader's
    findings are each on its shard."""
    from audit.loaders.shards import expand

    shards = expand(source)
    kind = kind or shard_kind(shards[0], dataset).kind
    loaded = LoadedFile(Path(source), kind, False, [], None, 0)
    index: list[int] = []
    for shard in shards:
        stream = open_shard(shard, kind, dataset=dataset)
        loaded.is_metadata, loaded.metadata_keys = stream.is_metadata, stream.metadata_keys
        for batch in stream:
            loaded.records += batch
        kept = stream.positions()
        first = loaded.total
        loaded.shards.append((shard, first))
        index += [first + p for p in (range(stream.elements) if kept is None else kept)]
        loaded.findings += stream.findings
        loaded.total += stream.elements
    loaded.index = None if len(loaded.records) == loaded.total else index
    return loaded
