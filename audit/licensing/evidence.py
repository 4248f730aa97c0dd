"""Each verdict's chain of evidence, as typed rows (`license --verdicts`, the report, the gate). Pure.

A row is one record under one use (purpose and action): its verdict, licences and obligations, and
for every part the action touches, each policy term applied to it with the source entry that gave
the part its licence, and the term's quote and public URL. Rows are msgspec Structs, so a JSON
Lines file of them decodes back into the same type (:func:`decode_row`).
"""

from __future__ import annotations

import msgspec

from audit.licensing.policy import Evidence, Policy
from audit.licensing.verdicts import Judgement, Link, RecordLicence, split_use


class Citation(msgspec.Struct, frozen=True, kw_only=True):
    """A policy entry, with the quote and the public URL it rests on."""

    entry: str  # "licenses.CC-BY-4.0", "restrictions.LicenseRef-OpenAI-ToU", "sources.coco"
    quote: str
    url: str


class EvidenceLink(msgspec.Struct, frozen=True, kw_only=True):
    """One policy term applied to one part of the record, and why the part has that licence."""

    part: str  # the component: image, source_annotation, generated_text, ...
    source: str  # the policy source the part comes from
    inferred: bool  # the source was inferred (URL host, prompt format), not read
    license: str  # the part's licence id (SPDX or LicenseRef-)
    via: str  # how that licence was resolved, when not from the source entry (COCO licence id)
    term: str  # the licence or restriction applied
    verdict: str
    reason: str
    source_entry: Citation | None  # the source entry naming the part's licence
    policy_entry: Citation  # the term's entry: its quote and public URL


class VerdictRow(msgspec.Struct, frozen=True, kw_only=True):
    """One record under one use: what `license --verdicts` writes, one JSON object per line."""

    file: str
    index: int  # 0-based position of the record in its file
    record_id: str | None
    purpose: str
    action: str
    verdict: str
    licenses: list[str]
    obligations: list[str]
    evidence: list[EvidenceLink]


_DECODER = msgspec.json.Decoder(VerdictRow)


def decode_row(line: bytes | str) -> VerdictRow:
    """One line of a verdicts file, as the typed row (a malformed line raises msgspec's error)."""
    return _DECODER.decode(line)


def primary_evidence(evidence: list[Evidence]) -> Evidence | None:
    """The entry's first evidence with a public URL: what a verdict's evidence chain cites."""
    return next((e for e in evidence if e.url), None)


def _cite(entry: str, evidence: list[Evidence], image: bool = False) -> Citation | None:
    """The entry's public evidence; for an image part, the quote about images when there is one."""
    about_images = [e for e in evidence if e.url and "image" in e.quote.lower()] if image else []
    found = about_images[0] if about_images else primary_evidence(evidence)
    return Citation(entry=entry, quote=found.quote, url=found.url) if found else None


class RowBuilder:
    """Verdict rows for records judged against one policy; each judgement's chain built once."""

    def __init__(self, policy: Policy, uses: tuple[str, ...]) -> None:
        self.policy = policy
        self.uses = uses
        self._chains: dict[tuple[int, str], list[EvidenceLink]] = {}
        self._keep: list[Judgement] = []  # keeps ids in the chain cache valid

    def rows(self, file: str, rec: RecordLicence) -> list[VerdictRow]:
        prov = rec.provenance
        out = []
        for use in self.uses:
            purpose, action = split_use(use)
            uv = rec.verdicts[use]
            out.append(
                VerdictRow(
                    file=file,
                    index=prov.position,
                    record_id=prov.record_id,
                    purpose=purpose,
                    action=action,
                    verdict=uv.verdict.value,
                    licenses=list(rec.licenses),
                    obligations=list(uv.obligations),
                    evidence=self._chain(rec.judgement, use),
                )
            )
        return out

    def _chain(self, judgement: Judgement, use: str) -> list[EvidenceLink]:
        key = (id(judgement), use)
        chain = self._chains.get(key)
        if chain is None:
            chain = self._chains[key] = [self._link(link) for link in judgement.verdicts[use].chain]
            self._keep.append(judgement)
        return chain

    def _link(self, link: Link) -> EvidenceLink:
        part = link.part
        table = "licenses" if link.term in self.policy.licenses else "restrictions"
        term = self.policy.term(link.term)
        source = self.policy.sources.get(part.source)
        return EvidenceLink(
            part=part.component,
            source=part.source,
            inferred=part.inferred,
            license=part.license,
            via=part.via,
            term=link.term,
            verdict=link.verdict.value,
            reason=link.reason,
            source_entry=_cite(f"sources.{part.source}", source.evidence, part.component == "image")
            if source
            else None,
            policy_entry=_cite(f"{table}.{link.term}", term.evidence)
            or Citation(entry=f"{table}.{link.term}", quote="", url=""),
        )
