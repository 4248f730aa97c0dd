"""The stages as the runner sees them: one function per stage, ``(StageContext) -> StageResult``.

Each adapter maps the dataset's config onto one stage module's public call and passes along what
earlier stages produced (e.g. URL probe results feed the licence stage's opt-out signals). A stage
that does not apply to a dataset (no images configured, no URL source) raises :class:`StageSkipped`
with the reason, which the report shows instead of a silent gap. Stage modules are imported inside
the adapters: `llava-audit --help` must not pay for pandas, polars and Great Expectations.

The deterministic stages (structure, licence, takedown, expectations) go through :func:`cached`:
with every input unchanged since the last run their stored result is reused (audit.store.stagecache),
so a nightly re-run pays only for the probes' cache look-ups, and never imports pandas or GX.
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
from audit.store import Store, stagecache


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

    def compute() -> StageResult:
        from audit.structure import check_files

        # one kind for both files would mislabel the metadata file: detect each then
        kind = None if ds.kind == "auto" or len(paths) > 1 else ds.kind
        return check_files(paths, kind=kind, dataset=ds.name, progress=ctx.progress)

    key = stagecache.make_key("structure", ds.name, files=paths, settings=[ds])
    return cached(ctx, "structure", key, compute)


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
    if not (ds.metadata or ds.url_tsv or (ds.chat and ds.coco_annotations)):
        raise StageSkipped("no metadata file, URL TSV or COCO annotation file configured")
    from audit.probes.urls import urls_stage

    return urls_stage(ds, ctx.config, progress=ctx.progress, store=ctx.store)


def license_(ctx: StageContext) -> StageResult:
    ds = ctx.dataset
    if not (ds.chat or ds.metadata):
        raise StageSkipped("no conversation or metadata file configured")
    verdicts: dict[int, str] = ctx.shared.setdefault("license_verdicts", {})

    def compute() -> StageResult:
        from audit.licensing import license_dataset

        return license_dataset(
            ds,
            ctx.config,
            progress=ctx.progress,
            store=ctx.store,
            verdicts_out=verdicts,
            chat_loaded=chat_file(ctx) if ds.chat else None,  # the load images and expectations use
        )

    return cached(ctx, "license", _license_key(ctx), compute)


def _license_key(ctx: StageContext) -> str | None:
    """Files, policy and settings, plus the URL opt-outs the licence stage reads from the store.

    The opt-outs are known from this run's URL findings; when the URL stage failed the store's
    state is unknown, so nothing is reused.
    """
    ds, config = ctx.dataset, ctx.config
    url = ctx.results.get("urls")
    if ds.metadata and url is None:
        return None
    opt_outs = sorted(
        (f.file, f.index, f.message)
        for f in (url.findings if url else ())
        if f.code == "url.opt_out"
    )
    lic = config.license
    files = (ds.chat, ds.metadata, ds.coco_annotations, lic.policy, lic.vg_image_data)
    return stagecache.make_key(
        "license",
        ds.name,
        files=[ctx.path(p) for p in files if p],
        settings=[ds, config.use, config.license],
        extra=[stagecache.digest(opt_outs)],
    )


def takedown(ctx: StageContext) -> StageResult:
    def compute() -> StageResult:
        from audit.takedown import blocklist_findings

        return blocklist_findings(
            ctx.config, ctx.store, datasets=[ctx.dataset.name], progress=ctx.progress
        )

    return cached(ctx, "takedown", _takedown_key(ctx), compute)


def _takedown_key(ctx: StageContext) -> str | None:
    """The dataset's files and the ledger's position; never reused when image hashes are wanted.

    Hash matching reads the image files themselves, which no file list here stands for.
    """
    ledger = stagecache.ledger_state(ctx.store)
    if ledger[-1]:  # content-hash keys
        return None
    ds = ctx.dataset
    return stagecache.make_key(
        "takedown",
        ds.name,
        files=[ctx.path(p) for p in (ds.chat, ds.metadata) if p],
        settings=[ds],
        extra=list(ledger),
    )


def expectations(ctx: StageContext) -> StageResult:
    """The kind's suite over the per-record table, enriched with the probes' outcomes."""
    ds = ctx.dataset
    if not ds.chat:
        raise StageSkipped("no conversation file configured")
    from audit.probes.expectation_cache import gx_version
    from audit.probes.expectations import default_suites_dir

    suites_dir = default_suites_dir(ctx.config.base_dir)
    cache_dir = ctx.path(ctx.config.state).parent / "expectations-cache"
    docs_dir = ctx.work_dir / "data-docs"
    verdicts = ctx.shared.get("license_verdicts") if "license" in ctx.results else None

    def compute() -> StageResult:
        from audit.probes.expectations import run_expectations
        from audit.probes.record_table import record_table

        loaded = chat_file(ctx)
        records = _in_file_order(loaded)
        image, url = ctx.results.get("images"), ctx.results.get("urls")
        table = record_table(
            records,
            image_findings=image.findings if image else None,
            url_findings=_by_chat_index(url.findings, records) if url else None,
            license_verdicts=verdicts,
        )
        return run_expectations(
            table,
            loaded.kind,
            suites_dir=suites_dir,
            docs_dir=docs_dir,
            cache_dir=cache_dir,
            dataset=ds.name,
            file=str(ds.chat),
        )

    key = stagecache.make_key(
        "expectations",
        ds.name,
        files=[ctx.path(ds.chat)],
        settings=[ds],
        extra=[
            gx_version(),
            stagecache.folder_state(suites_dir),
            stagecache.digest([_probe_outcomes(ctx, "images"), _probe_outcomes(ctx, "urls")]),
            stagecache.digest(verdicts),
        ],
    )
    return cached(
        ctx, "expectations", key, compute, outside=_DataDocs(cache_dir, ds.name, docs_dir)
    )


class _DataDocs:
    """The expectations stage's Data Docs pages live in the expectations cache folder.

    A reused result is valid only while that folder still holds the pages of the same result
    (its key file unchanged); they are copied into this run's Data Docs folder.
    """

    def __init__(self, cache_dir: Path, dataset: str, docs_dir: Path) -> None:
        from audit.probes.expectations import gx_name

        self.cache_dir, self.name, self.docs_dir = cache_dir, gx_name(dataset), docs_dir

    def state(self) -> str | None:
        from audit.probes.expectation_cache import KEY_FILE

        try:
            return (self.cache_dir / self.name / KEY_FILE).read_text(encoding="ascii")
        except OSError:
            return None

    def restore(self, result: StageResult) -> bool:
        from audit.probes import expectation_cache

        result.stats["cached"] = True
        if not result.stats.get("data_docs"):
            return True
        if not expectation_cache.restore_docs(self.cache_dir, self.name, self.docs_dir):
            return False
        result.stats["data_docs"] = str(self.docs_dir / "index.html")
        return True


def _probe_outcomes(ctx: StageContext, stage: str) -> list[tuple[Any, ...]] | None:
    """What the table takes from a probe's findings (per-record codes); None when it did not run.

    Messages are left out: summaries count probed versus cached URLs, which differ every run.
    """
    result = ctx.results.get(stage)
    if result is None:
        return None
    return [
        (f.index, f.record_id, f.code, f.severity) for f in result.findings if f.index is not None
    ]


def _still_valid(entry: stagecache.CachedStage, outside: _DataDocs | None) -> bool:
    """Whatever the result relies on outside the store is still there (and restored)."""
    if outside is None:
        return True
    return entry.extra == outside.state() and outside.restore(entry.result)


def cached(
    ctx: StageContext,
    stage: str,
    key: str | None,
    compute: Callable[[], StageResult],
    *,
    outside: _DataDocs | None = None,
) -> StageResult:
    """The stored result of ``stage`` when its inputs' ``key`` matches, else ``compute()``, stored.

    A reused result restores what the stage would have left for later stages (the detected kind,
    the licence verdicts) and is noted in ``ctx.shared["cached"]`` for the report.
    """
    entry = stagecache.load(ctx.store, stage, ctx.dataset.name, key) if key else None
    if entry is not None and _still_valid(entry, outside):
        if entry.kind and ctx.kind is None:
            ctx.kind = entry.kind
        if entry.verdicts is not None:
            ctx.shared.setdefault("license_verdicts", {}).update(entry.verdicts)
        ctx.shared.setdefault("cached", set()).add(stage)
        return entry.result
    result = compute()
    if key is not None:
        entry = stagecache.CachedStage(
            result=result,
            kind=ctx.kind,
            verdicts=ctx.shared.get("license_verdicts") if stage == "license" else None,
            extra=outside.state() if outside is not None else None,
        )
        stagecache.save(ctx.store, stage, ctx.dataset.name, key, entry)
    return result


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


#: What the runner calls per stage; a stage signals "does not apply" with :class:`StageSkipped`.
StageFunction = Callable[[StageContext], StageResult]

STAGE_FUNCTIONS: dict[str, StageFunction] = {
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
