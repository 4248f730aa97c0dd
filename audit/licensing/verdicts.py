"""Licence verdicts per record, purpose and action (spec/licensing.md §8.4, §8.5 steps 3-8). Pure.

A record's parts are resolved to a licence and restrictions through the policy (COCO per-image ids,
the images.zip restriction, URL opt-outs), each term gives a verdict for the use, and the record gets
the most restrictive one; obligations are the union. A use is a purpose (research, commercial) and
an action (train, redistribute annotations, redistribute images): NC licences forbid every
commercial action, redistribution included. Verdicts are cached by the resolved parts, so a
595K-record file costs one evaluation per distinct licence combination, not per record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from audit.config import LicenseConfig
from audit.licensing.policy import Column, Policy, Term, TermVerdict, Verdict, evaluate
from audit.licensing.provenance import Part, Provenance

PURPOSES: tuple[str, ...] = ("research", "commercial")
ACTIONS: tuple[str, ...] = ("train", "redistribute-annotations", "redistribute-images")
#: Every use a verdict is judged for: "purpose/action", research first.
USES: tuple[str, ...] = tuple(f"{p}/{a}" for p in PURPOSES for a in ACTIONS)


def use_key(purpose: str, action: str) -> str:
    """The key of a use in verdicts and statistics: ``research/train``."""
    if purpose not in PURPOSES or action not in ACTIONS:
        raise ValueError(f"unknown use {purpose!r}/{action!r}")
    return f"{purpose}/{action}"


def split_use(use: str) -> tuple[str, str]:
    """``research/train`` -> ``("research", "train")``."""
    purpose, _, action = use.partition("/")
    use_key(purpose, action)
    return purpose, action


#: sources whose images may be COCO images (VG and GQA through the VG image's coco_id)
_COCO_IMAGES = frozenset({"coco", "vg", "gqa"})


class ResolvedPart(NamedTuple):
    source: str
    component: str
    license: str
    restrictions: tuple[str, ...]
    inferred: bool
    via: str = ""  # how the licence was resolved when not from the source entry (COCO id, origin)


class Link(NamedTuple):
    """One term applied to one part for one use: a step of the verdict's evidence chain."""

    part: ResolvedPart
    term: str
    verdict: Verdict
    reason: str


@dataclass(frozen=True, slots=True, eq=False)  # identity hash: the tally groups records by it
class UseVerdict:
    verdict: Verdict
    reasons: tuple[str, ...]
    obligations: tuple[str, ...]
    chain: tuple[Link, ...] = ()  # every term of every part the action touches


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
    modified: bool | None = None  # the image differs from its original (None: cannot tell)
    opt_out_kinds: tuple[str, ...] = ()  # which machine-readable opt-outs the URL carried
    derivative: str = ""  # how the tool saw that the image was changed (a finding's message)
    image_url: str = ""  # the image's own page of origin when known (COCO flickr_url)
    license_url: str = ""  # the image licence's URL as the COCO file states it

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
    #: URL -> the opt-out kinds seen on it (``x-robots-tag``; a hook for tdmrep, robots.txt, ...)
    opt_outs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    coco_sizes: Mapping[int, tuple[int, int]] = field(default_factory=dict)  # id -> (w, h)
    #: record position -> how its image differs from the original (absent: cannot tell)
    modified: Mapping[int, str] = field(default_factory=dict)


def column_for(action: str, purpose: str, modified: bool) -> Column:
    """The policy matrix column of an action: training is judged by purpose, copies by change."""
    if action == "train":
        return purpose  # type: ignore[return-value]
    if action == "redistribute-images" and modified:
        return "redistribute-modified"
    return "redistribute"


def _applies(action: str, component: str) -> bool:
    """Training uses every part; redistributing images only the image, annotations only the text."""
    if action == "redistribute-images":
        return component == "image"
    if action == "redistribute-annotations":
        return component != "image"
    return True


def judge_term(
    term: Term, purpose: str, action: str, column: Column, settings: LicenseConfig
) -> TermVerdict:
    """One term's verdict for a use: its matrix cell, and NC forbids every commercial action."""
    if purpose == "commercial" and action != "train" and term.non_commercial:
        return TermVerdict(
            Verdict.FORBIDDEN,
            tuple(term.obligations),
            f"non-commercial licence: no commercial {action.replace('-', ' ')}",
        )
    return evaluate(term, column, settings)


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
        kinds = self.ctx.opt_outs.get(prov.url, ()) if prov.url is not None else ()
        coco_id = prov.coco_image_id
        if coco_id is None and prov.vg_image_id is not None and self.ctx.vg_coco_ids is not None:
            coco_id = self.ctx.vg_coco_ids.get(prov.vg_image_id)  # VG images taken from COCO
        coco_entry: tuple[int, str] | None = None
        coco_license: int | None = None  # None: not joined; -1: not in the annotation file
        if coco_id is not None and self._coco_joined:
            coco_entry = self.ctx.coco_images.get(coco_id)  # type: ignore[union-attr]
            coco_license = coco_entry[0] if coco_entry else -1
        derivative = self.ctx.modified.get(prov.position, "")
        modified = True if derivative or self.ctx.settings.images_modified else None
        key = (prov.parts, coco_license, kinds, modified is True)
        judgement = self._cache.get(key)
        if judgement is None:
            judgement = self._judgement(prov.parts, coco_license, kinds, modified is True)
            self._cache[key] = judgement
        attribution = judgement.attribution
        image_url = license_url = ""
        if coco_entry is not None:
            attribution = (*attribution, self._coco_credit(coco_id, coco_entry, prov.vg_image_id))
            image_url = coco_entry[1]
            license_url = self.ctx.coco_license_names.get(coco_entry[0], ("", ""))[1]
        return RecordLicence(
            prov,
            judgement,
            attribution,
            bool(kinds),
            coco_license == -1,
            modified,
            kinds,
            derivative,
            image_url,
            license_url,
        )

    def _judgement(
        self,
        parts: tuple[Part, ...],
        coco_license: int | None,
        kinds: tuple[str, ...],
        modified: bool,
    ) -> Judgement:
        resolved = tuple(self._resolve(p, coco_license, kinds) for p in parts)
        verdicts = {use: self._judge(resolved, use, modified) for use in USES}
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

    def _resolve(
        self, part: Part, coco_license: int | None, kinds: tuple[str, ...]
    ) -> ResolvedPart:
        policy = self.ctx.policy
        src = policy.sources.get(part.source)
        comp = src.components.get(part.component) if src else None  # type: ignore[call-overload]
        license_id = comp.license if comp else "NOASSERTION"
        restrictions = list(comp.restrictions) if comp else []
        via = ""
        if part.component == "image":
            restrictions += self._origin_restrictions
            if self._origin.license and license_id in self._origin.replaces:
                license_id = self._origin.license  # no licence of its own: the origin's terms
                via = f"image origin {self.ctx.image_origin}"
            restrictions += [policy.signals.restriction_for(kind) for kind in kinds]
            if part.source in _COCO_IMAGES and coco_license is not None and coco_license >= 0:
                license_id = (self.ctx.coco_licenses or {}).get(coco_license, "NOASSERTION")
                via = f"COCO licence id {coco_license}"
        return ResolvedPart(
            part.source,
            part.component,
            license_id,
            tuple(dict.fromkeys(restrictions)),
            part.inferred,
            via,
        )

    def _coco_credit(self, image_id: int | None, entry: tuple[int, str], vg_id: int | None) -> str:
        """Per-image credit: the Flickr URL and the licence as the COCO file names it."""
        coco_license, flickr_url = entry
        name, url = self.ctx.coco_license_names.get(coco_license, (f"licence {coco_license}", ""))
        label = f"COCO image {image_id}" + (f" (VG image {vg_id})" if vg_id is not None else "")
        return f"{label}: {flickr_url or 'no Flickr URL'}, {name} {url}".strip()

    def _judge(self, parts: tuple[ResolvedPart, ...], use: str, modified: bool) -> UseVerdict:
        purpose, action = split_use(use)
        column = column_for(action, purpose, modified)
        relevant = [p for p in parts if _applies(action, p.component)]
        if not relevant:
            return UseVerdict(Verdict.ALLOWED, (f"nothing to {action.replace('-', ' ')}",), ())
        worst = Verdict.ALLOWED
        reasons: list[str] = []
        obligations: list[str] = []
        chain: list[Link] = []
        for p in relevant:
            for term_id in (p.license, *p.restrictions):
                term = self.ctx.policy.term(term_id)
                tv = judge_term(term, purpose, action, column, self.ctx.settings)
                chain.append(Link(p, term_id, tv.verdict, tv.reason))
                obligations += tv.obligations
                if tv.verdict.rank < worst.rank:
                    worst, reasons = tv.verdict, []
                if tv.verdict == worst and not worst.usable:
                    inferred = ", inferred" if p.inferred else ""
                    why = f": {tv.reason}" if tv.reason else ""
                    reasons.append(f"{p.component} ({p.source}{inferred}) is {term_id}{why}")
        return UseVerdict(
            worst,
            tuple(dict.fromkeys(reasons)),
            tuple(dict.fromkeys(obligations)),
            tuple(chain),
        )
