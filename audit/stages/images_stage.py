"""The images stage of a run: the chat file's image paths probed under the dataset's roots.

A shard set is read a shard at a time, never loaded whole: the local engine keeps only each
shard's image references (as it keeps a single file's), and on Spark each executor reads its own
shards from a descriptor (the licence stage's :class:`RecordSource` and reader), so no record or
reference passes through the driver. A single file on the local engine comes from the run's one
shared load (the expectations stage reads it too).
"""

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
    from audit.licensing.inputs import load_unit, record_sources
    from audit.loaders.records import refs_of
    from audit.loaders.shards import is_shard_set
    from audit.probes.images import gc_paused, probe_dataset

    path = ctx.path(ds.chat)
    spark = engines.is_spark(ctx.config.engine)
    if not spark and not is_shard_set(path):
        refs = refs_of(ctx.chat_file())
        return probe_dataset(ds, ctx.config, store=ctx.store, progress=ctx.progress, refs=refs)
    units, kind = record_sources(path, None if ds.kind == "auto" else ds.kind, ds.name)
    ctx.kind = ctx.kind or kind
    if spark:
        from audit.engines.spark.images import probe_dataset as on_spark

        return on_spark(ds, ctx.config, units, findings_dir=ctx.findings_dir("images"))
    with gc_paused():  # one shard's records at a time; their references (findings name the shard)
        refs = [ref for unit in units for ref in refs_of(load_unit(unit))]
    return probe_dataset(ds, ctx.config, store=ctx.store, progress=ctx.progress, refs=refs)
