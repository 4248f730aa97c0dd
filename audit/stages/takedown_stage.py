"""The takedown stage of a run: blocklisted and pending items found in the dataset."""

from __future__ import annotations

from audit import engines
from audit.results import TakedownResult
from audit.stages.context import StageContext, cached
from audit.store import stagecache


def takedown(ctx: StageContext) -> TakedownResult:
    def compute() -> TakedownResult:
        from audit.takedown import blocklist_findings
        from audit.takedown_units import MatchRecords, match_here

        match: MatchRecords = match_here
        if engines.is_spark(ctx.config.engine):
            from audit.engines.spark.takedown_batches import SparkMatching

            match = SparkMatching(ctx.config.engine, ctx.findings_dir("takedown"))
        return blocklist_findings(
            ctx.config,
            ctx.store,
            datasets=[ctx.dataset.name],
            progress=ctx.progress,
            match_records=match,
        )

    return cached(ctx, "takedown", _takedown_key(ctx), compute, TakedownResult)


def _takedown_key(ctx: StageContext) -> str | None:
    """The dataset's files and the ledger's position; never reused when image hashes are wanted.

    Hash matching reads the image files themselves, which no file list here stands for.
    """
    from audit.takedown import ledger_position

    ledger = ledger_position(ctx.config, ctx.store)  # (events, head hash, content-hash keys)
    if ledger[-1]:
        return None
    ds = ctx.dataset
    return stagecache.make_key(
        "takedown",
        ds.name,
        files=[ctx.path(p) for p in (ds.chat, ds.metadata) if p],
        settings=[ds],
        extra=list(ledger),
    )
