"""The audit report as data: what one run found, saved as JSON and published atomically.

Everything downstream (console, HTML, gate, trends) reads an :class:`AuditReport`, never the stages
directly, so a report re-read from disk renders and gates exactly like the one just computed.
``report.json`` holds everything but the findings (kept bounded for big datasets); the findings go
to ``findings.jsonl`` (the DESIGN.md contract) and :func:`read_report` joins the two back together.

Publishing writes a run into a hidden staging folder beside ``reports/<run-id>/``, fsyncs it and
renames it into place, then swaps ``reports/index.html`` by rename: a run killed at any point
leaves the previously published reports exactly as they were, and a write that fails (a full
disk) leaves no staging folder or temp file behind. What else the tool may touch in the reports
folder (pre-flight checks, retention) is in :mod:`audit.output.reportsdir`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import msgspec

from audit.errors import AuditError
from audit.findings import Finding, Severity, from_jsonl, to_jsonl
from audit.models import StageResult

#: Stage names in the order the runner executes them (and renderers show them).
STAGES: tuple[str, ...] = ("structure", "images", "urls", "license", "takedown", "expectations")

StageStatus = Literal["ok", "skipped", "failed"]
RunStatus = Literal["running", "succeeded", "failed"]

REPORT_FILE = "report.json"
FINDINGS_FILE = "findings.jsonl"
PAGE_FILE = "index.html"
DATA_DOCS_DIR = "data-docs"
_STAGING_PREFIX = ".staging-"
_STAGING_NAME = re.compile(r"\.staging-\d{8}T\d{6}Z-[0-9a-f]{4}")


class StageRun(msgspec.Struct, kw_only=True):
    """One stage on one dataset: its result, or why it did not run (skipped or failed)."""

    status: StageStatus
    result: StageResult
    note: str = ""
    seconds: float = 0.0
    finding_count: int = 0  # on disk only: this stage's share of findings.jsonl, in report order


class DatasetReport(msgspec.Struct, kw_only=True):
    """Everything one run learned about one configured dataset."""

    name: str
    kind: str
    records: int | None = None
    #: Local images missing / images referenced (images stage).
    missing_rate: float | None = None
    #: Source URLs gone, dead or redirecting to a placeholder / URLs probed (urls stage).
    url_missing_rate: float | None = None
    stages: dict[str, StageRun] = msgspec.field(default_factory=dict)
    #: The records behind the first example findings of each code: index -> JSON excerpt, all
    #: from ``examples_file`` (the conversation file, named as the findings name it).
    examples: dict[int, str] = msgspec.field(default_factory=dict)
    examples_file: str | None = None

    def findings(self) -> Iterator[Finding]:
        for stage in ordered_stages(self.stages):
            yield from self.stages[stage].result.findings

    def stage(self, name: str) -> StageResult | None:
        """The stage's result when it ran (status ok), else None."""
        run = self.stages.get(name)
        return run.result if run is not None and run.status == "ok" else None


class Totals(msgspec.Struct, kw_only=True):
    """Counts over every dataset and stage (summary cards, gate, run history)."""

    datasets: int = 0
    records: int = 0
    errors: int = 0
    warnings: int = 0
    infos: int = 0
    by_code: dict[str, int] = msgspec.field(default_factory=dict)
    stages_skipped: int = 0
    stages_failed: int = 0


class ConfigSummary(msgspec.Struct, kw_only=True):
    """The parts of the config a reader of the report needs to interpret it."""

    config_file: str | None = None
    purpose: str = "research"
    redistribute_images: bool = False
    redistribute_annotations: bool = False
    datasets: list[str] = msgspec.field(default_factory=list)
    image_level: str = "header"
    allow_private_urls: bool = False


class PreviousRun(msgspec.Struct, kw_only=True):
    """The last succeeded run before this one: the nightly report shows the change since then."""

    run_id: str
    started: datetime
    totals: Totals
    missing_rates: dict[str, float | None] = msgspec.field(default_factory=dict)


class AuditReport(msgspec.Struct, kw_only=True):
    """One audit run: when, with what settings, per dataset the stage results, and totals."""

    run_id: str
    started: datetime
    finished: datetime | None = None
    status: RunStatus = "running"
    error: str | None = None  # why the run failed as a whole
    config: ConfigSummary = msgspec.field(default_factory=ConfigSummary)
    datasets: list[DatasetReport] = msgspec.field(default_factory=list)
    totals: Totals = msgspec.field(default_factory=Totals)
    data_docs: str | None = None  # path of the Data Docs index, relative to the run folder
    log: str | None = None  # the run's log (stage timings, warnings, tracebacks), ditto
    previous: PreviousRun | None = None
    version: int = 1

    def findings(self) -> Iterator[Finding]:
        """All findings, dataset by dataset in config order, stages in :data:`STAGES` order."""
        for ds in self.datasets:
            yield from ds.findings()

    @property
    def passed(self) -> bool:
        """Ran to the end, every stage that applied ran, and no error-severity finding."""
        t = self.totals
        return self.status == "succeeded" and t.errors == 0 and t.stages_failed == 0


def ordered_stages(stages: dict[str, Any]) -> list[str]:
    """Stage names present, known stages first in run order, then any others alphabetically."""
    known = [s for s in STAGES if s in stages]
    return known + sorted(s for s in stages if s not in STAGES)


def new_run_id(now: datetime | None = None) -> str:
    """Sortable, filesystem-safe, unique enough for one machine: 20261126T021500Z-1a2b."""
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + os.urandom(2).hex()


def compute_totals(datasets: list[DatasetReport]) -> Totals:
    """Recount totals from the per-dataset stages (the only source of truth)."""
    by_sev: Counter[Severity] = Counter()
    by_code: Counter[str] = Counter()
    skipped = failed = 0
    for ds in datasets:
        for run in ds.stages.values():
            skipped += run.status == "skipped"
            failed += run.status == "failed"
        for f in ds.findings():
            by_sev[f.severity] += 1
            by_code[f.code] += 1
    return Totals(
        datasets=len(datasets),
        records=sum(ds.records or 0 for ds in datasets),
        errors=by_sev[Severity.ERROR],
        warnings=by_sev[Severity.WARNING],
        infos=by_sev[Severity.INFO],
        by_code=dict(sorted(by_code.items())),
        stages_skipped=skipped,
        stages_failed=failed,
    )


# ---- JSON round-trip ---------------------------------------------------------------------------

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(AuditReport)


def to_files(report: AuditReport) -> tuple[bytes, bytes]:
    """``(report.json, findings.jsonl)``: the report without findings, and the findings."""
    findings: list[Finding] = []
    datasets = []
    for ds in report.datasets:
        stages = {}
        for name in ordered_stages(ds.stages):
            run = ds.stages[name]
            findings.extend(run.result.findings)
            stripped = msgspec.structs.replace(run.result, findings=[])
            stages[name] = msgspec.structs.replace(
                run, result=stripped, finding_count=len(run.result.findings)
            )
        datasets.append(msgspec.structs.replace(ds, stages=stages))
    compact = msgspec.structs.replace(report, datasets=datasets)
    return msgspec.json.format(_ENCODER.encode(compact), indent=1), to_jsonl(findings)


def from_files(report_json: bytes, findings_jsonl: bytes) -> AuditReport:
    """Inverse of :func:`to_files`: re-attach the findings to their dataset and stage."""
    report = _DECODER.decode(report_json)
    findings = from_jsonl(findings_jsonl)
    pos = 0
    for ds in report.datasets:
        for name in ordered_stages(ds.stages):
            run = ds.stages[name]
            run.result.findings = findings[pos : pos + run.finding_count]
            pos += run.finding_count
            run.finding_count = 0  # back to the in-memory form (see StageRun)
    if pos != len(findings):
        raise ValueError(f"{FINDINGS_FILE} has {len(findings)} findings, report.json counts {pos}")
    return report


def read_previous(run_dir: str | Path) -> PreviousRun | None:
    """What a later run compares against, from ``report.json`` alone (findings are not read)."""
    try:
        report = _DECODER.decode((Path(run_dir) / REPORT_FILE).read_bytes())
    except (OSError, msgspec.DecodeError):
        return None  # pruned or damaged: the new report simply shows no change
    return PreviousRun(
        run_id=report.run_id,
        started=report.started,
        totals=report.totals,
        missing_rates={ds.name: ds.missing_rate for ds in report.datasets},
    )


def read_report(run_dir: str | Path) -> AuditReport:
    """Load a published run folder back into an :class:`AuditReport`."""
    d = Path(run_dir)
    return from_files((d / REPORT_FILE).read_bytes(), (d / FINDINGS_FILE).read_bytes())


# ---- atomic publish ----------------------------------------------------------------------------


def staging_dir(reports_dir: str | Path, run_id: str) -> Path:
    """Where a run writes before it is published (Data Docs go in ``<staging>/data-docs``).

    Beside the final folder so the publishing rename stays on one file system.
    """
    path = Path(reports_dir) / f"{_STAGING_PREFIX}{run_id}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AuditError(
            f"{path.parent}: cannot write reports there: {exc.strerror or exc}"
        ) from None
    return path


def remove_stale_staging(reports_dir: str | Path) -> int:
    """Delete staging folders left by killed runs (call while holding the run lock).

    Only names a run of this tool gives its staging folder: a user's ``.staging-notes`` stays.
    """
    try:
        found = [p for p in Path(reports_dir).iterdir() if _STAGING_NAME.fullmatch(p.name)]
    except OSError:
        return 0
    for p in found:
        shutil.rmtree(p, ignore_errors=True)
    return len(found)


def write_file(path: Path, data: bytes) -> None:
    """Write and fsync one file (its bytes are on disk before any rename that publishes it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


#: How a file's bytes reach the disk; tests pass one that fails like a full disk.
Writer = Callable[[Path, bytes], None]


def publish(
    report: AuditReport,
    reports_dir: str | Path,
    *,
    render_page: Callable[[AuditReport], str] | None = None,
    before_rename: Callable[[Path], None] | None = None,
    write: Writer = write_file,
) -> Path:
    """Write the run into its staging folder, fsync everything, rename it to ``<run-id>/``.

    ``render_page`` makes the run's HTML page; ``before_rename`` is a hook for tests (simulate a
    kill) and for adding files. Returns the published folder. The run's previous reports and
    ``index.html`` are never modified in place; when a write fails the staging folder is removed.
    """
    root = Path(reports_dir)
    stage = staging_dir(root, report.run_id)
    try:
        report_json, findings_jsonl = to_files(report)
        write(stage / FINDINGS_FILE, findings_jsonl)
        write(stage / REPORT_FILE, report_json)
        if render_page is not None:
            write(stage / PAGE_FILE, render_page(report).encode("utf-8"))
        if before_rename is not None:
            before_rename(stage)
        _fsync_tree(stage)
        final = root / report.run_id
        stage.rename(final)  # fails rather than overwrite: run ids are never reused
    except Exception:  # a kill (BaseException) leaves it to the next run's sweep, as documented
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _fsync_dir(root)
    return final


def write_atomic(path: str | Path, data: bytes, *, write: Writer = write_file) -> None:
    """Replace ``path`` by rename, so readers see the old or the new file, never a mix.

    A failed write (a full disk) removes its temp file and leaves ``path`` as it was.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp, data)
        tmp.replace(target)
    except Exception:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(Path(dirpath) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def published_runs(reports_dir: str | Path) -> list[str]:
    """Run ids with a complete published folder, newest first."""
    root = Path(reports_dir)
    if not root.is_dir():
        return []
    runs = [
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / REPORT_FILE).is_file()
    ]
    return sorted(runs, reverse=True)
