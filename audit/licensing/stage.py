"""The licence stage (DESIGN.md stage 3): provenance and per-use verdicts for whole files.

`license_files` is the one library call behind `llava-audit license`, and `license_dataset` the one
the runner calls per configured dataset. Both stream records through the pure evaluator, so memory
stays flat however many records carry obligations; the verdict rows go to a sink (the CLI's
`--verdicts` file) and the attribution export is written atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import msgspec

from audit.config import Config, DatasetConfig, LicenseConfig
from audit.errors import UsageError
from audit.licensing.attribution import AttributionWriter
from audit.licensing.evidence import RowBuilder, VerdictRow
from audit.licensing.inputs import (
    derivatives,
    licence_inputs,
    opt_out_urls,
    record_views,
    tsv_views,
)
from audit.licensing.policy import load_policy
from audit.licensing.provenance import RecordView, derive
from audit.licensing.totals import FileTally, dataset_stats
from audit.licensing.verdicts import (
    ACTIONS,
    USES,
    Evaluator,
    LicenceContext,
    RecordLicence,
    use_key,
)
from audit.loaders.records import LoadedFile, load_records
from audit.models import NoProgress, Progress
from audit.results import LicenseResult
from audit.store import Store

_BATCH = 10_000


class FileAssessor(Protocol):
    """Tallies every record of one file into ``tally`` (and ``verdicts_out``): the local engine's
    loop below, or the Spark engine's executors running :func:`assessor` on record batches."""

    def __call__(
        self,
        views: Iterator[RecordView],
        kind: str,
        ctx: LicenceContext,
        source: str | None,
        tally: FileTally,
        verdicts_out: dict[int, str] | None,
        progress: Progress,
    ) -> None: ...


def license_files(
    paths: Sequence[str | Path],
    *,
    use: str | Sequence[str] = "research",
    image_origin: str = "source",
    coco_annotations: str | Path | None = None,
    kind: str | None = None,
    dataset: str | None = None,
    settings: LicenseConfig | None = None,
    store: Store | None = None,
    progress: Progress | None = None,
    metadata: str | Path | None = None,
    source: str | None = None,
    attribution_out: str | Path | None = None,
    verdicts_out: dict[int, str] | None = None,
    vg_image_data: str | Path | None = None,
    preloaded: LoadedFile | None = None,
    verdict_sink: Callable[[VerdictRow], None] | None = None,
    image_roots: Sequence[str | Path] = (),
    assess_file: FileAssessor | None = None,
) -> LicenseResult:
    """Verdicts for every record of ``paths`` under the declared use(s); forbidden records are errors.

    A use is ``purpose/action`` (``commercial/redistribute-images``, see :data:`USES`); the older
    names ``research``, ``commercial``, ``redistribute-images`` and ``redistribute-annotations``
    are accepted (the last two for research). A ``.tsv`` path is the headerless CC-3M TSV
    (caption<TAB>url): each line is a CC-3M record.

    ``metadata`` joins source URLs into chat files (LCS source inference, opt-outs); ``source``
    names the policy source of records the tool cannot identify from their image path;
    ``attribution_out`` (``.md`` or JSON Lines) receives each record's obligations and credits;
    ``store`` gives the URL probe's opt-out signals. ``verdicts_out`` receives each record's
    verdict for the first declared use by file position (the expectations table; last file wins).
    ``vg_image_data`` (Visual Genome image_data.json) resolves VG and GQA images taken from COCO.
    ``preloaded`` is one of ``paths`` already loaded (the run's shared load), so it is not read twice.
    ``verdict_sink`` receives one typed :class:`VerdictRow` per record and declared use, with its
    chain of evidence. ``image_roots`` (folders or zips) let the stage compare COCO images with
    the sizes the annotation file records: a resized copy is a derivative (``license.derivative``).
    ``assess_file`` tallies each file's records elsewhere (the Spark engine; then no attribution
    or verdict rows, which are written record by record here).
    """
    if assess_file is not None and (attribution_out or verdict_sink):
        raise UsageError(
            "the attribution export and the verdict rows are written record by record on this "
            "machine: use --engine local for --attribution and --verdicts"
        )
    settings = settings or LicenseConfig()
    uses = _uses(use)
    policy = load_policy(settings.policy)
    if image_origin not in policy.image_origins:
        known = ", ".join(policy.image_origins)
        raise UsageError(f"unknown image origin {image_origin!r} (known: {known})")
    if source is not None and source not in policy.sources:
        raise UsageError(f"unknown source {source!r} (policy sources: {', '.join(policy.sources)})")
    progress = progress or NoProgress()
    base_ctx, urls = licence_inputs(
        policy,
        settings,
        image_origin,
        coco_annotations=coco_annotations,
        metadata=metadata,
        vg_image_data=vg_image_data,
    )
    coco_joined = base_ctx.coco_images is not None
    tallies: list[tuple[FileTally, str]] = []
    findings = []
    writer = AttributionWriter(attribution_out, policy) if attribution_out else None
    rows = RowBuilder(policy, uses) if verdict_sink is not None else None
    with writer or nullcontext():
        for path in paths:
            views, file_kind, size = _views(Path(path), kind, dataset, urls, preloaded)
            tally = FileTally(dataset or Path(path).stem, str(path), uses, coco_joined=coco_joined)
            ctx = base_ctx
            if store is not None:  # opt-out signals of this file's URLs, from the URL probe
                opt_outs = opt_out_urls(store, (v.url for v in views() if v.url))
                ctx = replace(ctx, opt_outs=opt_outs)
            if image_roots and base_ctx.coco_sizes:
                found = derivatives(views(), base_ctx.coco_sizes, image_roots, store)
                ctx = replace(ctx, modified=found)
            progress.start(f"licences {Path(path).name}", size)
            if assess_file is not None:
                assess_file(views(), file_kind, ctx, source, tally, verdicts_out, progress)
            else:
                _license_file(
                    views(),
                    file_kind,
                    ctx,
                    source,
                    tally,
                    writer,
                    rows,
                    verdict_sink,
                    verdicts_out,
                    progress,
                )
            findings += tally.finish(policy.card_for(file_kind))
            tallies.append((tally, file_kind))
    totals = dataset_stats(tallies, uses, image_origin, settings, coco_joined)
    return msgspec.structs.replace(totals, findings=findings)


def _views(
    path: Path,
    kind: str | None,
    dataset: str | None,
    urls: dict[str, str] | None,
    preloaded: LoadedFile | None,
) -> tuple[Callable[[], Iterator[RecordView]], str, int]:
    """The file's records as views (re-iterable), its kind, and its record count."""
    if path.suffix.lower() == ".tsv":  # the CC-3M TSV: caption<TAB>url, one record per line
        tsv = list(tsv_views(path))
        return lambda: iter(tsv), "cc3m-tsv", len(tsv)
    if preloaded is not None and preloaded.path == path:
        loaded = preloaded
    else:
        loaded = load_records(path, kind, dataset=dataset)
    return lambda: record_views(loaded, urls), loaded.kind, len(loaded.records)


def _license_file(
    views: Iterator[RecordView],
    kind: str,
    ctx: LicenceContext,
    source: str | None,
    tally: FileTally,
    writer: AttributionWriter | None,
    rows: RowBuilder | None,
    verdict_sink: Callable[[VerdictRow], None] | None,
    verdicts_out: dict[int, str] | None,
    progress: Progress,
) -> None:
    """Stream one file's records: provenance, verdicts, totals, attribution, verdict rows."""
    assess = assessor(ctx, kind, source)
    declared = tally.uses[0]
    n = 0
    for n, view in enumerate(views, 1):
        rec = assess(view)
        tally.add(rec)
        if verdicts_out is not None:
            verdicts_out[view.position] = rec.judgement.verdicts[declared].verdict.value
        if writer is not None:
            writer.add(tally.file, rec)
        if rows is not None and verdict_sink is not None:
            for row in rows.rows(tally.file, rec):
                verdict_sink(row)
        if n % _BATCH == 0:
            progress.advance(_BATCH)
    progress.advance(n % _BATCH)
    progress.finish()


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


def license_dataset(
    ds: DatasetConfig,
    config: Config,
    *,
    progress: Progress | None = None,
    store: Store | None = None,
    verdicts_out: dict[int, str] | None = None,
    uses: Sequence[str] | None = None,
    chat_loaded: LoadedFile | None = None,
    verdict_sink: Callable[[VerdictRow], None] | None = None,
    assess_file: FileAssessor | None = None,
) -> LicenseResult:
    """The runner's entry: the dataset's chat file (or metadata file alone) under the configured use.

    ``uses`` replaces the declared uses of `[use]` (the CLI's --purpose/--action); ``chat_loaded``
    is the chat file as the run already loaded it for other stages; ``verdict_sink`` receives each
    record's typed verdict rows (the export's licence table). COCO images found in the
    dataset's image roots are checked against the annotation file's sizes (derivatives).
    """
    if uses is None:
        uses = [use_key(config.use.purpose, a) for a in config.use.actions()]
    chat = config.path(ds.chat) if ds.chat else None
    meta = config.path(ds.metadata) if ds.metadata else None
    paths = [chat] if chat else [meta] if meta else []
    if not paths:
        return LicenseResult(skipped="no chat or metadata file")
    policy_path = config.path(config.license.policy) if config.license.policy else None
    settings = msgspec.structs.replace(
        config.license, policy=str(policy_path) if policy_path else None
    )
    return license_files(
        paths,
        use=uses,
        image_origin=ds.image_origin,
        coco_annotations=config.path(ds.coco_annotations) if ds.coco_annotations else None,
        kind=None if ds.kind == "auto" else ds.kind,
        dataset=ds.name,
        settings=settings,
        store=store,
        progress=progress,
        metadata=meta if chat and meta else None,
        source=ds.source,
        verdicts_out=verdicts_out,
        vg_image_data=config.path(settings.vg_image_data) if settings.vg_image_data else None,
        preloaded=chat_loaded,
        image_roots=[config.path(r) for r in ds.images],
        verdict_sink=verdict_sink,
        assess_file=assess_file,
    )


#: the older single-word uses: research and commercial training, and redistribution for research
LEGACY_USES = {
    "research": "research/train",
    "commercial": "commercial/train",
    **{action: f"research/{action}" for action in ACTIONS if action != "train"},
}


def _uses(use: str | Sequence[str]) -> tuple[str, ...]:
    uses = tuple(LEGACY_USES.get(u, u) for u in ((use,) if isinstance(use, str) else use))
    bad = [u for u in uses if u not in USES]
    if bad or not uses:
        raise UsageError(f"unknown use {', '.join(bad) or '(none)'} (known: {', '.join(USES)})")
    return tuple(dict.fromkeys(uses))
