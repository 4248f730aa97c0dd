"""One unit of the licence stage's reading, tallied: a whole file, or one shard of a set.

Both engines tally the same units through :func:`assessed`: the local engine one after another
in this process, the Spark engine one per executor task (the driver sends only the
:class:`RecordSource` descriptors and the broadcast :class:`InputJob`, never records). A unit's
per-record findings name the unit (the shard, and the record's position within it); the units'
tallies merge into the input's (:meth:`FileTally.merge`), so totals are the same either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from audit.licensing.inputs import RecordSource, derivatives, opt_out_urls, read_unit
from audit.licensing.provenance import RecordView, derive
from audit.licensing.totals import FileTally
from audit.licensing.verdicts import Evaluator, LicenceContext, RecordLicence
from audit.loaders.records import LoadedFile
from audit.store import Store


@dataclass(frozen=True)
class InputJob:
    """What every unit of one input needs (picklable: the Spark engine broadcasts it once)."""

    ctx: LicenceContext
    kind: str
    source: str | None
    dataset: str
    file: str  # the input as named: its tally's file
    uses: tuple[str, ...]
    coco_joined: bool
    urls: dict[str, str] | None  # the metadata join: record id or image -> source URL
    image_roots: tuple[str, ...]  # for derivatives (COCO images resized)
    metadata: str | None = None  # a metadata file the assessor joins itself (``urls`` is None)

    def tally(self, file: str | None = None) -> FileTally:
        """An empty tally of the input, or of one of its units (``file``)."""
        return FileTally(self.dataset, file or self.file, self.uses, coco_joined=self.coco_joined)


@dataclass
class UnitTally:
    """A unit's tally and its elements (records and unusable ones: the next shard's offset)."""

    tally: FileTally
    elements: int


def assessed(
    job: InputJob, unit: RecordSource, store: Store | None, preloaded: LoadedFile | None = None
) -> tuple[UnitTally, int, Iterator[tuple[RecordView, RecordLicence]]]:
    """Read ``unit``: its tally, its record count, and its records' licences in order, each
    added to the tally as it is yielded (the tally is complete once they are all consumed).

    With a ``store`` the unit's URLs get the URL probe's opt-outs from it; without one the
    context's own (the Spark engine gives every opted-out URL the store knows).
    """
    views, count, elements = read_unit(unit, job.urls, preloaded)
    ctx = job.ctx
    if store is not None:  # opt-out signals of this unit's URLs, from the URL probe
        ctx = replace(ctx, opt_outs=opt_out_urls(store, (v.url for v in views() if v.url)))
    if job.image_roots and ctx.coco_sizes:
        roots = [Path(r) for r in job.image_roots]
        ctx = replace(ctx, modified=derivatives(views(), ctx.coco_sizes, roots, store))
    assess = assessor(ctx, job.kind, job.source)
    done = UnitTally(job.tally(unit.path), elements)

    def licences() -> Iterator[tuple[RecordView, RecordLicence]]:
        for view in views():
            rec = assess(view)
            done.tally.add(rec)
            yield view, rec

    return done, count, licences()


def assessor(
    ctx: LicenceContext, kind: str, source: str | None
) -> Callable[[RecordView], RecordLicence]:
    """One record's licence: its provenance, then its verdict per use (cached per judgement)."""
    policy = ctx.policy
    evaluator = Evaluator(ctx)
    components = {name: tuple(s.components) for name, s in policy.sources.items()}

    def assess(view: RecordView) -> RecordLicence:
        prov = derive(
            view,
            kind=kind,
            hosts=policy.lcs.hosts,
            lcs_fallback=policy.lcs.fallback,
            source_components=components,
            source=source,
        )
        return evaluator.assess(prov)

    return assess
