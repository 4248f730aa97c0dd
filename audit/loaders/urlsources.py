"""URL lists from dataset files: metadata JSON arrays, JSON Lines, and the headerless CC-3M TSV.

Metadata files (CC-3M ``metadata.json``, LCS ``..._meta.json``) are arrays of objects with a ``url``
key: read by the structure stage's loader (``audit.loaders.records``), so URL keys are discovered
the same way. A column named in the config is decoded alone, one typed msgspec pass. The CC-3M TSV is ``caption<TAB>url`` with no header
(the record index is the 0-based line number); a TSV whose first line names the column is read as
a table with a header. COCO-based conversation files (LLaVA-Instruct, mix665k's COCO part) have no
URL of their own: their image names are COCO ids, joined to the annotation file's Flickr URLs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec

from audit.errors import InputError, UsageError
from audit.loaders import read_input, records
from audit.loaders.coco import load_coco_urls
from audit.loaders.shards import expand, is_shard_set, shard_format
from audit.models import UrlRef


def load_url_refs(path: str | Path, column: str = "url") -> list[UrlRef]:
    """Every record's source URL in file order; records without a string URL are left out.

    A Parquet file (LAION-style metadata: ``url``, ``caption``, ...) or a folder or glob of
    Parquet or JSON Lines shards is read shard by shard; the index runs over the whole set.
    """
    if is_shard_set(path):
        return _shard_refs(str(path), column)
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


_BATCH_ROWS = 65_536
_ID_COLUMNS = ("id", "key", "SAMPLE_ID")  # LAION and img2dataset name a row's id so


def _shard_refs(source: str, column: str) -> list[UrlRef]:
    """URLs of every shard in set order, each Parquet shard read in batches of its columns."""
    refs: list[UrlRef] = []
    offset = 0
    for shard in expand(source):
        if shard_format(shard) == "parquet":
            found, rows = _parquet_refs(shard, column, offset)
        else:
            data = read_input(shard, "URL list")
            found = _json_refs(shard, data, column)
            rows = sum(1 for line in data.splitlines() if line.strip())  # a line per record
            found = [UrlRef(r.index + offset, r.record_id, r.url, r.image) for r in found]
        refs += found
        offset += rows
    return refs


def _parquet_refs(path: Path, column: str, offset: int) -> tuple[list[UrlRef], int]:
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
    refs: list[UrlRef] = []
    index = offset
    try:
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=wanted):
            data = batch.to_pydict()
            empty = [None] * batch.num_rows
            ids, images = data.get(id_column or "", empty), data.get("image", empty)
            for url, rid, image in zip(data[column], ids, images, strict=True):
                if isinstance(url, str) and url.strip():
                    image = image if isinstance(image, str) else None
                    refs.append(UrlRef(index, _text(rid), url, image))
                index += 1
    except (OSError, ValueError):
        raise InputError(str(path), "cannot read its Parquet data") from None
    return refs, index - offset


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
    refs = []
    # positions over a whole shard set: the URL stage names the set and those positions
    for ref in records.image_refs(Path(chat), by_shard=False):
        match = _COCO_ID.search(ref.image)
        url = urls.get(int(match.group(1))) if match else None
        if url:
            refs.append(UrlRef(ref.index, ref.record_id, url, ref.image))
    return refs
