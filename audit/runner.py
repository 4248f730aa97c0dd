"""The full audit: every configured dataset through every stage, one report, published.

Shared by `llava-audit run`, the scheduler and the gate. The run lock makes two audits impossible
(also across processes); the run history records the run as running before any work and as
succeeded only after the report is published, so a kill at any point never leaves a half-written
report published or a run marked succeeded. One stage failing on one dataset is recorded in the
report (status ``failed``), its traceback in the run's ``run.log`` (:mod:`audit.runlog`), and the
rest of the audit still runs.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from audit import engines, preflight, runlog, stages
from audit.atomic import write_atomic
from audit.config import Config
from audit.errors import AlreadyRunningError, AuditError, ConfigError
from audit.excerpts import record_examples
from audit.export import fingerprints
from audit.export.sources import dataset_recovery
from audit.findings import Finding
from audit.models import NoProgress, Progress
from audit.output import model as rpt
from audit.output import publish as pub
from audit.output import reportsdir
from audit.output.render.html import EXAMPLES_PER_CODE, render_run_safely
from audit.output.render.index_page import render_index
from audit.results import AnyStageResult, LicenseResult, RecordLicences
from audit.runlock import RunLock, lock_path_for
from audit.store import Store
from audit.store import runs as history
from audit.takedown import check_ledger
from audit.takedown_report import takedown_overview

log = logging.getLogger("audit.runner")

#: The note on a stage whose stored result was reused (the page shows it on hover).
REUSED = "reused: inputs, settings and code unchanged since it last ran"


def run_audit(
    config: Config,
    *,
    progress: Progress | None = None,
    trigger: str = "manual",
    config_file: str | None = None,
    stage_functions: Mapping[str, stages.StageFunction] | None = None,
) -> rpt.AuditReport:
    """Audit every dataset, publish ``reports/<run-id>/`` and the index, record the run.

    ``stage_functions`` replaces :data:`audit.stages.STAGE_FUNCTIONS` (tests inject a stage).

    Raises :class:`audit.errors.AlreadyRunningError` when another audit holds the lock, and an
    input error naming every configured file that is missing, not a regular file (a FIFO would
    hang the run while it holds the lock) or over its ``[limits]`` cap, before any work.
    """
    if not config.datasets:
        raise ConfigError("no datasets configured: add a [[datasets]] table to audit.toml")
    preflight.check_config_inputs(config)
    if engines.is_spark(config.engine):  # a Spark that cannot start fails here, before any work
        from audit.engines.spark.session import session

        session(config.engine)  # the run's one session: every stage on Spark joins it
    state = config.path(config.state)
    reports_dir = reportsdir.prepare(config)
    with RunLock(lock_path_for(state)), Store(state) as store, contextlib.ExitStack() as logs:
        check_ledger(config, store)  # a tampered takedown ledger: "ledger integrity: ...", exit 3
        started = datetime.now(UTC)
        run_id = rpt.new_run_id(started)
        history.fail_interrupted(store, now=started)
        pub.remove_stale_staging(reports_dir)
        last = history.last_run(store, status="succeeded")
        history.start_run(store, run_id, started, trigger=trigger)
        report = rpt.AuditReport(
            run_id=run_id,
            started=started,
            config=summarize(config, config_file),
            previous=rpt.read_previous(reports_dir / last.report) if last and last.report else None,
            inputs=fingerprints.input_fingerprints(config),  # before any stage reads them
            settings_digest=fingerprints.settings_digest(config),
        )
        licences: dict[str, RecordLicences] = {}
        try:
            work_dir = pub.staging_dir(reports_dir, run_id)
            logs.enter_context(runlog.run_log(work_dir / runlog.LOG_FILE))
            report.log = runlog.LOG_FILE
            log.info("run %s (%s): %d datasets", run_id, trigger, len(config.datasets))
            for ds in config.datasets:
                ctx = stages.StageContext(
                    config=config,
                    dataset=ds,
                    store=store,
                    progress=progress or NoProgress(),
                    work_dir=work_dir,
                )
                report.datasets.append(audit_dataset(ctx, stage_functions))
                if ctx.upstream.license and ctx.upstream.license.record_licences:
                    licences[ds.name] = ctx.upstream.license.record_licences
            write_atomic(work_dir / rpt.LICENCES_FILE, msgspec.json.encode(licences))
            report.takedowns = takedown_overview(config, store, work_dir)
            docs = work_dir / rpt.DATA_DOCS_DIR / "index.html"
            report.data_docs = f"{rpt.DATA_DOCS_DIR}/index.html" if docs.is_file() else None
            report.totals = totals = rpt.compute_totals(report.datasets)
            report.finished = datetime.now(UTC)
            report.status = "succeeded"
            try:
                pub.publish(report, reports_dir, render_page=render_run_safely)
            except OSError as exc:
                raise AuditError(
                    f"{reports_dir}: cannot publish the report: {exc.strerror or exc}"
                ) from None
            log.info("published: %d errors, %d warnings", totals.errors, totals.warnings)
        except BaseException as exc:
            history.finish_run(
                store,
                run_id,
                finished=datetime.now(UTC),
                status="failed",
                message=_why(exc),
            )
            if isinstance(exc, Exception):  # a stop request must not wait on rendering
                pub.remove_stale_staging(reports_dir)
                with contextlib.suppress(AuditError):  # keep the original error, not this one
                    publish_index(store, reports_dir)
            raise
        history.finish_run(
            store,
            run_id,
            finished=report.finished,
            status="succeeded",
            errors=report.totals.errors,
            warnings=report.totals.warnings,
            records=report.totals.records,
            report=run_id,
            datasets=[figures(ds) for ds in report.datasets],
            audit=audit_result(report),
        )
        pruned = choose_pruned(store, config, reports_dir, just_published=run_id)
        publish_index(store, reports_dir)
        reportsdir.remove_runs(reports_dir, pruned)
    return report


def choose_pruned(
    store: Store, config: Config, reports_dir: Path, *, just_published: str
) -> list[str]:
    """The run folders retention deletes, already unlinked in the history (the index comes next).

    Never the run just published, the one the index calls latest or the ``[gate] baseline`` run;
    a problem here is logged and the folders are kept: retention must never fail a run that
    succeeded.
    """
    try:
        latest = history.last_run(store, status="succeeded")
        protect = {just_published, *baseline_run(config, reports_dir)}
        protect |= {latest.report} if latest and latest.report else set()
        doomed = reportsdir.prunable_runs(
            reports_dir,
            config.keep_runs,
            protect=protect,
            keep_bytes=int(config.keep_mb * 1024 * 1024),
        )
        history.mark_pruned(store, doomed)
    except (OSError, sqlite3.Error) as exc:
        log.warning("retention skipped: %s", exc)
        return []
    return doomed


def _why(exc: BaseException) -> str:
    """One line for the run history: the user-facing message, or the exception's type and text."""
    if isinstance(exc, AuditError):
        return exc.message[:500]
    text = str(exc)
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:500]


def audit_dataset(
    ctx: stages.StageContext, functions: Mapping[str, stages.StageFunction] | None = None
) -> rpt.DatasetReport:
    """Run every stage on one dataset; a stage that cannot run is recorded, never fatal.

    Each stage's start, end and timing go to the run log, and so does the traceback of a stage
    that crashed (an error that is not an :class:`AuditError`); the report keeps one line.
    """
    ds = ctx.dataset
    functions = functions or stages.STAGE_FUNCTIONS
    out = rpt.DatasetReport(name=ds.name, kind=ds.kind)
    for name in rpt.STAGES:
        log.info("%s/%s: started", ds.name, name)
        begin = time.perf_counter()
        try:
            result = relative_files(functions[name](ctx), ctx.config.base_dir)
            reused = name in ctx.reused
            run = rpt.StageRun(
                status="ok", result=for_report(result, ctx.work_dir), note=REUSED if reused else ""
            )
            ctx.upstream.record(result)
        except stages.StageSkipped as skip:
            run = rpt.StageRun(status="skipped", note=skip.reason)
        except Exception as exc:  # one stage's failure must not lose the rest of the audit
            note = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            run = rpt.StageRun(status="failed", note=note[:500])
            if isinstance(exc, AuditError):
                log.warning("%s/%s: could not run: %s", ds.name, name, note)
            else:
                log.error("%s/%s: crashed: %s", ds.name, name, note, exc_info=exc)
        run.seconds = round(time.perf_counter() - begin, 3)
        out.stages[name] = run
        why = f" ({run.note})" if run.note else ""
        log.info("%s/%s: %s in %.3f s%s", ds.name, name, run.status, run.seconds, why)
    out.kind = ctx.kind or ds.kind
    shown = record_examples(
        ctx, out.findings(), EXAMPLES_PER_CODE, lambda p: relative_name(p, ctx.config.base_dir)
    )
    out.examples_file, out.examples, out.shard_examples = shown.file, shown.examples, shown.shards
    out.records = stages.record_count(ctx)
    out.images = stages.figures(ctx.upstream.images)
    out.urls = stages.figures(ctx.upstream.urls)
    if ctx.upstream.images is not None and ctx.upstream.urls is not None:
        base = ctx.config.base_dir
        out.recovery = dataset_recovery(
            ctx.config, ds, every_finding(ctx, out), lambda p: relative_name(p, base)
        )
    return out


def every_finding(ctx: stages.StageContext, out: rpt.DatasetReport) -> Iterable[Finding]:
    """The dataset's findings: the report's, or when a stage ran on Spark (examples only in the
    report) every finding of the stages so far, read back from their tables."""
    up = ctx.upstream
    ran = [up.structure, up.images, up.urls, up.license, up.takedown]
    if all(r is None or r.finding_totals is None for r in ran):
        return out.findings()
    base = ctx.config.base_dir
    return [f for r in ran if r is not None for f in relative_files(stages.whole(r), base).findings]


def for_report(result: AnyStageResult, work_dir: Path) -> AnyStageResult:
    """The result as the report keeps it: the per-record licence verdicts are for later stages
    only (a row per record would make report.json as big as the dataset), and a Spark stage's
    findings table is named relative to the run folder (``work_dir`` is renamed on publishing)."""
    if isinstance(result, LicenseResult):  # both go to licences.json instead
        result = msgspec.structs.replace(
            result, record_verdicts={}, record_verdicts_table=None, record_licences=None
        )
    totals = result.finding_totals
    if totals is not None and Path(totals.location).is_relative_to(work_dir):
        location = Path(totals.location).relative_to(work_dir).as_posix()
        totals = msgspec.structs.replace(totals, location=location)
        result = msgspec.structs.replace(result, finding_totals=totals)
    return result


def relative_files(result: AnyStageResult, base_dir: str) -> AnyStageResult:
    """Findings name files relative to the config's folder, whichever stage made them.

    Stages differ (absolute or as configured); one spelling keeps reports portable and baseline
    keys stable when the data moves.
    """
    cache: dict[str, str] = {}

    def rel(file: str) -> str:
        if file not in cache:
            cache[file] = relative_name(file, base_dir)
        return cache[file]

    found = [
        f if rel(f.file) == f.file else msgspec.structs.replace(f, file=rel(f.file))
        for f in result.findings
    ]
    return msgspec.structs.replace(result, findings=found)


def relative_name(file: str | Path, base_dir: str) -> str:
    """``file`` relative to ``base_dir`` when it lies inside it, else unchanged."""
    p, base = Path(file), Path(base_dir).resolve()
    return str(p.relative_to(base)) if p.is_absolute() and p.is_relative_to(base) else str(file)


def summarize(config: Config, config_file: str | None) -> rpt.ConfigSummary:
    return rpt.ConfigSummary(
        config_file=config_file,
        purpose=config.use.purpose,
        redistribute_images=config.use.redistribute_images,
        redistribute_annotations=config.use.redistribute_annotations,
        datasets=[d.name for d in config.datasets],
        image_level=config.images.level,
        allow_private_urls=config.urls.allow_private,
    )


def audit_result(report: rpt.AuditReport) -> history.AuditResult:
    """The run's result for the run index: a failed stage first, then any error finding."""
    if report.totals.stages_failed:
        return "incomplete"
    return "errors" if report.totals.errors else "passed"


def figures(ds: rpt.DatasetReport) -> history.DatasetFigures:
    counts = {"error": 0, "warning": 0}
    for (_, severity), n in ds.finding_counts().items():
        if severity in counts:
            counts[severity] += n
    return history.DatasetFigures(
        dataset=ds.name,
        records=ds.records,
        errors=counts["error"],
        warnings=counts["warning"],
        unavailable_rate=ds.images.unavailable_rate if ds.images else None,
        url_unavailable_rate=ds.urls.unavailable_rate if ds.urls else None,
    )


def baseline_run(config: Config, reports_dir: Path) -> list[str]:
    """The run folder ``[gate] baseline`` points into, if any: retention must not delete it."""
    if not config.gate.baseline:
        return []
    path, root = config.path(config.gate.baseline).resolve(), reports_dir.resolve()
    return [path.relative_to(root).parts[0]] if path.is_relative_to(root) and path != root else []


def record_gate(config: Config, run_id: str, *, passed: bool) -> None:
    """The gate's verdict on the run it just audited, in the history and the run index ("gate
    failed"). When another audit holds the lock, that audit rewrites the index when it ends."""
    with Store(config.path(config.state)) as store:
        history.record_gate(store, run_id, passed=passed)
        with (
            contextlib.suppress(AlreadyRunningError),
            RunLock(lock_path_for(config.path(config.state))),
        ):
            publish_index(store, config.path(config.reports_dir))


def publish_index(store: Store, reports_dir: Path) -> None:
    """Rewrite ``reports/index.html`` from the run history (atomic swap), never a user's file."""
    reportsdir.check_index_is_ours(reports_dir)
    page = render_index(history.list_runs(store, limit=200))
    try:
        write_atomic(reports_dir / rpt.PAGE_FILE, page.encode("utf-8"))
    except OSError as exc:
        raise AuditError(
            f"{reports_dir}: the run is published but the run index could not be updated: "
            f"{exc.strerror or exc}"
        ) from None
