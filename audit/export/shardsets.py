"""`export` of a dataset whose conversation or metadata input is a shard set, a shard at a time.

Each shard is one file of the selection (:mod:`audit.export.select`): the run's findings name
the shard and the record's position in it, and so do ``dropped.jsonl`` and the manifest. A set
is exported as a set of the same format, shard names and count under
``<out>/<dataset>/<set folder name>/`` (each shard at its path under the set's folder or glob
base; a set of one shard file: ``<out>/<dataset>/<shard name>``), each kept record copied as it
is (:func:`audit.loaders.shardcopy.copy_shard`); a shard that keeps nothing is still written,
empty. A plain file beside a set (a metadata file) is read and written as the file export does.

Only keys are held across shards (each record's id and whether it names an image, for the
shard being read; the exported ids, for the metadata to follow), never the records. The
re-fetch list is not computed for a shard set (``refetch.parquet`` is written empty).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from audit.config import Config, DatasetConfig
from audit.errors import UsageError
from audit.export import write as out
from audit.export.layout import RawFile, read_raw
from audit.export.licence_table import LicenceTable
from audit.export.select import (
    GATING_STAGES,
    Dropped,
    FileChoice,
    FileRecords,
    choose,
    follow_ids,
    metadata_errors,
    record_errors,
)
from audit.loaders.shardcopy import copy_shard
from audit.loaders.shardread import open_shard, shard_sha256
from audit.loaders.shards import expand, is_shard_set, set_base
from audit.output.model import DatasetReport


@dataclass(frozen=True)
class Unit:
    """One shard of a set, or a plain file, as the export reads and writes it."""

    path: Path  # on disk
    name: str  # as the run's findings name it
    target: Path  # relative to the dataset's output folder
    shard: bool


@dataclass
class Keys:
    """A unit's records as the selection sees them, and the unit's hash."""

    records: FileRecords
    sha256: str
    raw: RawFile | None = None  # a plain file's bytes, for its subset


def units(config: Config, configured: str, name: Callable[[Path], str]) -> list[Unit]:
    """The shards of a configured set in set order (a plain file: itself)."""
    path = config.path(configured)
    if not is_shard_set(path):
        return [Unit(path, name(path), Path(path.name), False)]
    base = set_base(path)
    folder = Path(base.resolve().name) if base is not None else Path()
    return [
        Unit(s, name(s), folder / s.relative_to(base) if base is not None else Path(s.name), True)
        for s in expand(path)
    ]


def read_keys(unit: Unit, dataset: str) -> Keys:
    """Each record's id (as findings spell it) and whether it names an image."""
    if not unit.shard:
        raw = read_raw(unit.path)
        return Keys(FileRecords(unit.name, raw.ids, raw.has_image), raw.sha256, raw)
    stream = open_shard(unit.path, "generic", dataset=dataset)
    ids: list[str | None] = []
    images: list[bool] = []
    for batch in stream:
        ids += [_text(getattr(r, "id", None)) for r in batch]
        images += [getattr(r, "image", None) not in (None, msgspec.UNSET) for r in batch]
    if (kept := stream.positions()) is not None:  # elements that are not records: no keys
        full_ids: list[str | None] = [None] * stream.elements
        full_images = [False] * stream.elements
        for i, rid, image in zip(kept, ids, images, strict=True):
            full_ids[i], full_images[i] = rid, image
        ids, images = full_ids, full_images
    return Keys(FileRecords(unit.name, ids, images), shard_sha256(unit.path))


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value)


@dataclass
class SetExport:
    """What a dataset's export came to: per unit its counts, the dropped records, and what
    ``LICENSES.md`` needs (the primary units' sizes and the kept positions over them)."""

    files: list[tuple[Unit, Keys, FileChoice]]
    dropped: list[Dropped]
    reasons: Counter[str]
    kept: int
    dropped_primary: int
    layout: list[tuple[str, int]]
    kept_positions: list[int]

    def counts(self) -> list[tuple[str, str, int, int, int]]:
        """Per unit (the manifest's rows): name, SHA-256, records, kept, dropped."""
        return [
            (u.name, k.sha256, len(k.records.ids), len(c.kept), len(c.dropped))
            for u, k, c in self.files
        ]


def export_units(
    dataset: DatasetConfig,
    primary: Sequence[Unit],
    secondary: Sequence[Unit],
    errors: dict[tuple[str, int], list[str]],
    verdicts: LicenceTable | None,
    use: str,
    select_options: dict[str, Any],
    folder: Path | None,
) -> SetExport:
    """Select and write every unit: the metadata's errors first (by id), then the conversation
    units one by one, then the metadata units following the exported ids."""
    meta_errors: dict[str, list[str]] = {}
    named = {file for file, _ in errors}
    for unit in secondary:  # only units with an error finding need reading here
        if unit.name in named:
            metadata_errors(read_keys(unit, dataset.name).records, errors, meta_errors)
    result = SetExport([], [], Counter(), 0, 0, [], [])
    kept_ids: set[str | None] = set()
    why_by_id: dict[str, list[str]] = {}
    for unit in primary:
        keys = read_keys(unit, dataset.name)
        judged = verdicts.verdicts(str(unit.path), use) if verdicts is not None else None
        choice = choose(keys.records, errors, judged, meta_errors, **select_options)
        _write(unit, keys, choice, folder, dataset.name)
        ids = keys.records.ids
        kept_ids.update(ids[i] for i in choice.kept)
        for d in choice.dropped:
            if d.record_id is not None:
                why_by_id.setdefault(d.record_id, d.reasons)
        offset = sum(size for _, size in result.layout)
        result.kept_positions += [offset + i for i in choice.kept]
        result.layout.append((str(unit.path), len(ids)))
        result.kept += len(choice.kept)
        result.dropped_primary += len(choice.dropped)
        _add(result, unit, keys, choice)
    kept_ids.discard(None)
    for unit in secondary:
        keys = read_keys(unit, dataset.name)
        choice = follow_ids(keys.records, errors, kept_ids, why_by_id)
        _write(unit, keys, choice, folder, dataset.name)
        _add(result, unit, keys, choice)
    return result


def export_set(
    config: Config,
    ds: DatasetConfig,
    dsr: DatasetReport,
    table: LicenceTable | None,
    use: str,
    include_conditional: bool,
    folder: Path | None,
) -> SetExport:
    """A dataset with a shard set among its inputs: its units selected by the run's findings
    (``dsr``) and ``table``'s verdicts, and written under ``folder`` (None: a dry run)."""
    from audit.runner import relative_name

    def name(path: Path) -> str:
        return relative_name(path, config.base_dir)

    primary, *rest = [units(config, p, name) for p in (ds.chat, ds.metadata) if p]
    gating = [f for s in GATING_STAGES if (res := dsr.stage(s)) for f in res.findings]
    not_run = [s for s in GATING_STAGES if dsr.stage(s) is None]
    options = {"include_conditional": include_conditional, "not_run": not_run}
    errors = record_errors(gating)
    return export_units(ds, primary, rest[0] if rest else [], errors, table, use, options, folder)


def _add(result: SetExport, unit: Unit, keys: Keys, choice: FileChoice) -> None:
    result.files.append((unit, keys, choice))
    result.dropped += choice.dropped
    for d in choice.dropped:
        result.reasons.update(d.reasons)


def _write(unit: Unit, keys: Keys, choice: FileChoice, folder: Path | None, dataset: str) -> None:
    """The unit's kept records under ``folder`` (None: a dry run)."""
    if folder is None:
        return
    target = folder / unit.target
    if keys.raw is not None:
        out.write_parts(target, keys.raw.subset_parts(choice.kept))
    else:
        copy_shard(unit.path, target, {d.index for d in choice.dropped}, dataset=dataset)


def check_set_targets(config: Config, out_dir: Path) -> None:
    """A set's export folder must not hold an input (its shards would be overwritten)."""
    inputs: list[Path] = []
    for ds in config.datasets:
        for p in (ds.chat, ds.metadata):
            if p:
                path = config.path(p)
                inputs += expand(path) if is_shard_set(path) else [path]
    resolved = [i.resolve() for i in inputs]
    for ds in config.datasets:
        for p in (ds.chat, ds.metadata):
            if not p or not is_shard_set(config.path(p)):
                continue
            for unit in units(config, p, str):
                target = (out_dir / ds.name / unit.target).resolve()
                if target in resolved:
                    raise UsageError(
                        f"--out {out_dir}: would overwrite the input shard {unit.path}; "
                        "choose another folder"
                    )
