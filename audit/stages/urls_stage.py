"""The URL stage of a run: the dataset's source URLs (metadata, CC-3M TSV or COCO join) probed."""

from __future__ import annotations

from audit import engines
from audit.results import UrlsResult
from audit.stages.context import StageContext, StageSkipped


def urls(ctx: StageContext) -> UrlsResult:
    ds = ctx.dataset
    if not (ds.metadata or ds.url_tsv or (ds.chat and ds.coco_annotations)):
        raise StageSkipped("no metadata file, URL TSV or COCO annotation file configured")
    if engines.is_spark(ctx.config.engine):
        from audit.engines.spark.urls import urls_stage as on_spark

        return on_spark(ds, ctx.config, store=ctx.store, findings_dir=ctx.findings_dir("urls"))
    from audit.probes.urls import urls_stage

    return urls_stage(ds, ctx.config, progress=ctx.progress, store=ctx.store)
