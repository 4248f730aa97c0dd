"""The stages as the runner sees them: one adapter per stage, ``(StageContext) -> StageResult``.

Each adapter (a module per stage) maps the dataset's config onto one stage module's public call
and takes what earlier stages produced from ``ctx.upstream`` as typed results. A stage that does
not apply to a dataset (no images configured, no URL source) raises :class:`StageSkipped` with the
reason, which the report shows instead of a silent gap. Stage modules are imported inside the
adapters: `llava-audit --help` must not pay for pandas, polars and Great Expectations.
"""

from __future__ import annotations

from collections.abc import Callable

from audit.figures import Availability
from audit.results import AnyStageResult, ImagesResult, StageResult, UrlsResult
from audit.stages.context import StageContext, StageSkipped, Upstream, cached, whole
from audit.stages.expectations_stage import expectations
from audit.stages.images_stage import images
from audit.stages.license_stage import license_
from audit.stages.structure_stage import structure
from audit.stages.takedown_stage import takedown
from audit.stages.urls_stage import urls

#: What the runner calls per stage; a stage signals "does not apply" with :class:`StageSkipped`.
StageFunction = Callable[[StageContext], AnyStageResult]

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
    if ctx.upstream.structure is not None:
        return ctx.upstream.structure.records
    return ctx.chat.total if ctx.chat is not None else None


def figures(result: StageResult | None) -> Availability | None:
    """Missing, broken and unavailable local images or source URLs (None: not probed)."""
    if isinstance(result, ImagesResult):
        return result.figures
    if isinstance(result, UrlsResult):
        return result.totals.figures
    return None


__all__ = [
    "STAGE_FUNCTIONS",
    "StageContext",
    "StageFunction",
    "StageSkipped",
    "Upstream",
    "cached",
    "figures",
    "record_count",
    "whole",
]
