"""The structure stage of a run: the dataset's chat and metadata files, cross-checked."""

from __future__ import annotations

from audit.results import StructureResult
from audit.stages.context import StageContext, StageSkipped, cached
from audit.store import stagecache


def structure(ctx: StageContext) -> StructureResult:
    """Chat and metadata files together, so the cross-file checks run too."""
    ds = ctx.dataset
    paths = [ctx.path(p) for p in (ds.chat, ds.metadata) if p]
    if not paths:
        raise StageSkipped("no conversation or metadata file configured")

    def compute() -> StructureResult:
        from audit.structure import check_files

        # one kind for both files would mislabel the metadata file: detect each then
        kind = None if ds.kind == "auto" or len(paths) > 1 else ds.kind
        return check_files(paths, kind=kind, dataset=ds.name, progress=ctx.progress)

    key = stagecache.make_key("structure", ds.name, files=paths, settings=[ds])
    return cached(ctx, "structure", key, compute, StructureResult)
