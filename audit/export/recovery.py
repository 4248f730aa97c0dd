"""Which broken local images can be fetched again from their source URL. Pure.

One function decides it for the export's ``refetch.parquet`` and for the report's per-dataset
counts (:class:`audit.output.model.Recovery`), so the two always agree. A record is
*recoverable* when its image is missing or broken and its source URL answered with an image (no
URL finding); *gone* when the URL failed for good. A record under a takedown is never re-fetched.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from audit.catalogue.codes import Code
from audit.figures import IMAGE_BROKEN_CODES, IMAGE_MISSING_CODES
from audit.findings import Finding
from audit.output.model import Recovery

#: the local image is unavailable (missing or broken, as every view counts it): a download
#: could replace it
BROKEN_IMAGE = IMAGE_MISSING_CODES | IMAGE_BROKEN_CODES
#: the source URL will not give the image back (a transient failure is not in here)
URL_GONE = frozenset(
    {Code.URL_DEAD, Code.URL_DNS, Code.URL_FORBIDDEN, Code.URL_PLACEHOLDER, Code.URL_NOT_IMAGE}
    | {Code.URL_INVALID, Code.URL_REDIRECTS, Code.URL_TRUNCATED}
)
_TAKEDOWN = frozenset({Code.TAKEDOWN_PRESENT, Code.TAKEDOWN_PENDING})

Fate = Literal["recoverable", "gone", "unknown"]


@dataclass(frozen=True)
class UrlRecord:
    """A record with a source URL: where the URL probe reported it (file, index) and its id."""

    file: str
    index: int
    record_id: str | None


def fates(
    chat_file: str,
    findings: Iterable[Finding],
    url_records: Iterable[UrlRecord],
) -> dict[int, Fate]:
    """Each chat record (by index) whose local image is broken, and what its URL says.

    ``findings`` are the dataset's (images, urls and takedown stages); a URL record in the chat
    file itself (the COCO join) matches by index, one in a metadata file or TSV by record id.
    """
    placed = placed_fates({chat_file}, findings, url_records)
    return {index: fate for (_, index), fate in placed.items()}


def placed_fates(
    chat_files: Collection[str],
    findings: Iterable[Finding],
    url_records: Iterable[UrlRecord],
) -> dict[tuple[str, int], Fate]:
    """:func:`fates` by (file, index) over ``chat_files``: the conversation file, or each shard
    of a sharded one (whose findings name the shard and the index in it)."""
    broken: dict[tuple[str, int], str | None] = {}
    blocked: set[tuple[str, int]] = set()
    url_codes: dict[tuple[str, int], str] = {}
    for f in findings:
        if f.index is None:
            continue
        where = (f.file, f.index)
        if f.code in BROKEN_IMAGE and f.file in chat_files:
            broken[where] = f.record_id
        elif f.code in _TAKEDOWN and f.file in chat_files:
            blocked.add(where)
        elif f.code.startswith("url.") and where not in url_codes:
            url_codes[where] = f.code
    by_place: dict[tuple[str, int], str] = {}
    by_id: dict[str, str] = {}
    for rec in url_records:
        code = url_codes.get((rec.file, rec.index), "ok")
        if rec.file in chat_files:
            by_place.setdefault((rec.file, rec.index), code)
        elif rec.record_id is not None:
            by_id.setdefault(rec.record_id, code)
    out: dict[tuple[str, int], Fate] = {}
    for where, record_id in broken.items():
        status: str | None = by_place.get(where)
        if status is None and record_id is not None:
            status = by_id.get(record_id)
        if where in blocked or status is None:
            out[where] = "unknown"
        elif status == "ok":
            out[where] = "recoverable"
        else:
            out[where] = "gone" if status in URL_GONE else "unknown"
    return out


def recovery(fate: Mapping[Any, Fate]) -> Recovery:
    """The report's counts of :func:`fates`."""
    values = list(fate.values())
    return Recovery(
        broken=len(values),
        recoverable=values.count("recoverable"),
        gone=values.count("gone"),
    )
