"""The licence stage (DESIGN.md stage 3): provenance and per-use verdicts for whole files.

`license_files` is the one library call behind `llava-audit license`, and `license_dataset` the one
the runner calls per configured dataset. Both stream records through the pure evaluator, so memory
stays flat however many records carry obligations; the verdict rows go to a sink (the CLI's
`--verdicts` file) and the attribution export is written atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Protocol

import msgspec

from audit.config import Config, DatasetConfig, LicenseConfig
from audit.errors import UsageError
from audit.licensing.attribution import AttributionWriter
from audit.licensing.evidence import RowBuilder, VerdictRow
from audit.licensing.inputs import RecordSource, licence_inputs, record_sources
from audit.licensing.policy import load_policy
from audit.licensing.totals import FileTally, dataset_stats
from audit.licensing.units import InputJob, UnitTally, assessed
from audit.licensing.verdicts import ACTIONS, USES, use_key
from audit.loaders.records import LoadedFile
from audit.models import NoProgress, Progress
from audit.results import LicenseResult
from audit.store import Store

_BATCH = 10_000


class FileAssessor(Protocol):
    """Tallies every unit of one input into ``tally`` (and ``verdicts_out``, ``verdict_sink``):
    the local engine's loop below, or the Spark engine's executors each reading and tallying
    units through :func:`audit.licensing.units.assessed`."""

    def __call__(
        self,
        job: InputJob,
        units: Sequence[RecordSource],
        tally: FileTally,
        verdicts_out: dict[int, str] | None,
        verdict_sink: Callable[[VerdictRow], None] | None,
        store: Store | None,
        progress: Progress,
    ) -> None: ...


def license_files(
    paths: Sequence[str | Path],
    *,
    use: str | Sequence[str] = "research",
    image_origin: str = "source",
    coco_annotations: str | Path | None = None,
    kind: str | None = None,
    dataset: str | None = None,
    settings: LicenseConfig | None = None,
    store: Store | None = None,
    progress: Progress | None = None,
    metadata: str | Path | None = None,
    source: str | None = None,
    attribution_out: str | Path | None = None,
    verdicts_out: dict[int, str] | None = None,
    vg_image_data: str | Path | None = None,
    preloaded: LoadedFile | None = None,
    verdict_sink: Callable[[VerdictRow], None] | None = None,
    image_roots: Sequence[str | Path] = (),
    assess_file: FileAssessor | None = None,
) -> LicenseResult:
    """Verdicts for every record of ``paths`` under the declared use(s); forbidden records are errors.

    A use is ``purpose/action`` (``commercial/redistribute-images``, see :data:`USES`); the older
    names ``research``, ``commercial``, ``redistribute-images`` and ``redistribute-annotations``
    are accepted (the last two for research). A ``.tsv`` path is the headerless CC-3M TSV
    (caption<TAB>url): each line is a CC-3M record.

    ``metadata`` joins source URLs into chat files (LCS source inference, opt-outs); ``source``
    names the policy source of records the tool cannot identify from their image path;
    ``attribution_out`` (``.md`` or JSON Lines) receives each record's obligations and credits;
    ``store`` gives the URL probe's opt-out signals. ``verdicts_out`` receives each record's
    verdict for the first declared use by file position (the expectations table; last file wins).
    ``vg_image_data`` (Visual Genome image_data.json) resolves VG and GQA images taken from COCO.
    ``preloaded`` is one of ``paths`` already loaded (the run's shared load), so it is not read twice.
    ``verdict_sink`` receives one typed :class:`VerdictRow` per record and declared use, with its
    chain of evidence. ``image_roots`` (folders or zips) let the stage compare COCO images with
    the sizes the annotation file records: a resized copy is a derivative (``license.derivative``).
    ``assess_file`` reads and tallies each input's units elsewhere (the Spark engine; then no
    attribution export, which is written record by record here).

    An input that is a shard set (a folder, a glob) is read shard by shard: per-record findings
    and verdict rows name the shard and the record's position within it, while ``verdicts_out``
    keys run over the whole set (the shards' elements counted one after another).
    """
    if assess_file is not None and attribution_out:
        raise UsageError(
            "the attribution export is written record by record on this machine: use "
            "--engine local for --attribution"
        )
    settings = settings or LicenseConfig()
    uses = _uses(use)
    policy = load_policy(settings.policy)
    if image_origin not in policy.image_origins:
        known = ", ".join(policy.image_origins)
        raise UsageError(f"unknown image origin {image_origin!r} (known: {known})")
    if source is not None and source not in policy.sources:
        raise UsageError(f"unknown source {source!r} (policy sources: {', '.join(policy.sources)})")
    progress = progress or NoProgress()
    base_ctx, urls = licence_inputs(
        policy,
        settings,
        image_origin,
        coco_annotations=coco_annotations,
        metadata=metadata if assess_file is None else None,  # else the assessor joins it
        vg_image_data=vg_image_data,
    )
    coco_joined = base_ctx.coco_images is not None
    tallies: list[tuple[FileTally, str]] = []
    findings = []
    writer = AttributionWriter(attribution_out, policy) if attribution_out else None
    rows = RowBuilder(policy, uses) if verdict_sink is not None else None
    with writer or nullcontext():
        for path in paths:
            units, file_kind = record_sources(Path(path), kind, dataset)
            job = InputJob(
                ctx=base_ctx,
                kind=file_kind,
                source=source,
                dataset=dataset or Path(path).stem,
                file=str(path),
                uses=uses,
                coco_joined=coco_joined,
                urls=urls,
                image_roots=tuple(str(r) for r in image_roots),
                metadata=str(metadata) if metadata and assess_file is not None else None,
            )
            tally = job.tally()
            if assess_file is not None:
                progress.start(f"licences {Path(path).name}", None)
                assess_file(job, units, tally, verdicts_out, verdict_sink, store, progress)
            else:
                local = _LocalUnits(rows, writer, verdict_sink, verdicts_out, progress)
                local.run(job, units, tally, store, preloaded)
            findings += tally.finish(policy.card_for(file_kind))
            tallies.append((tally, file_kind))
    totals = dataset_stats(tallies, uses, image_origin, settings, coco_joined)
    return msgspec.structs.replace(totals, findings=findings)


class _LocalUnits:
    """The local engine: each unit read and tallied here in turn, with the attribution export,
    the verdict rows and the progress fed record by record."""

    def __init__(
        self,
        rows: RowBuilder | None,
        writer: AttributionWriter | None,
        verdict_sink: Callable[[VerdictRow], None] | None,
        verdicts_out: dict[int, str] | None,
        progress: Progress,
    ) -> None:
        self.rows, self.writer, self.sink = rows, writer, verdict_sink
        self.verdicts_out, self.progress = verdicts_out, progress

    def run(
        self,
        job: InputJob,
        units: Sequence[RecordSource],
        tally: FileTally,
        store: Store | None,
        preloaded: LoadedFile | None,
    ) -> None:
        """Every unit in order; a shard's verdicts keyed by their position in the whole set."""
        offset = 0
        for unit in units:
            done = self._unit(job, unit, offset, store, preloaded)
            tally.merge(done.tally)
            offset += done.elements

    def _unit(
        self,
        job: InputJob,
        unit: RecordSource,
        offset: int,
        store: Store | None,
        preloaded: LoadedFile | None,
    ) -> UnitTally:
        done, count, licences = assessed(job, unit, store, preloaded)
        self.progress.start(f"licences {Path(unit.path).name}", count)
        declared, n = job.uses[0], 0
        for n, (view, rec) in enumerate(licences, 1):
            if self.verdicts_out is not None:
                verdict = rec.judgement.verdicts[declared].verdict.value
                self.verdicts_out[offset + view.position] = verdict
            if self.writer is not None:
                self.writer.add(unit.path, rec)
            if self.rows is not None and self.sink is not None:
                for row in self.rows.rows(unit.path, rec):
                    self.sink(row)
            if n % _BATCH == 0:
                self.progress.advance(_BATCH)
        self.progress.advance(n % _BATCH)
        self.progress.finish()
        return done


def license_dataset(
    ds: DatasetConfig,
    config: Config,
    *,
    progress: Progress | None = None,
    store: Store | None = None,
    verdicts_out: dict[int, str] | None = None,
    uses: Sequence[str] | None = None,
    chat_loaded: LoadedFile | None = None,
    verdict_sink: Callable[[VerdictRow], None] | None = None,
    assess_file: FileAssessor | None = None,
) -> LicenseResult:
    """The runner's entry: the dataset's chat file (or metadata file alone) under the configured use.

    ``uses`` replaces the declared uses of `[use]` (the CLI's --purpose/--action); ``chat_loaded``
    is the chat file as the run already loaded it for other stages; ``verdict_sink`` receives each
    record's typed verdict rows (the export's licence table). COCO images found in the
    dataset's image roots are checked against the annotation file's sizes (derivatives).
    """
    if uses is None:
        uses = [use_key(config.use.purpose, a) for a in config.use.actions()]
    chat = config.path(ds.chat) if ds.chat else None
    meta = config.path(ds.metadata) if ds.metadata else None
    paths = [chat] if chat else [meta] if meta else []
    if not paths:
        return LicenseResult(skipped="no chat or metadata file")
    policy_path = config.path(config.license.policy) if config.license.policy else None
    settings = msgspec.structs.replace(
        config.license, policy=str(policy_path) if policy_path else None
    )
    return license_files(
        paths,
        use=uses,
        image_origin=ds.image_origin,
        coco_annotations=config.path(ds.coco_annotations) if ds.coco_annotations else None,
        kind=None if ds.kind == "auto" else ds.kind,
        dataset=ds.name,
        settings=settings,
        store=store,
        progress=progress,
        metadata=meta if chat and meta else None,
        source=ds.source,
        verdicts_out=verdicts_out,
        vg_image_data=config.path(settings.vg_image_data) if settings.vg_image_data else None,
        preloaded=chat_loaded,
        image_roots=[config.path(r) for r in ds.images],
        verdict_sink=verdict_sink,
        assess_file=assess_file,
    )


#: the older single-word uses: research and commercial training, and redistribution for research
LEGACY_USES = {
    "research": "research/train",
    "commercial": "commercial/train",
    **{action: f"research/{action}" for action in ACTIONS if action != "train"},
}


def _uses(use: str | Sequence[str]) -> tuple[str, ...]:
    uses = tuple(LEGACY_USES.get(u, u) for u in ((use,) if isinstance(use, str) else use))
    bad = [u for u in uses if u not in USES]
    if bad or not uses:
        raise UsageError(f"unknown use {', '.join(bad) or '(none)'} (known: {', '.join(USES)})")
    return tuple(dict.fromkeys(uses))
