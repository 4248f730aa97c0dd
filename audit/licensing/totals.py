"""Per-file and per-dataset licence totals and findings (spec/licensing.md §8.4). Pure.

Records are counted per (source, judgement); per-use, per-source and per-licence totals are expanded
from those few counts at the end, so adding a record costs one counter update. Records forbidden for
a declared use are error findings one by one; unknown and conditional ones are grouped per reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from audit import findings
from audit.config import LicenseConfig
from audit.findings import Code, Finding
from audit.licensing.policy import Card, Verdict
from audit.licensing.provenance import Provenance
from audit.licensing.verdicts import USES, Judgement, RecordLicence, UseVerdict, split_use
from audit.results import LicenseFileTotals, LicenseResult

_EXAMPLES = 5
_GROUP_CODES: dict[str, Code] = {  # the grouped warnings, per verdict
    Verdict.UNKNOWN: Code.LICENSE_UNKNOWN,
    Verdict.CONDITIONAL: Code.LICENSE_CONDITIONAL,
}


@dataclass
class _Labels:
    """Records of one group: how many, and the first few (position, label) to name them."""

    n: int = 0
    first: list[tuple[int, str]] = field(default_factory=list)

    def add(self, position: int, label: str) -> None:
        self.n += 1
        if len(self.first) < _EXAMPLES:
            self.first.append((position, label))

    def merge(self, other: _Labels) -> None:
        self.n += other.n
        self.first = sorted(self.first + other.first)[:_EXAMPLES]


@dataclass
class FileTally:
    """Totals and findings for one file under the declared uses, built record by record.

    Records are counted per (source, judgement); per-use, per-source and per-licence totals are
    expanded from those few counts, so adding a record costs one counter update.
    """

    dataset: str
    file: str
    uses: tuple[str, ...]  # the declared uses: records forbidden for any of them are errors
    coco_joined: bool
    records: int = 0
    inferred: int = 0
    opt_out: int = 0
    modified: int = 0  # images found to differ from their original (resized, re-encoded)
    coco_records: int = 0
    coco_unresolved: _Labels = field(default_factory=_Labels)
    findings: list[Finding] = field(default_factory=list)
    _counts: Counter[tuple[str, Judgement]] = field(default_factory=Counter)
    _groups: dict[tuple[str, UseVerdict], _Labels] = field(default_factory=dict)

    def add(self, rec: RecordLicence) -> None:
        prov = rec.provenance
        self.records += 1
        self._counts[(prov.source, rec.judgement)] += 1
        self.inferred += prov.inferred
        label = prov.record_id if prov.record_id is not None else f"#{prov.position}"
        if prov.source == "coco":
            self.coco_records += 1
            if rec.coco_unresolved:
                self.coco_unresolved.add(prov.position, label)
        if rec.opt_out:
            self.opt_out += 1
            self._finding(
                Code.LICENSE_OPT_OUT,
                f"source URL {prov.url} carries a TDM opt-out ({', '.join(rec.opt_out_kinds)})",
                prov,
            )
        if rec.modified and rec.derivative:
            self.modified += 1
            self._finding(Code.LICENSE_DERIVATIVE, rec.derivative, prov)
        forbidden: list[str] = []
        for use in self.uses:
            uv = rec.judgement.verdicts[use]
            if uv.verdict is Verdict.FORBIDDEN:
                forbidden.append(f"forbidden for {_label(use)}: " + "; ".join(uv.reasons))
            elif uv.verdict is Verdict.UNKNOWN or uv.verdict is Verdict.CONDITIONAL:
                group = self._groups.get((use, uv))
                if group is None:
                    group = self._groups[(use, uv)] = _Labels()
                group.add(prov.position, label)
        if forbidden:
            self._finding(Code.LICENSE_FORBIDDEN, " | ".join(forbidden), prov)
        conflict = rec.judgement.share_alike_conflict
        if conflict and self._redistributes_both:
            self._finding(
                Code.LICENSE_SHARE_ALIKE_CONFLICT,
                f"image and annotations redistributed together under share-alike licences with "
                f"different elements: {', '.join(conflict)}",
                prov,
            )

    def merge(self, other: FileTally) -> None:
        """Add ``other``, a tally of other records of the same file (the Spark engine tallies a
        file's records in several executors): the same totals and findings as one tally."""
        for name in ("records", "inferred", "opt_out", "modified", "coco_records"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.coco_unresolved.merge(other.coco_unresolved)
        self.findings += other.findings
        self._counts.update(other._counts)
        for key, labels in other._groups.items():
            self._groups.setdefault(key, _Labels()).merge(labels)

    def _finding(self, code: Code, message: str, prov: Provenance) -> None:
        self.findings.append(
            findings.make(
                code,
                message,
                dataset=self.dataset,
                file=self.file,
                index=prov.position,
                record_id=prov.record_id,
            )
        )

    @property
    def verdicts(self) -> dict[str, Counter[str]]:
        """Records per verdict, for each use."""
        out: dict[str, Counter[str]] = {u: Counter() for u in USES}
        for (_source, judgement), n in self._counts.items():
            for use in USES:
                out[use][judgement.verdicts[use].verdict.value] += n
        return out

    def breakdown(self, by: str) -> dict[str, dict[str, Counter[str]]]:
        """Records per verdict and use, keyed by source (``by="source"``) or by licence."""
        out: dict[str, dict[str, Counter[str]]] = {}
        for (source, judgement), n in self._counts.items():
            keys = (source,) if by == "source" else judgement.licenses
            for key in keys:
                per_use = out.get(key)
                if per_use is None:
                    per_use = out[key] = {u: Counter() for u in USES}
                for use in USES:
                    per_use[use][judgement.verdicts[use].verdict.value] += n
        return out

    @property
    def _redistributes_both(self) -> bool:
        actions = {split_use(u)[1] for u in self.uses}
        return {"redistribute-images", "redistribute-annotations"} <= actions

    def finish(self, card: Card | None = None) -> list[Finding]:
        """Per-record findings, grouped warnings, the card cross-check and the summary line."""
        out = list(self.findings)
        if card is not None and self.records:
            out.append(self._file_finding(Code.LICENSE_CARD_SCOPE, self._card_message(card)))
        merged: dict[tuple[str, str, tuple[str, ...]], _Labels] = {}
        for (use, uv), group in self._groups.items():  # equal reasons from different judgements
            merged.setdefault((use, uv.verdict.value, uv.reasons), _Labels()).merge(group)
        # biggest first; ties in the order the records came (the first record of each group)
        for (use, verdict, reasons), labels in sorted(
            merged.items(), key=lambda kv: (-kv[1].n, kv[1].first[0][0] if kv[1].first else 0)
        ):
            what = "no known licence" if verdict == "unknown" else "only conditionally allowed"
            out.append(
                self._file_finding(
                    _GROUP_CODES[verdict],
                    f"{labels.n:,} records {what} for {_label(use)}: {'; '.join(reasons)} "
                    f"(e.g. {_examples(labels)})",
                )
            )
        if self.coco_records and not self.coco_joined:
            out.append(
                self._file_finding(
                    Code.LICENSE_COCO_UNRESOLVED,
                    f"{self.coco_records:,} records use COCO images but no COCO annotation file "
                    "was given (--coco-annotations), so their per-image licences are unresolved",
                )
            )
        elif self.coco_unresolved.n:
            out.append(
                self._file_finding(
                    Code.LICENSE_COCO_UNRESOLVED,
                    f"{self.coco_unresolved.n:,} COCO images are not in the COCO annotation "
                    f"file (e.g. {_examples(self.coco_unresolved)})",
                )
            )
        out.append(self._file_finding(Code.LICENSE_SUMMARY, self.summary()))
        return out

    def _card_message(self, card: Card) -> str:
        """What the card declares against what the records' parts allow (§8.4 card cross-check)."""
        revision = f" (revision {card.revision})" if card.revision else ""
        if card.declared == "other" and not (card.license_name or card.license_link):
            return (
                f"the {card.name} card{revision} declares `license: other` with no licence name or "
                "link; the records' rights come only from their sources (see the per-source table)"
            )
        verdicts = self.verdicts["commercial/train"]
        narrower = self.records - usable_count(verdicts)
        return (
            f"the {card.name} card{revision} declares {card.declared}, which covers only the "
            f"{card.covers}: {narrower:,} of {self.records:,} records have parts (images, other "
            "sources, OpenAI terms) that do not allow commercial training under it"
        )

    def _file_finding(self, code: Code, message: str) -> Finding:
        return findings.make(code, message, dataset=self.dataset, file=self.file)

    def summary(self) -> str:
        verdicts = self.verdicts
        declared = "; ".join(
            f"for {_label(use)}: "
            + (", ".join(f"{n:,} {v}" for v, n in sorted(verdicts[use].items())) or "none")
            for use in self.uses
        )
        usable = ", ".join(f"{usable_count(verdicts[u]):,} usable for {_label(u)}" for u in USES)
        return (
            f"{self.records:,} records; {declared}; {usable}; "
            f"{self.inferred:,} with an inferred source"
        )

    def stats(self) -> dict[str, Any]:
        verdicts = self.verdicts
        return {
            "records": self.records,
            "verdicts": {u: dict(c) for u, c in verdicts.items()},
            "usable": {u: usable_count(verdicts[u]) for u in USES},
            "by_source": _plain(self.breakdown("source")),
            "by_license": _plain(self.breakdown("license")),
            "inferred": self.inferred,
            "opt_out": self.opt_out,
            "modified": self.modified,
            "coco_records": self.coco_records,
            "coco_unresolved": self.coco_unresolved.n,
        }


def dataset_stats(
    tallies: list[tuple[FileTally, str]],
    uses: tuple[str, ...],
    image_origin: str,
    settings: LicenseConfig,
    coco_joined: bool,
) -> LicenseResult:
    """Dataset totals over its files' tallies: per verdict and use, per source, per licence, and
    records usable per use (the licence stage's stats, as the report and the CLI show them)."""
    verdicts = {u: Counter[str]() for u in USES}
    by_source: dict[str, dict[str, Counter[str]]] = {}
    by_license: dict[str, dict[str, Counter[str]]] = {}
    scalars: Counter[str] = Counter()
    files = []
    for tally, kind in tallies:
        file_stats = tally.stats()
        for u in USES:
            verdicts[u].update(file_stats["verdicts"][u])
        for name, into in (("by_source", by_source), ("by_license", by_license)):
            for key, per_use in file_stats[name].items():
                target = into.setdefault(key, {u: Counter() for u in USES})
                for u in USES:
                    target[u].update(per_use[u])
        for key in ("records", "inferred", "opt_out", "coco_records", "coco_unresolved"):
            scalars[key] += file_stats[key]
        files.append(
            msgspec.convert(
                {"file": tally.file, "dataset": tally.dataset, "kind": kind, **file_stats},
                LicenseFileTotals,
            )
        )
    usable = {u: usable_count(verdicts[u]) for u in USES}
    worst = {u: next((v.value for v in Verdict if verdicts[u].get(v.value)), None) for u in USES}
    forbidden = {u: verdicts[u].get("forbidden", 0) for u in uses}
    return LicenseResult(
        uses=list(uses),
        use=uses[0],
        image_origin=image_origin,
        settings=settings,
        coco_joined=coco_joined,
        records=scalars["records"],
        inferred=scalars["inferred"],
        opt_out=scalars["opt_out"],
        coco_records=scalars["coco_records"],
        coco_unresolved=scalars["coco_unresolved"],
        verdicts={u: dict(c) for u, c in verdicts.items()},
        usable=usable,
        dataset_verdict=worst,
        usable_lines=[f"{usable[u]:,} records usable for {_label(u)}" for u in USES],
        forbidden=forbidden,
        by_source={k: {u: dict(c) for u, c in v.items()} for k, v in by_source.items()},
        by_license={k: {u: dict(c) for u, c in v.items()} for k, v in by_license.items()},
        files=files,
    )


def usable_count(counts: Mapping[str, int]) -> int:
    """Records whose verdict permits the use (allowed, or allowed with obligations)."""
    return sum(counts.get(v.value, 0) for v in Verdict if v.usable)


def _label(use: str) -> str:
    """``commercial/redistribute-images`` -> ``commercial redistribute-images``, for messages."""
    return use.replace("/", " ")


def _plain(table: dict[str, dict[str, Counter[str]]]) -> dict[str, dict[str, dict[str, int]]]:
    return {key: {u: dict(c) for u, c in per_use.items()} for key, per_use in table.items()}


def _examples(labels: _Labels) -> str:
    shown = ", ".join(label for _, label in labels.first)
    return shown + (", ..." if labels.n > _EXAMPLES else "")
