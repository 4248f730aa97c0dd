"""Each record's licence class, collected from the licence stage's verdict rows. Pure.

A run keeps this table (``reports/<run-id>/licences.json``) so ``export`` can reuse the verdicts
instead of judging every record again; records share a handful of classes (same licences,
verdicts and obligations), so the table is one small int per record.
"""

from __future__ import annotations

from collections.abc import Iterable

from audit.licensing.evidence import VerdictRow
from audit.results import LicenceClass, RecordLicences

_Entry = list[object]  # [licences tuple, (use, verdict, obligations tuple), ...]


class LicenceTable:
    """A verdict-row sink (``license_dataset(verdict_sink=...)``) building :class:`RecordLicences`."""

    def __init__(self) -> None:
        self.file = ""
        self._rows: dict[int, _Entry] = {}

    def __call__(self, row: VerdictRow) -> None:
        self.file = row.file
        entry = self._rows.get(row.index)
        if entry is None:
            entry = self._rows[row.index] = [tuple(row.licenses)]
        entry.append((f"{row.purpose}/{row.action}", row.verdict, tuple(row.obligations)))

    def build(self) -> RecordLicences:
        classes: dict[tuple[object, ...], int] = {}
        size = max(self._rows, default=-1) + 1
        records = [-1] * size
        for index, entry in self._rows.items():
            records[index] = classes.setdefault(tuple(entry), len(classes))
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
