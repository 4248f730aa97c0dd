"""The licence stage (DESIGN.md stage 3): provenance and per-use verdicts for whole files.

`license_files` is the one library call behind `llava-audit license`, and `license_dataset` the one
the runner calls per configured dataset. Both stream records through the pure evaluator, so memory
stays flat however many records carry obligations; the attribution export is written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import msgspec

from audit.config import Config, DatasetConfig, LicenseConfig
from audit.errors import UsageError
from audit.licensing.attribution import AttributionWriter
from audit.licensing.inputs import licence_inputs, opt_out_urls, record_views
from audit.licensing.policy import load_policy
from audit.licensing.provenance import derive
from audit.licensing.totals import FileTally, dataset_stats
from audit.licensing.verdicts import USES, Evaluator, LicenceContext
from audit.loaders.records import LoadedFile, load_records
from audit.models import NoProgress, Progress
from audit.results import LicenseResult
from audit.store import Store

_BATCH = 10_000


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
) -> LicenseResult:
    """Verdicts for every record of ``paths`` under the declared use(s); forbidden records are errors.

    ``metadata`` joins source URLs into chat files (LCS source inference, opt-outs); ``source``
    names the policy source of records the tool cannot identify from their image path;
    ``attribution_out`` (``.md`` or JSON Lines) receives each record's obligations and credits;
    ``store`` gives the URL probe's opt-out signals. ``verdicts_out`` receives each record's
    verdict for the first declared use by file position (the expectations table; last file wins).
    ``vg_image_data`` (Visual Genome image_data.json) resolves VG and GQA images taken from COCO.
    ``preloaded`` is one of ``paths`` already loaded (the run's shared load), so it is not read twice.
    """
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
    writer = AttributionWriter(attribution_out, uses[0]) if attribution_out else None
    with writer or nullcontext():
        for path in paths:
            if preloaded is not None and preloaded.path == Path(path):
                loaded = preloaded
            else:
                loaded = load_records(Path(path), kind, dataset=dataset)
            tally = FileTally(dataset or loaded.path.stem, str(path), uses, coco_joined=coco_joined)
            if store is not None:  # opt-out signals of this file's URLs, from the URL probe
                opt_outs = opt_out_urls(store, (v.url for v in record_views(loaded, urls) if v.url))
                ctx = replace(base_ctx, opt_outs=opt_outs)
            else:
                ctx = base_ctx
            _license_file(loaded, urls, ctx, source, tally, writer, verdicts_out, progress)
            findings += tally.finish(policy.card_for(loaded.kind))
            tallies.append((tally, loaded.kind))
    totals = dataset_stats(tallies, uses, image_origin, settings, coco_joined)
    return msgspec.structs.replace(totals, findings=findings)


def _license_file(
    loaded: LoadedFile,
    urls: dict[str, str] | None,
    ctx: LicenceContext,
    source: str | None,
    tally: FileTally,
    writer: AttributionWriter | None,
    verdicts_out: dict[int, str] | None,
    progress: Progress,
) -> None:
    """Stream one file's records: provenance, verdicts, totals, attribution, per-record verdicts."""
    policy = ctx.policy
    evaluator = Evaluator(ctx)
    components = {name: tuple(s.components) for name, s in policy.sources.items()}
    declared = tally.uses[0]
    progress.start(f"licences {loaded.path.name}", len(loaded.records))
    n = 0
    for n, view in enumerate(record_views(loaded, urls), 1):
        prov = derive(
            view,
            kind=loaded.kind,
            hosts=policy.lcs.hosts,
            lcs_fallback=policy.lcs.fallback,
            source_components=components,
            source=source,
        )
        rec = evaluator.assess(prov)
        tally.add(rec)
        if verdicts_out is not None:
            verdicts_out[view.position] = rec.judgement.verdicts[declared].verdict.value
        if writer is not None:
            writer.add(tally.dataset, tally.file, rec)
        if n % _BATCH == 0:
            progress.advance(_BATCH)
    progress.advance(n % _BATCH)
    progress.finish()


def license_dataset(
    ds: DatasetConfig,
    config: Config,
    *,
    progress: Progress | None = None,
    store: Store | None = None,
    verdicts_out: dict[int, str] | None = None,
    uses: Sequence[str] | None = None,
    chat_loaded: LoadedFile | None = None,
) -> LicenseResult:
    """The runner's entry: the dataset's chat file (or metadata file alone) under the configured use.

    ``uses`` replaces the declared uses of `[use]` (the CLI's --use); ``chat_loaded`` is the chat
    file as the run already loaded it for other stages.
    """
    if uses is None:
        uses = [config.use.purpose]
        if config.use.redistribute_images:
            uses.append("redistribute-images")
        if config.use.redistribute_annotations:
            uses.append("redistribute-annotations")
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
    )


def _uses(use: str | Sequence[str]) -> tuple[str, ...]:
    uses = (use,) if isinstance(use, str) else tuple(use)
    bad = [u for u in uses if u not in USES]
    if bad or not uses:
        raise UsageError(f"unknown use {', '.join(bad) or '(none)'} (known: {', '.join(USES)})")
    return tuple(dict.fromkeys(uses))
