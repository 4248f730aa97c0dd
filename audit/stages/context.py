"""What every stage adapter shares: its context, the "does not apply" signal, the stage cache.

A stage adapter is ``(StageContext) -> StageResult``. The context carries the dataset and config,
the one shared load of the conversation file, and :class:`Upstream`: the typed results of the
stages that ran before, which the runner records there after each stage. A later stage reads
those as values (the licence stage the URL probe's opt-outs, the expectations stage the probes'
outcomes and the licence verdicts), never through a shared dictionary.

The deterministic stages go through :func:`cached`: with every input unchanged since the last run
their stored result is reused (audit.store.stagecache), so a nightly re-run pays only for the
probes' cache look-ups, and never imports pandas or GX.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import msgspec

from audit.config import Config, DatasetConfig
from audit.findings import Finding
from audit.models import Progress
from audit.results import (
    AnyStageResult,
    ImagesResult,
    LicenseResult,
    StageResult,
    StructureResult,
    TakedownResult,
    UrlsResult,
)
from audit.store import Store, stagecache

if TYPE_CHECKING:
    from audit.loaders.records import LoadedFile

R = TypeVar("R", bound=AnyStageResult)
S = TypeVar("S", bound=StageResult)


class StageSkipped(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The stage does not apply to this dataset; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Upstream:
    """The results of the stages that ran (status ok) on this dataset so far, by type."""

    structure: StructureResult | None = None
    images: ImagesResult | None = None
    urls: UrlsResult | None = None
    license: LicenseResult | None = None
    takedown: TakedownResult | None = None

    def record(self, result: StageResult) -> None:
        """Keep ``result`` for the stages after it (a result type not listed here is not passed on)."""
        if isinstance(result, StructureResult):
            self.structure = result
        elif isinstance(result, ImagesResult):
            self.images = result
        elif isinstance(result, UrlsResult):
            self.urls = result
        elif isinstance(result, LicenseResult):
            self.license = result
        elif isinstance(result, TakedownResult):
            self.takedown = result


@dataclass
class StageContext:
    """What a stage needs: the dataset, the whole config, the store, and earlier stages' results."""

    config: Config
    dataset: DatasetConfig
    store: Store
    progress: Progress
    work_dir: Path  # the run's staging folder; published as reports/<run-id>/
    upstream: Upstream = field(default_factory=Upstream)
    kind: str | None = None  # detected kind when the config says "auto"
    reused: set[str] = field(default_factory=set)  # stages whose stored result was reused
    chat: LoadedFile | None = None  # the conversation file, once loaded (see chat_file)

    def path(self, value: str) -> Path:
        return self.config.path(value)

    def findings_dir(self, stage: str) -> str:
        """Where a stage run on Spark writes this dataset's findings table (partitioned by
        dataset and code): ``findings/<stage>/<dataset>/`` in the run folder, one per dataset
        since a table is written whole."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.dataset.name)
        return str(self.work_dir / "findings" / stage / safe)

    def chat_file(self) -> LoadedFile:
        """The dataset's conversation file, loaded once per run for every stage that needs it."""
        from audit.loaders.records import load_records

        if self.chat is None:
            assert self.dataset.chat is not None
            kind = None if self.dataset.kind == "auto" else self.dataset.kind
            self.chat = load_records(self.path(self.dataset.chat), kind, dataset=self.dataset.name)
            self.kind = self.chat.kind
        return self.chat


class OutsideState(Protocol[R]):
    """What a stored result relies on outside the store (e.g. Data Docs pages in a cache folder)."""

    def state(self) -> str | None: ...

    def restore(self, result: R) -> R | None: ...


def cached(
    ctx: StageContext,
    stage: str,
    key: str | None,
    compute: Callable[[], R],
    result_type: type[R],
    *,
    outside: OutsideState[R] | None = None,
) -> R:
    """The stored result of ``stage`` when its inputs' ``key`` matches, else ``compute()``, stored.

    A reused result restores what the stage found out on the way (the detected kind) and is
    noted in ``ctx.reused`` for the report.
    """
    entry = stagecache.load(ctx.store, stage, ctx.dataset.name, key) if key else None
    if entry is not None and isinstance(entry.result, result_type):
        reused: R | None = entry.result
        if outside is not None:
            reused = outside.restore(entry.result) if entry.extra == outside.state() else None
        if reused is not None:
            if entry.kind and ctx.kind is None:
                ctx.kind = entry.kind
            ctx.reused.add(stage)
            return reused
    result = compute()
    if key is not None and result.finding_totals is None:  # a table in this run's folder only
        extra = outside.state() if outside is not None else None
        entry = stagecache.CachedStage(result=result, kind=ctx.kind, extra=extra)
        stagecache.save(ctx.store, stage, ctx.dataset.name, key, entry)
    return result


def whole(result: S) -> S:
    """``result`` with every finding: a stage run on Spark kept only examples, so the rest are
    read back from its table (the expectation suite and the report's recovery counts join
    every record's findings on this machine, as on the local engine)."""
    totals = result.finding_totals
    if totals is None:
        return result
    from audit.engines.spark.findingtable import read_back

    found = sorted(read_back(totals) if totals.total else [], key=_record_order)
    return msgspec.structs.replace(result, findings=found, finding_totals=None)


def _record_order(f: Finding) -> tuple[str, bool, int, str, str]:
    return (f.file, f.index is None, f.index or 0, f.code, f.message)
