"""Each record's licence class, collected from the licence stage's verdict rows. Pure.

A run keeps this table (``reports/<run-id>/licences.json``) so ``export`` can reuse the verdicts
instead of judging every record again; records share a handful of classes (same licences,
verdicts and obligations), so the table is one small int per record.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from audit.licensing.evidence import VerdictRow
from audit.results import LicenceClass, RecordLicences

_Entry = list[object]  # [licences tuple, (use, verdict, obligations tuple), ...]


class LicenceTable:
    """A verdict-row sink (``license_dataset(verdict_sink=...)``) building :class:`RecordLicences`.

    Rows are kept per file: a shard set's rows name each shard and the record's position in it,
    so positions of two shards never collide.
    """

    def __init__(self) -> None:
        self.file = ""
        self._rows: dict[str, dict[int, _Entry]] = {}

    def __call__(self, row: VerdictRow) -> None:
        self.file = self.file or row.file
        rows = self._rows.setdefault(row.file, {})
        entry = rows.get(row.index)
        if entry is None:
            entry = rows[row.index] = [tuple(row.licenses)]
        entry.append((f"{row.purpose}/{row.action}", row.verdict, tuple(row.obligations)))

    def build(self, layout: Sequence[tuple[str, int]] | None = None) -> RecordLicences:
        """The table by position: one file's, or with ``layout`` (each shard and its element
        count, in set order) the whole set's, the shards' positions counted one after another.
        Rows of several files without a layout give an empty table (``export`` judges again)."""
        if layout is None and len(self._rows) > 1:
            return RecordLicences()
        if layout is None:
            layout = [(file, max(rows, default=-1) + 1) for file, rows in self._rows.items()]
        classes: dict[tuple[object, ...], int] = {}
        records = [-1] * sum(size for _, size in layout)
        offset = 0
        for file, size in layout:
            for index, entry in self._rows.get(file, {}).items():
                if 0 <= index < size:
                    records[offset + index] = classes.setdefault(tuple(entry), len(classes))
            offset += size
        uses: list[str] = []
        out = []
        for key in classes:
            licences, *per_use = key
            judged: list[tuple[str, str, tuple[str, ...]]] = per_use  # type: ignore[assignment]
            uses = uses or [use for use, _, _ in judged]
            out.append(
                LicenceClass(
                    licenses=list(licences),  # type: ignore[call-overload]
                    verdicts={use: verdict for use, verdict, _ in judged},
                    obligations={use: list(obl) for use, _, obl in judged if obl},
                )
            )
        return RecordLicences(file=self.file, uses=uses, classes=out, records=records)

    def verdicts(self, file: str, use: str) -> dict[int, str]:
        """One file's (or shard's) verdicts under ``use`` by position."""
        out: dict[int, str] = {}
        for index, entry in self._rows.get(file, {}).items():
            judged: list[tuple[str, str, tuple[str, ...]]] = entry[1:]  # type: ignore[assignment]
            out.update((index, verdict) for judged_use, verdict, _ in judged if judged_use == use)
        return out


def verdicts_for(table: RecordLicences, use: str) -> dict[int, str] | None:
    """Each judged record's verdict under ``use`` (None: the run did not judge that use)."""
    if use not in table.uses:
        return None
    per_class = [c.verdicts.get(use, "") for c in table.classes]
    records = table.records
    judged: Iterable[int] = range(len(records))
    if min(records, default=0) < 0:  # class -1: the record was not judged
        judged = [i for i, c in enumerate(records) if c >= 0]
    return dict(
        zip(judged, map(per_class.__getitem__, map(records.__getitem__, judged)), strict=True)
    )
