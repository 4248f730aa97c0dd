"""The images stage of a run: the chat file's image paths probed under the dataset's roots."""

from __future__ import annotations

from audit import engines
from audit.results import ImagesResult
from audit.stages.context import StageContext, StageSkipped


def images(ctx: StageContext) -> ImagesResult:
    ds = ctx.dataset
    if not ds.images:
        raise StageSkipped("no image roots configured")
    if not ds.chat:
        raise StageSkipped("no conversation file to take image paths from")
    from audit.loaders.records import refs_of
    from audit.probes.images import probe_dataset

    # from the shared load, so the chat file is parsed once for images and expectations
    refs = refs_of(ctx.chat_file())
    if engines.is_spark(ctx.config.engine):
        from audit.engines.spark.images import probe_dataset as on_spark

        return on_spark(ds, ctx.config, refs, findings_dir=ctx.findings_dir("images"))
    return probe_dataset(ds, ctx.config, store=ctx.store, progress=ctx.progress, refs=refs)
