"""The attribution export: what a user must credit and obey for each record, as a file.

JSON Lines holds every record (its parts, verdict per use, obligations, credits) and is streamed.
Markdown is for people: records are grouped by what they oblige (same source, licences, verdict and
obligations), with the per-image credits (COCO Flickr URL and licence) listed in full and the other
record ids only as examples, so a 600K-record file gives a readable page. Both are written
atomically: a reader never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import msgspec

from audit.licensing.verdicts import Judgement, RecordLicence

_ENCODER = msgspec.json.Encoder()
_EXAMPLE_IDS = 20


def attribution_entry(dataset: str, file: str, rec: RecordLicence, use: str) -> dict[str, Any]:
    """One record's rights as data (one line of the JSON Lines export)."""
    prov = rec.provenance
    declared = rec.verdicts[use]
    return {
        "dataset": dataset,
        "file": file,
        "index": prov.position,
        "record_id": prov.record_id,
        "image": prov.image,
        "url": prov.url,
        "source": prov.source,
        "inferred": prov.inferred,
        "licenses": list(rec.licenses),
        "restrictions": sorted({r for p in rec.parts for r in p.restrictions}),
        "verdicts": {u: v.verdict.value for u, v in rec.verdicts.items()},
        "use": use,
        "obligations": list(declared.obligations),
        "attribution": list(rec.attribution),
    }


@dataclass
class _Group:
    dataset: str
    file: str
    source: str
    judgement: Judgement
    records: int = 0
    examples: list[str] = field(default_factory=list)
    credits: list[str] = field(default_factory=list)  # per-record credits (COCO images)


class AttributionWriter:
    """Context manager: ``add`` each record, the file appears complete on a clean exit."""

    def __init__(self, path: str | Path, use: str) -> None:
        self.target = Path(path)
        self.use = use
        self.markdown = self.target.suffix.lower() in (".md", ".markdown")
        self._groups: dict[tuple[str, str, str, int], _Group] = {}
        self._out: IO[str] | None = None
        self._tmp: Path | None = None

    def __enter__(self) -> AttributionWriter:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.target.name}.", dir=self.target.parent)
        self._tmp = Path(tmp)
        self._out = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        return self

    def add(self, dataset: str, file: str, rec: RecordLicence) -> None:
        assert self._out is not None, "use AttributionWriter as a context manager"
        if not self.markdown:
            entry = attribution_entry(dataset, file, rec, self.use)
            self._out.write(_ENCODER.encode(entry).decode() + "\n")
            return
        prov = rec.provenance
        key = (dataset, file, prov.source, id(rec.judgement))
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(dataset, file, prov.source, rec.judgement)
        group.records += 1
        label = prov.record_id if prov.record_id is not None else f"#{prov.position}"
        extra = rec.attribution[len(rec.judgement.attribution) :]
        if extra:
            group.credits.extend(f"`{_md(label)}`: {_md(line)}" for line in extra)
        elif len(group.examples) < _EXAMPLE_IDS:
            group.examples.append(label)

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._out is not None and self._tmp is not None
        try:
            if typ is None and self.markdown:
                self._write_markdown(self._out)
            self._out.close()
            if typ is None:
                self._tmp.replace(self.target)
        finally:
            self._tmp.unlink(missing_ok=True)

    def _write_markdown(self, out: IO[str]) -> None:
        groups = sorted(self._groups.values(), key=lambda g: -g.records)
        total = sum(g.records for g in groups)
        out.write(
            f"# Attribution and obligations ({self.use})\n\n"
            f"{total:,} records in {len(groups):,} groups with the same sources, licences and "
            "obligations. Every record with its verdicts: export to `.jsonl` instead.\n"
        )
        for n, group in enumerate(groups, 1):
            verdict = group.judgement.verdicts[self.use]
            out.write(
                f"\n## {n}. {_md(group.source)}: {', '.join(group.judgement.licenses)} "
                f"({group.records:,} records)\n\n"
                f"- dataset `{_md(group.dataset)}`, file `{_md(group.file)}`\n"
                f"- verdict for {self.use}: **{verdict.verdict.value}**\n"
            )
            for reason in verdict.reasons:
                out.write(f"- why: {_md(reason)}\n")
            for line in group.judgement.attribution:
                out.write(f"- credit: {_md(line)}\n")
            for line in verdict.obligations:
                out.write(f"- obligation: {_md(line)}\n")
            if group.credits:
                out.write(f"\nPer-record credits ({len(group.credits):,}):\n\n")
                out.writelines(f"- {line}\n" for line in group.credits)
            elif group.examples:
                more = group.records - len(group.examples)
                shown = ", ".join(f"`{_md(e)}`" for e in group.examples)
                out.write(f"- records: {shown}{f' and {more:,} more' if more > 0 else ''}\n")


def _md(text: str) -> str:
    """Dataset text is untrusted: keep it from opening Markdown or HTML constructs."""
    return text.replace("\\", "\\\\").replace("<", "&lt;").replace("`", "'").replace("\n", " ")
