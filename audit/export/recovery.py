"""Which broken local images can be fetched again from their source URL. Pure.

One function decides it for the export's ``refetch.parquet`` and for the report's per-dataset
counts (:class:`audit.output.model.Recovery`), so the two always agree. A record is
*recoverable* when its image is missing or broken and its source URL answered with an image (no
URL finding); *gone* when the URL failed for good. A record under a takedown is never re-fetched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

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
    broken: dict[int, str | None] = {}
    blocked: set[int] = set()
    url_codes: dict[tuple[str, int], str] = {}
    for f in findings:
        if f.index is None:
            continue
        if f.code in BROKEN_IMAGE and f.file == chat_file:
            broken[f.index] = f.record_id
        elif f.code in _TAKEDOWN and f.file == chat_file:
            blocked.add(f.index)
        elif f.code.startswith("url.") and (f.file, f.index) not in url_codes:
            url_codes[(f.file, f.index)] = f.code
    by_index: dict[int, str] = {}
    by_id: dict[str, str] = {}
    for rec in url_records:
        code = url_codes.get((rec.file, rec.index), "ok")
        if rec.file == chat_file:
            by_index.setdefault(rec.index, code)
        elif rec.record_id is not None:
            by_id.setdefault(rec.record_id, code)
    out: dict[int, Fate] = {}
    for index, record_id in broken.items():
        status: str | None = by_index.get(index)
        if status is None and record_id is not None:
            status = by_id.get(record_id)
        if index in blocked or status is None:
            out[index] = "unknown"
        elif status == "ok":
            out[index] = "recoverable"
        else:
            out[index] = "gone" if status in URL_GONE else "unknown"
    return out


def recovery(fate: Mapping[int, Fate]) -> Recovery:
    """The report's counts of :func:`fates`."""
    values = list(fate.values())
    return Recovery(
        broken=len(values),
        recoverable=values.count("recoverable"),
        gone=values.count("gone"),
    )
