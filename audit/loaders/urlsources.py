"""URL lists from dataset files: metadata JSON arrays, JSON Lines, and the headerless CC-3M TSV.

Metadata files (CC-3M ``metadata.json``, LCS ``..._meta.json``) are arrays of objects with a ``url``
key: read by the structure stage's loader (``audit.loaders.records``), so URL keys are discovered
the same way. A column named in the config is decoded alone, one typed msgspec pass. The CC-3M TSV is ``caption<TAB>url`` with no header
(the record index is the 0-based line number); a TSV whose first line names the column is read as
a table with a header. COCO-based conversation files (LLaVA-Instruct, mix665k's COCO part) have no
URL of their own: their image names are COCO ids, joined to the annotation file's Flickr URLs.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import msgspec

from audit.errors import InputError, UsageError
from audit.loaders import read_input, records
from audit.loaders.coco import load_coco_urls
from audit.loaders.shards import expand, is_shard_set, shard_format
from audit.models import ImageRef, UrlRef


def load_url_refs(path: str | Path, column: str = "url") -> list[UrlRef]:
    """Every record's source URL in file order; records without a string URL are left out.

    A Parquet file (LAION-style metadata: ``url``, ``caption``, ...) or a folder or glob of
    Parquet or JSON Lines shards is read shard by shard (:func:`shard_url_refs`): each
    reference names its shard and its position there, as the other stages' findings do.
    """
    if is_shard_set(path):
        shards = expand(path, what="URL list")
        return [ref for shard in shards for batch in shard_url_refs(shard, column) for ref in batch]
    p = Path(path)
    data = read_input(p, "URL list")
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in (b"[", b"{") and p.suffix.lower() != ".tsv":  # a caption may start with "["
        if column == "url":
            # the structure stage's metadata reader: same key discovery (url, image_url, ...)
            # and the same handling of damaged files as `check`
            refs = records.url_refs(p)
            if refs:
                return refs
        return _json_refs(p, data, column)
    if not head:
        raise InputError(str(p), "empty file: no URLs")
    return _tsv_refs(p, data, column)


BATCH_ROWS = 65_536
_ID_COLUMNS = ("id", "key", "SAMPLE_ID")  # LAION and img2dataset name a row's id so


def shard_url_refs(shard: Path, column: str = "url") -> Iterator[list[UrlRef]]:
    """One shard's URLs, a batch at a time (never the whole shard), each naming the shard and
    the record's position in it (blank JSON Lines lines are not records). Both engines read a
    shard through this: the local engine on its own, the Spark engine in an executor."""
    if shard_format(shard) == "parquet":
        yield from _parquet_refs(shard, column)
    else:
        yield from _jsonl_refs(shard, column)


def _parquet_refs(path: Path, column: str) -> Iterator[list[UrlRef]]:
    """The URL column (with the id and image columns when present), batch by batch."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
    except (OSError, ValueError):
        raise InputError(str(path), "not a readable Parquet file") from None
    if column == "url" and column not in names and "URL" in names:
        column = "URL"  # LAION-400M and laion2B name it so
    if column not in names:
        raise InputError(str(path), f"no {column!r} column (columns: {', '.join(names[:12])})")
    id_column = next((c for c in _ID_COLUMNS if c in names), None)
    wanted = [c for c in (column, id_column, "image") if c is not None and c in names]
    name, index = str(path), 0
    batches = parquet.iter_batches(batch_size=BATCH_ROWS, columns=wanted)
    while True:
        try:
            batch = next(batches, None)
        except (OSError, ValueError):
            raise InputError(name, "cannot read its Parquet data") from None
        if batch is None:
            return
        data = batch.to_pydict()
        empty = [None] * batch.num_rows
        ids, images = data.get(id_column or "", empty), data.get("image", empty)
        refs = []
        for url, rid, image in zip(data[column], ids, images, strict=True):
            if isinstance(url, str) and url.strip():
                image = image if isinstance(image, str) else None
                refs.append(UrlRef(index, _text(rid), url, image, file=name))
            index += 1
        yield refs


def _jsonl_refs(path: Path, column: str) -> Iterator[list[UrlRef]]:
    """A JSON Lines shard (gzipped or not), line by line: only the URL, id and image keys."""
    decoder = msgspec.json.Decoder(_row_type(column))
    name, index, number = str(path), 0, 0
    refs: list[UrlRef] = []
    with _opened(path) as handle:
        while True:
            try:
                line = handle.readline()
            except (OSError, EOFError, zlib.error) as exc:
                raise _unreadable(name, exc) from None
            if not line:
                break
            number += 1
            if not line.strip():
                continue
            try:
                row = decoder.decode(line.removeprefix(b"\xef\xbb\xbf"))
            except msgspec.DecodeError as exc:
                raise InputError(name, f"invalid JSON Lines record: {exc}", f"{number}") from None
            if isinstance(row.u, str) and row.u.strip():
                image = row.img if isinstance(row.img, str) else None
                refs.append(UrlRef(index, _text(row.i), row.u, image, file=name))
            index += 1
            if len(refs) >= BATCH_ROWS:
                yield refs
                refs = []
    if refs:
        yield refs


def _opened(path: Path) -> IO[bytes]:
    try:
        if path.name.lower().endswith(".gz"):
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return path.open("rb")
    except OSError as exc:
        raise _unreadable(str(path), exc) from None


def _unreadable(name: str, exc: BaseException) -> InputError:
    return InputError(name, f"cannot read the shard: {getattr(exc, 'strerror', None) or exc}")


def _row_type(column: str) -> Any:
    """A struct decoding only the URL column, id and image (other keys are skipped unparsed)."""
    if column in ("id", "image"):
        raise UsageError(f"the URL column cannot be {column!r}: it names the record's own field")
    return msgspec.defstruct(
        "UrlRow",
        [("u", Any, None), ("i", Any, None), ("img", Any, None)],
        rename={"u": column, "i": "id", "img": "image"},
    )


def _json_refs(path: Path, data: bytes, column: str) -> list[UrlRef]:
    row = _row_type(column)
    decoder: msgspec.json.Decoder[list[Any]] = msgspec.json.Decoder(list[row])  # type: ignore[valid-type]
    try:
        rows: list[Any] = decoder.decode(data.removeprefix(b"\xef\xbb\xbf"))
    except msgspec.DecodeError as exc:
        rows = _json_lines(path, data, row, exc)
    return [
        UrlRef(index, _text(r.i), r.u, r.img if isinstance(r.img, str) else None)
        for index, r in enumerate(rows)
        if isinstance(r.u, str) and r.u.strip()
    ]


def _json_lines(path: Path, data: bytes, row: Any, first: msgspec.DecodeError) -> list[Any]:
    """JSON Lines metadata is read line by line; anything else is the array decode's error."""
    lines = data.splitlines()
    if len(lines) < 2 or not lines[0].lstrip().startswith(b"{"):
        raise InputError(str(path), f"not a JSON array of objects: {first}") from None
    decoder = msgspec.json.Decoder(row)
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(decoder.decode(line))
        except msgspec.DecodeError as exc:
            raise InputError(str(path), f"invalid JSON Lines record: {exc}", f"{number}") from None
    return rows


def _tsv_refs(path: Path, data: bytes, column: str) -> list[UrlRef]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(str(path), "not UTF-8", f"byte {exc.start}") from None
    lines = text.removeprefix("\ufeff").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    header = lines[0].rstrip("\r").split("\t") if lines else []
    if column in header:
        position = header.index(column)
        return [
            UrlRef(number - 1, None, fields[position])
            for number, line in enumerate(lines[1:], start=1)
            if len(fields := line.rstrip("\r").split("\t")) > position and fields[position]
        ]
    if not any("\t" in line for line in lines):
        raise InputError(
            str(path), "not a URL list: neither a JSON metadata array nor caption<TAB>url lines"
        )
    return [
        UrlRef(number, None, url)
        for number, line in enumerate(lines)
        if "\t" in line and (url := line.rstrip("\r").rpartition("\t")[2].strip())
    ]


def _text(value: Any) -> str | None:
    return None if value is None or isinstance(value, dict | list) else str(value)


_COCO_ID = re.compile(r"(?:^|/)(?:COCO_(?:train|val)2014_)?(\d{1,12})\.jpg$")


def coco_url_refs(chat: str | Path, annotations: str | Path) -> list[UrlRef]:
    """Each chat record's image source URL from a COCO annotation file, in record order.

    Records whose image is not a COCO file name, or whose id the annotation file does not list,
    have no URL to probe and are left out (the licence stage reports unresolved COCO images).
    """
    urls = load_coco_urls(annotations)
    # a shard set's records name their shard and their position there, as the images' do
    return coco_refs(records.image_refs(Path(chat)), urls)


def coco_refs(refs: Iterable[ImageRef], urls: Mapping[int, str]) -> list[UrlRef]:
    """The source URL of each image reference that is a COCO file name ``urls`` lists (the
    Spark engine joins each shard's references in an executor through this)."""
    found = []
    for ref in refs:
        match = _COCO_ID.search(ref.image)
        url = urls.get(int(match.group(1))) if match else None
        if url:
            found.append(UrlRef(ref.index, ref.record_id, url, ref.image, file=ref.file))
    return found
