"""`llava-audit export`: the records safe to train on, per dataset, in the input's layout.

The run's results are reused when the last published run still describes the inputs (input
fingerprints and settings recorded in its report); otherwise the audit runs first
(:func:`audit.runner.run_audit`). Per dataset the pure selection (:mod:`audit.export.select`)
decides each record, and :mod:`audit.export.write` writes the files atomically.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import msgspec

from audit import __version__
from audit.config import Config, DatasetConfig, EngineConfig
from audit.errors import AuditError, UsageError
from audit.export import shardsets as sets
from audit.export import write as out
from audit.export.fingerprints import stale_because
from audit.export.layout import RawFile, read_raw
from audit.export.licence_table import LicenceTable, verdicts_for
from audit.export.recovery import BROKEN_IMAGE, UrlRecord, fates
from audit.export.select import (
    GATING_STAGES,
    FileChoice,
    FileRecords,
    Selection,
    matching,
    positions,
    record_errors,
    select,
    with_metadata,
)
from audit.loaders.shards import is_shard_set
from audit.models import Progress, UrlRef
from audit.output import model as rpt
from audit.output.publish import published_runs
from audit.results import RecordLicences


class FileCounts(msgspec.Struct, kw_only=True):
    file: str  # as configured and as the findings name it
    sha256: str
    records: int
    kept: int
    dropped: int


class DatasetExport(msgspec.Struct, kw_only=True):
    name: str
    kept: int = 0
    dropped: int = 0
    refetch: int = 0
    gone: int = 0
    files: list[FileCounts] = msgspec.field(default_factory=list)
    reasons: dict[str, int] = msgspec.field(default_factory=dict)
    note: str = ""


class ExportSettings(msgspec.Struct, kw_only=True):
    config_file: str | None
    purpose: str
    action: str = "train"
    include_conditional: bool
    image_level: str
    settings_digest: str


class Manifest(msgspec.Struct, kw_only=True):
    """``manifest.json``: what was exported, from which run and inputs, and why records dropped."""

    run_id: str
    reused_run: bool
    tool_version: str = __version__
    created: datetime
    config: ExportSettings
    inputs: dict[str, str]  # input file -> sha256
    datasets: list[DatasetExport]
    reasons: dict[str, int]


def export(
    config: Config,
    out_dir: Path | None,
    *,
    purpose: str,
    include_conditional: bool = False,
    config_file: str | None = None,
    progress: Progress | None = None,
    note: Callable[[str], None] = lambda _: None,
) -> Manifest:
    """Export every dataset into ``out_dir`` (None: a dry run, nothing written)."""
    report, reused = audit_results(config, config_file, progress, note)
    run_dir = config.path(config.reports_dir) / report.run_id
    tables = read_licences(run_dir / rpt.LICENCES_FILE)
    use = f"{purpose}/train"
    datasets = []
    inputs: dict[str, str] = {}
    for ds in config.datasets:
        dsr = next((d for d in report.datasets if d.name == ds.name), None)
        if dsr is None:
            raise AuditError(f"run {report.run_id} has no dataset {ds.name!r}: run the audit")
        datasets.append(
            _export_dataset(
                config, ds, dsr, tables.get(ds.name), use, include_conditional, out_dir, inputs
            )
        )
    reasons: Counter[str] = Counter()
    for d in datasets:
        reasons.update(d.reasons)
    manifest = Manifest(
        run_id=report.run_id,
        reused_run=reused,
        created=datetime.now(UTC),
        config=ExportSettings(
            config_file=config_file,
            purpose=purpose,
            include_conditional=include_conditional,
            image_level=config.images.level,
            settings_digest=report.settings_digest,
        ),
        inputs=inputs,
        datasets=datasets,
        reasons=dict(sorted(reasons.items())),
    )
    if out_dir is not None:
        out.write(out_dir / out.MANIFEST_FILE, out.manifest_json(manifest))
    return manifest


def audit_results(
    config: Config,
    config_file: str | None,
    progress: Progress | None,
    note: Callable[[str], None],
) -> tuple[rpt.AuditReport, bool]:
    """The last published run when it still describes the inputs, else a new run."""
    from audit.runner import run_audit

    reports_dir = config.path(config.reports_dir)
    runs = published_runs(reports_dir)
    why = "no published run"
    if runs:
        try:
            last = rpt.read_report(reports_dir / runs[0])
        except (OSError, ValueError, msgspec.DecodeError, AuditError):
            why = f"run {runs[0]} cannot be read"
        else:
            why = stale_because(last, config) or ""
            if last.finding_tables():  # the selection needs every finding, not examples
                why = f"run {last.run_id} keeps its findings in Parquet tables (the spark engine)"
            if not why:
                note(f"reusing run {last.run_id} (inputs and settings unchanged)")
                return last, True
    note(f"running the audit first, on this machine: {why}")
    local = msgspec.structs.replace(config, engine=EngineConfig())
    return run_audit(local, progress=progress, trigger="export", config_file=config_file), False


def read_licences(path: Path) -> dict[str, RecordLicences]:
    try:
        return msgspec.json.decode(path.read_bytes(), type=dict[str, RecordLicences])
    except (OSError, msgspec.DecodeError):
        return {}  # an older run: verdicts are judged again


def _export_dataset(
    config: Config,
    ds: DatasetConfig,
    dsr: rpt.DatasetReport,
    table: RecordLicences | None,
    use: str,
    include_conditional: bool,
    out_dir: Path | None,
    inputs: dict[str, str],
) -> DatasetExport:
    from audit.runner import relative_name

    configured = [p for p in (ds.chat, ds.metadata) if p]
    if not configured:
        return DatasetExport(name=ds.name, note="no conversation or metadata file configured")
    if any(is_shard_set(config.path(p)) for p in configured):
        return _export_set(config, ds, dsr, use, include_conditional, out_dir, inputs)
    names = [relative_name(config.path(p), config.base_dir) for p in configured]
    gating = [f for s in GATING_STAGES if (res := dsr.stage(s)) for f in res.findings]
    errors = record_errors(gating)
    verdicts = verdicts_for(table, use) if table is not None else None
    if verdicts is None and dsr.stage("license") is not None:
        table = _judge(config, ds, use).build()
        verdicts = verdicts_for(table, use)
    choose = partial(
        select,
        errors=errors,
        verdicts=verdicts,
        include_conditional=include_conditional,
        not_run=[s for s in GATING_STAGES if dsr.stage(s) is None],
    )
    folder = out_dir / ds.name if out_dir is not None else None
    with out.Writer() as writes:
        raws = [read_raw(config.path(configured[0]))]
        chat = FileRecords(names[0], raws[0].ids, raws[0].has_image)
        sel, early = choose(chat, None), False
        if len(names) > 1:
            # no error on the metadata file: the conversation file's subset does not depend on
            # it, so that subset is written while the metadata file is read
            early = not any(f == names[1] for f, _ in errors)
            if early and folder is not None:
                writes.parts(folder / raws[0].path.name, raws[0].subset_parts(sel.files[0].kept))
            raws.append(read_raw(config.path(configured[1])))
            meta = FileRecords(names[1], raws[1].ids, raws[1].has_image)
            sel = with_metadata(sel, chat.ids, meta, errors) if early else choose(chat, meta)
        refetch, gone = _refetch(config, ds, dsr, raws, names)
        if folder is not None:
            todo = list(zip(raws, sel.files, strict=True))[1 if early else 0 :]
            card = (ds.name, table, use, include_conditional)
            _write_dataset(writes, folder, todo, sel, refetch, card, config)
    result = DatasetExport(
        name=ds.name,
        kept=sel.kept,
        dropped=sel.dropped,
        refetch=len(refetch),
        gone=gone,
        reasons=dict(sorted(sel.reasons.items())),
    )
    for p, raw, choice in zip(configured, raws, sel.files, strict=True):
        inputs[p] = raw.sha256
        result.files.append(
            FileCounts(
                file=p,
                sha256=raw.sha256,
                records=len(raw.elements),
                kept=len(choice.kept),
                dropped=len(choice.dropped),
            )
        )
    return result


def _export_set(
    config: Config,
    ds: DatasetConfig,
    dsr: rpt.DatasetReport,
    use: str,
    include_conditional: bool,
    out_dir: Path | None,
    inputs: dict[str, str],
) -> DatasetExport:
    """A dataset with a shard set among its inputs, a shard at a time (:mod:`.shardsets`); its
    verdicts are judged again per shard (a run's table counts positions over one file)."""
    table = _judge(config, ds, use) if dsr.stage("license") is not None else None
    folder = out_dir / ds.name if out_dir is not None else None
    done = sets.export_set(config, ds, dsr, table, use, include_conditional, folder)
    if folder is not None:
        with out.Writer() as writes:
            licences = table.build(done.layout) if table is not None else None
            sel = Selection([FileChoice("", done.kept_positions, done.dropped)])
            card = (ds.name, licences, use, include_conditional)
            _write_dataset(writes, folder, [], sel, [], card, config)
    counts = done.counts()
    inputs.update((name, sha256) for name, sha256, *_ in counts)
    return DatasetExport(
        name=ds.name,
        kept=done.kept,
        dropped=done.dropped_primary,
        reasons=dict(sorted(done.reasons.items())),
        note="shard set: exported shard by shard; no re-fetch list",
        files=[
            FileCounts(file=f, sha256=h, records=n, kept=k, dropped=d) for f, h, n, k, d in counts
        ],
    )


def _judge(config: Config, ds: DatasetConfig, use: str) -> LicenceTable:
    """Verdicts for a purpose the run did not judge (the licence stage, for that use alone)."""
    from audit.licensing import license_dataset
    from audit.store import Store

    table = LicenceTable()
    with Store(config.path(config.state)) as store:  # the URL probe's opt-outs
        license_dataset(ds, config, uses=[use], store=store, verdict_sink=table)
    return table


def _refetch(
    config: Config,
    ds: DatasetConfig,
    dsr: rpt.DatasetReport,
    raws: list[RawFile],
    names: list[str],
) -> tuple[list[out.RefetchRow], int]:
    """Broken local images whose source URL answered with an image; and how many are gone."""
    from audit.export.sources import url_refs
    from audit.runner import relative_name

    if ds.chat is None or dsr.stage("images") is None or dsr.stage("urls") is None:
        return [], 0
    chat, chat_name = raws[0], names[0]
    found = list(dsr.findings())
    broken = {(f.index, f.record_id) for f in found if f.code in BROKEN_IMAGE}
    if not broken:
        return [], 0
    wanted = {rid for _, rid in broken if rid is not None}
    indices = {i for i, _ in broken}
    meta = raws[1] if len(raws) > 1 else None
    refs = _metadata_urls(ds, meta, names, wanted)
    if refs is None:  # a TSV, the COCO join or another URL key: read as the URL stage does
        refs = [
            (f, r)
            for f, r in url_refs(config, ds, lambda p: relative_name(p, config.base_dir))
            if r.record_id in wanted or (f == chat_name and r.index in indices)
        ]
    fate = fates(chat_name, found, [UrlRecord(f, r.index, r.record_id) for f, r in refs])
    if not fate:
        return [], 0
    by_index = {r.index: r for f, r in refs if f == chat_name}
    by_id = {r.record_id: r for f, r in refs if f != chat_name and r.record_id is not None}
    ids = chat.ids
    needed = wanted | {rid for i in fate if (rid := ids[i]) is not None}
    meta_pos = positions(meta.ids, needed) if meta is not None else {}
    rows = []
    for index, what in sorted(fate.items()):
        rid, image = ids[index], chat.image(index)
        ref = by_index.get(index) or (by_id.get(rid) if rid is not None else None)
        if what != "recoverable" or ref is None or image is None:
            continue
        caption = meta.caption(meta_pos[rid]) if meta is not None and rid in meta_pos else None
        rows.append(out.RefetchRow(url=ref.url, caption=caption, key=rid, image=image))
    return rows, sum(1 for v in fate.values() if v == "gone")


def _metadata_urls(
    ds: DatasetConfig, meta: RawFile | None, names: list[str], wanted: set[str]
) -> list[tuple[str, UrlRef]] | None:
    """The wanted records' URLs from the metadata file already read, when the URL stage reads
    that file alone by its standard ``url`` key; None otherwise."""
    if meta is None or ds.url_tsv or ds.url_column != "url":
        return None
    found = [
        (names[1], UrlRef(index=i, record_id=meta.ids[i], url=url))
        for i in matching(meta.ids, wanted)
        if (url := meta.url(i))
    ]
    standard_key = any(meta.has_url_key(i) for i in range(min(100, len(meta.keys))))
    return found if standard_key else None


def _write_dataset(
    writes: out.Writer,
    folder: Path,
    subsets: list[tuple[RawFile, FileChoice]],
    sel: Selection,
    refetch: list[out.RefetchRow],
    card: tuple[str, RecordLicences | None, str, bool],
    config: Config,
) -> None:
    """The dataset's folder: ``subsets`` (the input files not already on their way) and the rest."""
    from audit.export.cards import licences_markdown
    from audit.licensing.policy import load_policy

    for raw, choice in subsets:
        writes.parts(folder / raw.path.name, raw.subset_parts(choice.kept))
    dropped = [d for choice in sel.files for d in choice.dropped]
    writes.file(folder / out.DROPPED_FILE, out.dropped_jsonl(dropped))
    writes.file(folder / out.REFETCH_FILE, out.refetch_parquet(refetch))
    policy_file = config.path(config.license.policy) if config.license.policy else None
    name, table, use, include_conditional = card
    text = licences_markdown(
        name,
        use,
        table or RecordLicences(),
        sel.files[0].kept,
        load_policy(str(policy_file) if policy_file else None),
        include_conditional,
    )
    writes.file(folder / out.LICENSES_FILE, text.encode("utf-8"))


def check_out_dir(config: Config, out_dir: Path) -> None:
    """The export must never overwrite an input: refuse an output path that is one."""
    inputs = {
        config.path(p).resolve() for ds in config.datasets for p in (ds.chat, ds.metadata) if p
    }
    sets.check_set_targets(config, out_dir)
    for ds in config.datasets:
        if not ds.name or ds.name in (".", "..") or any(c in ds.name for c in "/\\\0"):
            raise UsageError(f"dataset name {ds.name!r} cannot be a folder name in --out")
        for p in (ds.chat, ds.metadata):
            if p and (out_dir / ds.name / Path(p).name).resolve() in inputs:
                raise UsageError(
                    f"--out {out_dir}: would overwrite the input {p}; choose another folder"
                )
