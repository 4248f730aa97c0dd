"""Licence verdicts per record and per use (spec/licensing.md §8.4, §8.5 steps 3-8). Pure.

A record's parts are resolved to a licence and restrictions through the policy (COCO per-image ids,
the images.zip restriction, URL opt-outs), each term gives a verdict for the use, and the record gets
the most restrictive one; obligations are the union. Verdicts are cached by the resolved parts, so a
595K-record file costs one evaluation per distinct licence combination, not per record.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from audit.config import LicenseConfig
from audit.licensing.policy import Column, Policy, Verdict, evaluate
from audit.licensing.provenance import Part, Provenance

USES: tuple[str, ...] = (
    "research",
    "commercial",
    "redistribute-images",
    "redistribute-annotations",
)
#: sources whose images may be COCO images (VG and GQA through the VG image's coco_id)
_COCO_IMAGES = frozenset({"coco", "vg", "gqa"})


class ResolvedPart(NamedTuple):
    source: str
    component: str
    license: str
    restrictions: tuple[str, ...]
    inferred: bool


@dataclass(frozen=True, slots=True, eq=False)  # identity hash: the tally groups records by it
class UseVerdict:
    verdict: Verdict
    reasons: tuple[str, ...]
    obligations: tuple[str, ...]


class Judgement:
    """Resolved parts and their verdict per use, shared by every record with the same parts.

    Hashed by identity: the tally counts records per judgement instead of per verdict.
    """

    __slots__ = ("attribution", "licenses", "parts", "share_alike_conflict", "verdicts")

    def __init__(
        self,
        parts: tuple[ResolvedPart, ...],
        verdicts: dict[str, UseVerdict],
        attribution: tuple[str, ...],
        share_alike_conflict: tuple[str, ...] = (),
    ) -> None:
        self.parts = parts
        self.verdicts = verdicts
        self.attribution = attribution
        self.licenses = tuple(dict.fromkeys(p.license for p in parts))
        self.share_alike_conflict = share_alike_conflict


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
    vg_coco_ids: Mapping[int, int] | None = None  # Visual Genome image id -> COCO image id
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
        self._origin = origin
        self._coco_joined = ctx.coco_images is not None and ctx.coco_licenses is not None

    def assess(self, prov: Provenance) -> RecordLicence:
        opt_out = prov.url is not None and prov.url in self.ctx.opt_outs
        coco_id = prov.coco_image_id
        if coco_id is None and prov.vg_image_id is not None and self.ctx.vg_coco_ids is not None:
            coco_id = self.ctx.vg_coco_ids.get(prov.vg_image_id)  # VG images taken from COCO
        coco_entry: tuple[int, str] | None = None
        coco_license: int | None = None  # None: not joined; -1: not in the annotation file
        if coco_id is not None and self._coco_joined:
            coco_entry = self.ctx.coco_images.get(coco_id)  # type: ignore[union-attr]
            coco_license = coco_entry[0] if coco_entry else -1
        key = (prov.parts, coco_license, opt_out)
        judgement = self._cache.get(key)
        if judgement is None:
            judgement = self._judgement(prov.parts, coco_license, opt_out)
            self._cache[key] = judgement
        attribution = judgement.attribution
        if coco_entry is not None:
            attribution = (*attribution, self._coco_credit(coco_id, coco_entry, prov.vg_image_id))
        return RecordLicence(prov, judgement, attribution, opt_out, coco_license == -1)

    def _judgement(
        self, parts: tuple[Part, ...], coco_license: int | None, opt_out: bool
    ) -> Judgement:
        resolved = tuple(self._resolve(p, coco_license, opt_out) for p in parts)
        verdicts = {use: self._judge(resolved, use) for use in USES}
        sources = dict.fromkeys(p.source for p in resolved)
        attribution = tuple(a for s in sources if (a := self._source_attribution(s)))
        return Judgement(resolved, verdicts, attribution, self._share_alike_conflict(resolved))

    def _share_alike_conflict(self, parts: tuple[ResolvedPart, ...]) -> tuple[str, ...]:
        """Share-alike licences with different elements cannot both govern one redistributed copy."""
        terms = {p.license: self.ctx.policy.licenses.get(p.license) for p in parts}
        share_alike = {lic: t for lic, t in terms.items() if t is not None and t.share_alike}
        elements = {(t.non_commercial, t.no_derivatives) for t in share_alike.values()}
        return tuple(share_alike) if len(elements) > 1 else ()

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
            if self._origin.license and license_id in self._origin.replaces:
                license_id = self._origin.license  # the distributor's permission is all there is
            if opt_out:
                restrictions.append(policy.signals.opt_out)
            if part.source in _COCO_IMAGES and coco_license is not None and coco_license >= 0:
                license_id = (self.ctx.coco_licenses or {}).get(coco_license, "NOASSERTION")
        return ResolvedPart(
            part.source,
            part.component,
            license_id,
            tuple(dict.fromkeys(restrictions)),
            part.inferred,
        )

    def _coco_credit(self, image_id: int | None, entry: tuple[int, str], vg_id: int | None) -> str:
        """Per-image credit: the Flickr URL and the licence as the COCO file names it."""
        coco_license, flickr_url = entry
        name, url = self.ctx.coco_license_names.get(coco_license, (f"licence {coco_license}", ""))
        label = f"COCO image {image_id}" + (f" (VG image {vg_id})" if vg_id is not None else "")
        return f"{label}: {flickr_url or 'no Flickr URL'}, {name} {url}".strip()

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
