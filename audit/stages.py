"""The stages as the runner sees them: one function per stage, ``(StageContext) -> StageResult``.

Each adapter maps the dataset's config onto one stage module's public call and passes along what
earlier stages produced (e.g. URL probe results feed the licence stage's opt-out signals). A stage
that does not apply to a dataset (no images configured, no URL source) raises :class:`StageSkipped`
with the reason, which the report shows instead of a silent gap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from audit.config import Config, DatasetConfig
from audit.models import Progress, StageResult
from audit.store import Store


class StageSkipped(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The stage does not apply to this dataset (or is not available); ``reason`` says why."""

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


def _module(name: str) -> ModuleType:
    """Import a stage module; a build without it reports the stage as skipped, not crashed."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise StageSkipped(f"{name} is not available in this build") from None
        raise


def structure(ctx: StageContext) -> StageResult:
    raise StageSkipped("structure stage not available yet")


def images(ctx: StageContext) -> StageResult:
    raise StageSkipped("images stage not available yet")


def urls(ctx: StageContext) -> StageResult:
    raise StageSkipped("urls stage not available yet")


def license_(ctx: StageContext) -> StageResult:
    raise StageSkipped("license stage not available yet")


def takedown(ctx: StageContext) -> StageResult:
    raise StageSkipped("takedown stage not available yet")


def expectations(ctx: StageContext) -> StageResult:
    raise StageSkipped("expectations stage not available yet")


STAGE_FUNCTIONS: dict[str, Callable[[StageContext], StageResult]] = {
    "structure": structure,
    "images": images,
    "urls": urls,
    "license": license_,
    "takedown": takedown,
    "expectations": expectations,
}


def record_count(results: dict[str, StageResult]) -> int | None:
    """Records in the dataset's conversation file, from the structure stage's statistics."""
    result = results.get("structure")
    value = result.stats.get("records") if result else None
    return value if isinstance(value, int) else None


def missing_rate(results: dict[str, StageResult]) -> float | None:
    """Share of referenced local images that are missing or unreadable (images stage stats)."""
    result = results.get("images")
    if result is None:
        return None
    referenced, missing = result.stats.get("referenced"), result.stats.get("missing")
    if not isinstance(referenced, int) or not isinstance(missing, int) or referenced == 0:
        return None
    return missing / referenced
