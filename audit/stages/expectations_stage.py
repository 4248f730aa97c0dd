"""The expectations stage of a run: the kind's suite over the per-record table.

The table is enriched with what earlier stages found (the image and URL probes' per-record
outcomes, the licence verdicts), handed over as their typed results. Great Expectations and its
cache folder are reached only through :mod:`audit.probes.expectations`. On the Spark engine the
table is built and joined in Spark (:mod:`audit.engines.spark.expectation_table`) and GX
validates it there: no record, finding or verdict is read back to the driver.
"""

from __future__ import annotations

from typing import Any

import msgspec

from audit import engines
from audit.findings import Code, Finding
from audit.results import (
    ExpectationsResult,
    ImagesResult,
    LicenseResult,
    StructureResult,
    UrlsResult,
)
from audit.stages.context import StageContext, StageSkipped, cached, whole
from audit.store import stagecache
from audit.webassets import ASSETS_DIR


def expectations(ctx: StageContext) -> ExpectationsResult:
    """The suite with the probes' and licence stage's results of this run, when they ran."""
    up = ctx.upstream
    return run_expectations_stage(ctx, images=up.images, urls=up.urls, license=up.license)


def run_expectations_stage(
    ctx: StageContext,
    *,
    images: ImagesResult | None,
    urls: UrlsResult | None,
    license: LicenseResult | None,
) -> ExpectationsResult:
    ds = ctx.dataset
    if not ds.chat:
        raise StageSkipped("no conversation file configured")
    from audit.probes.expectations import cached_docs, default_suites_dir, gx_version

    if engines.is_spark(ctx.config.engine):
        return _on_spark(ctx, images=images, urls=urls, license=license)
    images = whole(images) if images is not None else None
    urls = whole(urls) if urls is not None else None
    structure = ctx.upstream.structure
    structure = whole(structure) if structure is not None else None

    chat = ds.chat
    suites_dir = default_suites_dir(ctx.config.base_dir)
    cache_dir = ctx.path(ctx.config.state).parent / "expectations-cache"
    docs_dir = ctx.work_dir / "data-docs"
    verdicts = license.record_verdicts if license is not None else None

    def compute() -> ExpectationsResult:
        from audit.probes.expectations import run_expectations
        from audit.probes.record_table import record_table

        loaded = ctx.chat_file()
        records = _in_file_order(loaded)
        table = record_table(
            records,
            image_findings=_image_findings(loaded, images, structure),
            url_findings=_by_chat_index(urls.findings, records) if urls else None,
            license_verdicts=verdicts,
        )
        return run_expectations(
            table,
            loaded.kind,
            suites_dir=suites_dir,
            docs_dir=docs_dir,
            cache_dir=cache_dir,
            assets_dir=ctx.work_dir.parent / ASSETS_DIR,  # reports/_assets, shared by every run
            dataset=ds.name,
            file=str(chat),
        )

    key = stagecache.make_key(
        "expectations",
        ds.name,
        files=[ctx.path(chat)],
        settings=[ds],
        extra=[
            gx_version(),
            stagecache.folder_state(suites_dir),
            stagecache.digest([_probe_outcomes(images), _probe_outcomes(urls)]),
            stagecache.digest(verdicts),
        ],
    )
    outside = cached_docs(cache_dir, ds.name, docs_dir)
    return cached(ctx, "expectations", key, compute, ExpectationsResult, outside=outside)


def _on_spark(
    ctx: StageContext,
    *,
    images: ImagesResult | None,
    urls: UrlsResult | None,
    license: LicenseResult | None,
) -> ExpectationsResult:
    """The table made and validated in Spark. Never reused from the stage cache (neither are
    the Spark stages it joins) nor from the expectations cache (its key would hash the table)."""
    from audit.engines.spark.expectation_table import spark_table
    from audit.engines.spark.session import session
    from audit.probes.expectations import default_suites_dir, run_expectations

    ds = ctx.dataset
    assert ds.chat is not None
    structure = ctx.upstream.structure
    table = spark_table(
        session(ctx.config.engine),
        ctx.path(ds.chat),
        None if ds.kind == "auto" else ds.kind,
        ds.name,
        images=(images, structure) if images is not None else None,
        urls=urls,
        verdicts=license.record_verdicts_table if license is not None else None,
    )
    ctx.kind = ctx.kind or table.kind
    try:
        return run_expectations(
            table,
            table.kind,
            suites_dir=default_suites_dir(ctx.config.base_dir),
            docs_dir=ctx.work_dir / "data-docs",
            assets_dir=ctx.work_dir.parent / ASSETS_DIR,
            dataset=ds.name,
            file=str(ds.chat),
        )
    finally:
        table.release()


def _image_findings(
    loaded: Any, images: ImagesResult | None, structure: StructureResult | None
) -> list[Finding] | None:
    """The images stage's findings, and the structure stage's ``image.path`` ones on the same
    file or its shards (a path leading outside the roots is a missing image the images stage
    counts but leaves to the structure stage to report), each at its row of the table.

    A shard set's findings name their shard and the index in it, while the table counts the
    set's records one after another (``loaded.shards``: each shard and its first position)."""
    if images is None:
        return None
    from audit.loaders.shards import shard_starts

    paths = [
        f
        for f in (structure.findings if structure is not None else [])
        if f.code == Code.IMAGE_PATH
    ]
    starts = shard_starts((f.file for f in images.findings + paths), loaded.shards)
    kept = images.findings + [f for f in paths if f.file == images.file or f.file in starts]
    return [
        msgspec.structs.replace(f, index=starts[f.file] + f.index)
        if f.index is not None and f.file in starts
        else f
        for f in kept
    ]


def _probe_outcomes(result: ImagesResult | UrlsResult | None) -> list[tuple[Any, ...]] | None:
    """What the table takes from a probe's findings (per-record codes); None when it did not run.

    Messages are left out: summaries count probed versus cached URLs, which differ every run.
    """
    if result is None:
        return None
    return [
        (f.index, f.record_id, f.code, f.severity) for f in result.findings if f.index is not None
    ]


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
