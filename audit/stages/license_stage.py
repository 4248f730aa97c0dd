"""The licence stage of a run: verdicts per declared use, with the URL probe's opt-out signals."""

from __future__ import annotations

from pathlib import Path

import msgspec

from audit import engines
from audit.results import LicenseResult, UrlsResult
from audit.stages.context import StageContext, StageSkipped, cached
from audit.store import stagecache


def license_(ctx: StageContext) -> LicenseResult:
    ds = ctx.dataset
    if not (ds.chat or ds.metadata):
        raise StageSkipped("no conversation or metadata file configured")
    urls = ctx.upstream.urls

    def compute() -> LicenseResult:
        from audit.export.licence_table import LicenceTable
        from audit.licensing import license_dataset
        from audit.loaders.shards import is_shard_set

        if engines.is_spark(ctx.config.engine):
            return _on_spark(ctx)
        verdicts: dict[int, str] = {}
        table = LicenceTable()  # each record's licences and verdicts, for `export`
        # the load other stages use; a shard set is read shard by shard, never all at once
        shared = ds.chat is not None and not is_shard_set(ctx.path(ds.chat))
        result = license_dataset(
            ds,
            ctx.config,
            progress=ctx.progress,
            store=ctx.store,
            verdicts_out=verdicts,
            chat_loaded=ctx.chat_file() if shared else None,
            verdict_sink=table,
        )
        return msgspec.structs.replace(
            result, record_verdicts=verdicts, record_licences=table.build()
        )

    return cached(ctx, "license", license_key(ctx, urls), compute, LicenseResult)


def _on_spark(ctx: StageContext) -> LicenseResult:
    """Verdicts in Spark executors; the findings to the run's table. No per-record licence table
    for `export` (it asks for a local run); the verdicts for the expectations stay in a Parquet
    table in the run folder, never on the driver."""
    from audit.engines.spark.licence_batches import SparkLicensing
    from audit.licensing import license_dataset

    table = str(ctx.work_dir / "verdicts" / Path(ctx.findings_dir("license")).name)
    job = SparkLicensing(ctx.config.engine, verdicts_table=table)
    result = license_dataset(
        ctx.dataset,
        ctx.config,
        progress=ctx.progress,
        store=ctx.store,  # not the run's shared load: executors read the records
        assess_file=job,
    )
    result = job.publish(result, ctx.findings_dir("license"))
    return msgspec.structs.replace(result, record_verdicts_table=table)


def license_key(ctx: StageContext, urls: UrlsResult | None) -> str | None:
    """Files, policy and settings, plus the URL opt-outs the licence stage reads from the store.

    The opt-outs are known from this run's URL stage; when it failed the store's state is
    unknown, so nothing is reused.
    """
    ds, config = ctx.dataset, ctx.config
    if ds.metadata and urls is None:
        return None
    lic = config.license
    files = (ds.chat, ds.metadata, ds.coco_annotations, lic.policy, lic.vg_image_data)
    return stagecache.make_key(
        "license",
        ds.name,
        files=[ctx.path(p) for p in files if p],
        settings=[ds, config.use, config.license],
        extra=[stagecache.digest(urls.opt_outs if urls else [])],
    )
