"""Licence verdicts per record and per use (spec/licensing.md §8.4, §8.5 steps 3-8). Pure.

A record's parts are resolved to a licence and restrictions through the policy (COCO per-image ids,
the images.zip restriction, URL opt-outs), each term gives a verdict for the use, and the record gets
the most restrictive one; obligations are the union. Verdicts are cached by the resolved parts, so a
595K-record file costs one evaluation per distinct licence combination, not per record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from audit import findings
from audit.checks.provenance import Part, Provenance
from audit.config import LicenseConfig
from audit.findings import Finding
from audit.policy import Column, Policy, Verdict, evaluate

USES: tuple[str, ...] = (
    "research",
    "commercial",
    "redistribute-images",
    "redistribute-annotations",
)
_EXAMPLES = 5


class ResolvedPart(NamedTuple):
    source: str
    component: str
    license: str
    restrictions: tuple[str, ...]
    inferred: bool


@dataclass(frozen=True, slots=True)
class UseVerdict:
    verdict: Verdict
    reasons: tuple[str, ...]
    obligations: tuple[str, ...]


class Judgement:
    """Resolved parts and their verdict per use, shared by every record with the same parts.

    Hashed by identity: the tally counts records per judgement instead of per verdict.
    """

    __slots__ = ("attribution", "licenses", "parts", "verdicts")

    def __init__(
        self,
        parts: tuple[ResolvedPart, ...],
        verdicts: dict[str, UseVerdict],
        attribution: tuple[str, ...],
    ) -> None:
        self.parts = parts
        self.verdicts = verdicts
        self.attribution = attribution
        self.licenses = tuple(dict.fromkeys(p.license for p in parts))


class RecordLicence(NamedTuple):
    """Everything the audit knows about one record's rights: parts, verdict per use, credits."""

    provenance: Provenance
    judgement: Judgement
    attribution: tuple[str, ...]
    opt_out: bool
    coco_unresolved: bool

    @property
    def parts(self) -> tuple[ResolvedPart, ...]:
        return self.judgement.parts

    @property
    def verdicts(self) -> dict[str, UseVerdict]:
        return self.judgement.verdicts

    @property
    def licenses(self) -> tuple[str, ...]:
        return self.judgement.licenses


@dataclass(frozen=True)
class LicenceContext:
    """Inputs beyond the record: policy, settings, image origin, COCO join, opt-out URLs."""

    policy: Policy
    settings: LicenseConfig
    image_origin: str = "source"
    coco_licenses: Mapping[int, str] | None = None  # COCO licence id -> policy licence id
    coco_license_names: Mapping[int, tuple[str, str]] = field(default_factory=dict)
    coco_images: Mapping[int, tuple[int, str]] | None = None  # image id -> (licence id, flickr url)
    opt_outs: Set[str] = frozenset()


def column_for(use: str, settings: LicenseConfig) -> Column:
    if use == "redistribute-images":
        return "redistribute-modified" if settings.images_modified else "redistribute"
    if use == "redistribute-annotations":
        return "redistribute"
    if use in ("research", "commercial"):
        return use  # type: ignore[return-value]
    raise ValueError(f"unknown use {use!r}")


def _applies(use: str, component: str) -> bool:
    """Training uses every part; redistributing images only the image, annotations only the text."""
    if use == "redistribute-images":
        return component == "image"
    if use == "redistribute-annotations":
        return component != "image"
    return True


class Evaluator:
    """Resolves and judges records against one context, caching by parts, COCO licence and opt-out."""

    def __init__(self, ctx: LicenceContext) -> None:
        self.ctx = ctx
        self._cache: dict[tuple[Any, ...], Judgement] = {}
        origin = ctx.policy.image_origins.get(ctx.image_origin)
        if origin is None:
            known = ", ".join(ctx.policy.image_origins)
            raise ValueError(f"unknown image origin {ctx.image_origin!r} (policy knows: {known})")
        self._origin_restrictions = tuple(origin.restrictions)
        self._coco_joined = ctx.coco_images is not None and ctx.coco_licenses is not None

    def assess(self, prov: Provenance) -> RecordLicence:
        opt_out = prov.url is not None and prov.url in self.ctx.opt_outs
        coco_entry: tuple[int, str] | None = None
        coco_license: int | None = None  # None: not joined; -1: not in the annotation file
        if prov.coco_image_id is not None and self._coco_joined:
            coco_entry = self.ctx.coco_images.get(prov.coco_image_id)  # type: ignore[union-attr]
            coco_license = coco_entry[0] if coco_entry else -1
        key = (prov.parts, coco_license, opt_out)
        judgement = self._cache.get(key)
        if judgement is None:
            judgement = self._judgement(prov.parts, coco_license, opt_out)
            self._cache[key] = judgement
        attribution = judgement.attribution
        if coco_entry is not None:
            attribution = (*attribution, self._coco_credit(prov.coco_image_id, coco_entry))
        return RecordLicence(prov, judgement, attribution, opt_out, coco_license == -1)

    def _judgement(
        self, parts: tuple[Part, ...], coco_license: int | None, opt_out: bool
    ) -> Judgement:
        resolved = tuple(self._resolve(p, coco_license, opt_out) for p in parts)
        verdicts = {use: self._judge(resolved, use) for use in USES}
        sources = dict.fromkeys(p.source for p in resolved)
        attribution = tuple(a for s in sources if (a := self._source_attribution(s)))
        return Judgement(resolved, verdicts, attribution)

    def _source_attribution(self, source: str) -> str:
        src = self.ctx.policy.sources.get(source)
        return src.attribution if src else ""

    def _resolve(self, part: Part, coco_license: int | None, opt_out: bool) -> ResolvedPart:
        policy = self.ctx.policy
        src = policy.sources.get(part.source)
        comp = src.components.get(part.component) if src else None  # type: ignore[call-overload]
        license_id = comp.license if comp else "NOASSERTION"
        restrictions = list(comp.restrictions) if comp else []
        if part.component == "image":
            restrictions += self._origin_restrictions
            if opt_out:
                restrictions.append(policy.signals.opt_out)
            if part.source == "coco" and coco_license is not None and coco_license >= 0:
                license_id = (self.ctx.coco_licenses or {}).get(coco_license, "NOASSERTION")
        return ResolvedPart(
            part.source,
            part.component,
            license_id,
            tuple(dict.fromkeys(restrictions)),
            part.inferred,
        )

    def _coco_credit(self, image_id: int | None, entry: tuple[int, str]) -> str:
        """Per-image credit: the Flickr URL and the licence as the COCO file names it."""
        coco_license, flickr_url = entry
        name, url = self.ctx.coco_license_names.get(coco_license, (f"licence {coco_license}", ""))
        return f"COCO image {image_id}: {flickr_url or 'no Flickr URL'}, {name} {url}".strip()

    def _judge(self, parts: tuple[ResolvedPart, ...], use: str) -> UseVerdict:
        column = column_for(use, self.ctx.settings)
        relevant = [p for p in parts if _applies(use, p.component)]
        if not relevant:
            return UseVerdict(Verdict.ALLOWED, (f"nothing to {use}",), ())
        worst = Verdict.ALLOWED
        reasons: list[str] = []
        obligations: list[str] = []
        for p in relevant:
            for term_id in (p.license, *p.restrictions):
                tv = evaluate(self.ctx.policy.term(term_id), column, self.ctx.settings)
                obligations += tv.obligations
                if tv.verdict.rank < worst.rank:
                    worst, reasons = tv.verdict, []
                if tv.verdict == worst and not worst.usable:
                    inferred = ", inferred" if p.inferred else ""
                    why = f": {tv.reason}" if tv.reason else ""
                    reasons.append(f"{p.component} ({p.source}{inferred}) is {term_id}{why}")
        return UseVerdict(worst, tuple(dict.fromkeys(reasons)), tuple(dict.fromkeys(obligations)))


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
    coco_records: int = 0
    coco_unresolved: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    _counts: Counter[tuple[str, Judgement]] = field(default_factory=Counter)
    _groups: dict[tuple[str, str, tuple[str, ...]], list[str]] = field(default_factory=dict)

    def add(self, rec: RecordLicence) -> None:
        prov = rec.provenance
        self.records += 1
        self._counts[(prov.source, rec.judgement)] += 1
        self.inferred += prov.inferred
        label = prov.record_id if prov.record_id is not None else f"#{prov.position}"
        if prov.source == "coco":
            self.coco_records += 1
            if rec.coco_unresolved:
                self.coco_unresolved.append(label)
        if rec.opt_out:
            self.opt_out += 1
            self._finding(
                "license.opt_out",
                f"source URL {prov.url} carries a TDM opt-out (X-Robots-Tag noai/noimageai)",
                prov,
            )
        forbidden: list[str] = []
        for use in self.uses:
            uv = rec.judgement.verdicts[use]
            if uv.verdict is Verdict.FORBIDDEN:
                forbidden.append(f"forbidden for {use}: " + "; ".join(uv.reasons))
            elif uv.verdict is Verdict.UNKNOWN or uv.verdict is Verdict.CONDITIONAL:
                self._groups.setdefault((use, uv.verdict.value, uv.reasons), []).append(label)
        if forbidden:
            self._finding("license.forbidden", " | ".join(forbidden), prov)

    def _finding(self, code: str, message: str, prov: Provenance) -> None:
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

    def finish(self) -> list[Finding]:
        """Per-record findings plus the grouped warnings and the summary line for this file."""
        out = list(self.findings)
        for (use, verdict, reasons), labels in sorted(
            self._groups.items(), key=lambda kv: -len(kv[1])
        ):
            what = "no known licence" if verdict == "unknown" else "only conditionally allowed"
            out.append(
                self._file_finding(
                    f"license.{verdict}",
                    f"{len(labels):,} records {what} for {use}: {'; '.join(reasons)} "
                    f"(e.g. {_examples(labels)})",
                )
            )
        if self.coco_records and not self.coco_joined:
            out.append(
                self._file_finding(
                    "license.coco_unresolved",
                    f"{self.coco_records:,} records use COCO images but no COCO annotation file "
                    "was given (--coco-annotations), so their per-image licences are unresolved",
                )
            )
        elif self.coco_unresolved:
            out.append(
                self._file_finding(
                    "license.coco_unresolved",
                    f"{len(self.coco_unresolved):,} COCO images are not in the COCO annotation "
                    f"file (e.g. {_examples(self.coco_unresolved)})",
                )
            )
        out.append(self._file_finding("license.summary", self.summary()))
        return out

    def _file_finding(self, code: str, message: str) -> Finding:
        return findings.make(code, message, dataset=self.dataset, file=self.file)

    def usable(self, use: str) -> int:
        return usable_count(self.verdicts[use])

    def summary(self) -> str:
        verdicts = self.verdicts
        declared = "; ".join(
            f"for {use}: "
            + (", ".join(f"{n:,} {v}" for v, n in sorted(verdicts[use].items())) or "none")
            for use in self.uses
        )
        usable = ", ".join(f"{usable_count(verdicts[u]):,} usable for {u}" for u in USES)
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
            "coco_records": self.coco_records,
            "coco_unresolved": len(self.coco_unresolved),
        }


def usable_count(counts: Mapping[str, int]) -> int:
    """Records whose verdict permits the use (allowed, or allowed with obligations)."""
    return sum(counts.get(v.value, 0) for v in Verdict if v.usable)


def _plain(table: dict[str, dict[str, Counter[str]]]) -> dict[str, dict[str, dict[str, int]]]:
    return {key: {u: dict(c) for u, c in per_use.items()} for key, per_use in table.items()}


def _examples(labels: list[str]) -> str:
    shown = ", ".join(labels[:_EXAMPLES])
    return shown + (", ..." if len(labels) > _EXAMPLES else "")
