"""The stages as the runner sees them: one function per stage, ``(StageContext) -> StageResult``.

Each adapter maps the dataset's config onto one stage module's public call and passes along what
earlier stages produced (e.g. URL probe results feed the licence stage's opt-out signals). A stage
that does not apply to a dataset (no images configured, no URL source) raises :class:`StageSkipped`
with the reason, which the report shows instead of a silent gap. Stage modules are imported inside
the adapters: `llava-audit --help` must not pay for pandas, polars and Great Expectations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from audit.config import Config, DatasetConfig
from audit.findings import Finding
from audit.models import ImageRef, Progress, StageResult
from audit.store import Store


class StageSkipped(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The stage does not apply to this dataset; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class StageContext:
    """What a stage needs: the dataset, the whole config, the store, and earlier stages' results."""

    config: Config
    dataset: DatasetConfig
    store: Store
    progress: Progress
    work_dir: Path  # the run's staging folder; published as reports/<run-id>/
    results: dict[str, StageResult] = field(default_factory=dict)
    kind: str | None = None  # detected kind when the config says "auto"
    shared: dict[str, Any] = field(default_factory=dict)  # e.g. loaded records, probe outcomes

    def path(self, value: str) -> Path:
        return self.config.path(value)


def structure(ctx: StageContext) -> StageResult:
    """Chat and metadata files together, so the cross-file checks run too."""
    ds = ctx.dataset
    paths = [ctx.path(p) for p in (ds.chat, ds.metadata) if p]
    if not paths:
        raise StageSkipped("no conversation or metadata file configured")
    from audit.structure import check_files

    # one kind for both files would mislabel the metadata file: detect each then
    kind = None if ds.kind == "auto" or len(paths) > 1 else ds.kind
    return check_files(paths, kind=kind, dataset=ds.name, progress=ctx.progress)


def images(ctx: StageContext) -> StageResult:
    ds = ctx.dataset
    if not ds.images:
        raise StageSkipped("no image roots configured")
    if not ds.chat:
        raise StageSkipped("no conversation file to take image paths from")
    from audit.probes.images import probe_dataset

    refs = [  # from the shared load, so the chat file is parsed once for images and expectations
        ImageRef(index=i, record_id=None if r.id is None else str(r.id), image=r.image)
        for i, r in chat_file(ctx).items()
        if isinstance(r.image, str) and r.image
    ]
    return probe_dataset(ds, ctx.config, store=ctx.store, progress=ctx.progress, refs=refs)


def urls(ctx: StageContext) -> StageResult:
    ds = ctx.dataset
    if not (ds.metadata or ds.url_tsv):
        raise StageSkipped("no metadata file or URL TSV configured")
    from audit.probes.urls import urls_stage

    return urls_stage(ds, ctx.config, progress=ctx.progress, store=ctx.store)


def license_(ctx: StageContext) -> StageResult:
    ds = ctx.dataset
    if not (ds.chat or ds.metadata):
        raise StageSkipped("no conversation or metadata file configured")
    from audit.licensing import license_dataset

    verdicts: dict[int, str] = ctx.shared.setdefault("license_verdicts", {})
    return license_dataset(
        ds, ctx.config, progress=ctx.progress, store=ctx.store, verdicts_out=verdicts
    )


def takedown(ctx: StageContext) -> StageResult:
    from audit.takedown import blocklist_findings

    return blocklist_findings(
        ctx.config, ctx.store, datasets=[ctx.dataset.name], progress=ctx.progress
    )


def expectations(ctx: StageContext) -> StageResult:
    """The kind's suite over the per-record table, enriched with the probes' outcomes."""
    ds = ctx.dataset
    if not ds.chat:
        raise StageSkipped("no conversation file configured")
    from audit.probes.expectations import default_suites_dir, run_expectations
    from audit.probes.record_table import record_table

    loaded = chat_file(ctx)
    records = _in_file_order(loaded)
    image = ctx.results.get("images")
    url = ctx.results.get("urls")
    table = record_table(
        records,
        image_findings=image.findings if image else None,
        url_findings=_by_chat_index(url.findings, records) if url else None,
        license_verdicts=ctx.shared.get("license_verdicts") if "license" in ctx.results else None,
    )
    return run_expectations(
        table,
        loaded.kind,
        suites_dir=default_suites_dir(ctx.config.base_dir),
        docs_dir=ctx.work_dir / "data-docs",
        cache_dir=ctx.path(ctx.config.state).parent / "expectations-cache",
        dataset=ds.name,
        file=str(ds.chat),
    )


def chat_file(ctx: StageContext) -> Any:
    """The dataset's conversation file, loaded once per run and shared by the stages that need it."""
    from audit.loaders.records import load_records

    if "chat" not in ctx.shared:
        assert ctx.dataset.chat is not None
        kind = None if ctx.dataset.kind == "auto" else ctx.dataset.kind
        ctx.shared["chat"] = load_records(
            ctx.path(ctx.dataset.chat), kind, dataset=ctx.dataset.name
        )
        ctx.kind = ctx.shared["chat"].kind
    return ctx.shared["chat"]


def _in_file_order(loaded: Any) -> list[Any]:
    """Records placed at their file position (None where an element was unusable)."""
    out: list[Any] = [None] * loaded.total
    for position, record in loaded.items():
        out[position] = record
    return out


def _by_chat_index(found: list[Finding], records: list[Any]) -> list[Finding]:
    """URL findings carry metadata-file positions; move them to the chat record with that id."""
    first: dict[str, int] = {}
    for i, record in enumerate(records):
        rid = getattr(record, "id", None)
        if rid is not None:
            first.setdefault(str(rid), i)
    return [
        msgspec.structs.replace(f, index=first[f.record_id])
        for f in found
        if f.record_id is not None and f.record_id in first
    ]


STAGE_FUNCTIONS: dict[str, Callable[[StageContext], StageResult]] = {
    "structure": structure,
    "images": images,
    "urls": urls,
    "license": license_,
    "takedown": takedown,
    "expectations": expectations,
}


def record_count(ctx: StageContext) -> int | None:
    """Records in the dataset's conversation file: the structure stage's count, else the loader's."""
    result = ctx.results.get("structure")
    value = result.stats.get("records") if result else None
    if isinstance(value, int):
        return value
    return ctx.shared["chat"].total if "chat" in ctx.shared else None


def missing_rate(results: dict[str, StageResult], stage: str = "images") -> float | None:
    """Share of referenced images (local files, or source URLs) that are missing (stage stats)."""
    result = results.get(stage)
    if result is None:
        return None
    referenced, missing = result.stats.get("referenced"), result.stats.get("missing")
    if not isinstance(referenced, int) or not isinstance(missing, int) or referenced == 0:
        return None
    return missing / referenced
