"""The attribution export: what a redistributor must credit, per part of each record (CC BY 2.0 §4).

CC BY 2.0 §4(b) asks for the original author's name and the work's title if supplied, the URI the
licensor specifies for the work, and (for a derivative) a credit saying it was changed. JSON Lines
holds one :class:`AttributionRow` per part of each record, with "not known" as null; Markdown
groups the parts by licence for people and writes "unknown" where a field is not known. Parts
without a per-item credit (a dataset's annotations, unlicensed web images) are summarised per
source with example ids, so a 600K-record file gives a readable page. Both are written atomically.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import msgspec

from audit.atomic import atomic_open
from audit.licensing.policy import Policy
from audit.licensing.verdicts import RecordLicence

_ENCODER = msgspec.json.Encoder()
_EXAMPLE_IDS = 10
#: component -> the part a credit names (CC licences credit the image, the annotation or the text)
_PART = {"image": "image", "source_annotation": "annotation", "caption_alt_text": "annotation"}
#: a Flickr static image URL: .../<server>/<photo id>_<secret>[_<size>].<ext>
_FLICKR = re.compile(
    r"^https?://(?:[a-z0-9-]+\.)*(?:static)?flickr\.com/(?:[^?#]*/)?(\d+)_[0-9a-f]+(?:_[a-z0-9]+)?"
    r"\.(?:jpe?g|png|gif)(?:[?#].*)?$",
    re.IGNORECASE,
)


class AttributionRow(msgspec.Struct, frozen=True, kw_only=True):
    """One part of one record and the credit its licence asks for (null: not known)."""

    file: str
    index: int
    record_id: str | None
    part: str  # image | annotation | text
    source: str
    license: str  # SPDX id or LicenseRef-
    license_url: str | None
    author: str | None
    title: str | None
    photo_page: str | None  # https://www.flickr.com/photo.gne?id=<photo id>
    source_url: str | None  # where the image came from (COCO flickr_url, the record's URL)
    modified: bool | None  # the image was resized or re-encoded (null: the tool cannot tell)


def flickr_photo_page(url: str | None) -> str | None:
    """The Flickr photo page of a static Flickr image URL (COCO ``flickr_url``, SBU), else None."""
    match = _FLICKR.match(url) if url else None
    return f"https://www.flickr.com/photo.gne?id={match.group(1)}" if match else None


def attribution_rows(file: str, rec: RecordLicence, policy: Policy) -> Iterator[AttributionRow]:
    """One row per part: licence, its URL, and for the image the Flickr page and change status."""
    prov = rec.provenance
    for part in rec.parts:
        image = part.component == "image"
        source_url = (rec.image_url or prov.url) if image else None
        term = policy.licenses.get(part.license)
        license_url = rec.license_url if image and rec.license_url else None
        yield AttributionRow(
            file=file,
            index=prov.position,
            record_id=prov.record_id,
            part=_PART.get(part.component, "text"),
            source=part.source,
            license=part.license,
            license_url=license_url or (term.urls[0] if term and term.urls else None),
            author=None,  # no source of these datasets records the author per item
            title=None,
            photo_page=flickr_photo_page(source_url) if image else None,
            source_url=source_url or None,
            modified=rec.modified if image else None,
        )


@dataclass
class _Bulk:
    """Parts with no per-item credit, summarised: how many, and a few record ids."""

    count: int = 0
    examples: list[str] = field(default_factory=list)


class AttributionWriter:
    """Context manager: ``add`` each record; the file appears complete on a clean exit."""

    def __init__(self, path: str | Path, policy: Policy) -> None:
        self.policy = policy
        self.markdown = Path(path).suffix.lower() in (".md", ".markdown")
        self.path = path
        self._stack = ExitStack()
        self._out: IO[str] | None = None
        self._items: dict[str, list[AttributionRow]] = {}  # licence -> parts with a credit
        self._bulk: dict[str, dict[tuple[str, str], _Bulk]] = {}  # licence -> (part, source)

    def __enter__(self) -> AttributionWriter:
        self._out = self._stack.enter_context(atomic_open(self.path))
        return self

    def add(self, file: str, rec: RecordLicence) -> None:
        assert self._out is not None, "use AttributionWriter as a context manager"
        for row in attribution_rows(file, rec, self.policy):
            if not self.markdown:
                self._out.write(_ENCODER.encode(row).decode() + "\n")
            elif row.photo_page or row.author or row.title or row.modified:
                self._items.setdefault(row.license, []).append(row)
            else:
                bulk = self._bulk.setdefault(row.license, {}).setdefault(
                    (row.part, row.source), _Bulk()
                )
                bulk.count += 1
                if len(bulk.examples) < _EXAMPLE_IDS:
                    bulk.examples.append(_label(row))

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if typ is None and self.markdown and self._out is not None:
            self._write_markdown(self._out)
        self._stack.__exit__(typ, exc, tb)

    def _write_markdown(self, out: IO[str]) -> None:
        licences = sorted(set(self._items) | set(self._bulk))
        out.write(
            "# Attribution\n\nEvery part of every record, grouped by licence: the credit CC BY 2.0 "
            "§4 asks for (author and title if supplied, the work's URI, the licence, whether the "
            'image was changed). "unknown" means the dataset does not record it.\n'
        )
        for lic in licences:
            term = self.policy.licenses.get(lic)
            name = f" ({term.name})" if term else ""
            link = term.urls[0] if term and term.urls else "unknown"
            out.write(f"\n## {_md(lic)}{name}\n\n- licence: {_md(link)}\n")
            for obligation in term.obligations if term else ():
                out.write(f"- obligation: {_md(obligation)}\n")
            for (part, source), bulk in sorted(self._bulk.get(lic, {}).items()):
                credit = (
                    self.policy.sources[source].attribution if source in self.policy.sources else ""
                )
                shown = ", ".join(f"`{_md(e)}`" for e in bulk.examples)
                more = (
                    f" and {bulk.count - len(bulk.examples):,} more"
                    if bulk.count > len(bulk.examples)
                    else ""
                )
                out.write(
                    f"- {bulk.count:,} {part} parts from {_md(source)}: credit "
                    f"{_md(credit) or 'unknown'}; author unknown, title unknown (records {shown}{more})\n"
                )
            items = self._items.get(lic, [])
            if items:
                out.write(f"\nPer-item credits ({len(items):,}):\n\n")
            for row in items:
                out.write(
                    f"- `{_md(_label(row))}` {row.part}: author {_md(row.author or 'unknown')}, "
                    f"title {_md(row.title or 'unknown')}, photo page "
                    f"{_md(row.photo_page or 'unknown')}, licence {_md(row.license_url or 'unknown')}, "
                    f"modified {_yes_no(row.modified)}\n"
                )


def _label(row: AttributionRow) -> str:
    return row.record_id if row.record_id is not None else f"#{row.index}"


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else "yes" if value else "no"


def _md(text: str) -> str:
    """Dataset text is untrusted: keep it from opening Markdown or HTML constructs."""
    return text.replace("\\", "\\\\").replace("<", "&lt;").replace("`", "'").replace("\n", " ")
