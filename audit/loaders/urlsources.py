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
from audit.models import UrlRef


def load_url_refs(path: str | Path, column: str = "url") -> list[UrlRef]:
    """Every record's source URL in file order; records without a string URL are left out."""
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
    for ref in records.image_refs(Path(chat)):
        match = _COCO_ID.search(ref.image)
        url = urls.get(int(match.group(1))) if match else None
        if url:
            refs.append(UrlRef(ref.index, ref.record_id, url, ref.image))
    return refs
