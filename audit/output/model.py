"""The audit report as data: what one run found, and its JSON round-trip.

Everything downstream (console, HTML, gate, trends) reads an :class:`AuditReport`, never the stages
directly, so a report re-read from disk renders and gates exactly like the one just computed.
``report.json`` holds everything but the findings (kept bounded for big datasets); the findings go
to ``findings.jsonl.gz`` (the DESIGN.md contract's JSON Lines, gzip-compressed) and :func:`read_report` joins the two back together.

Publishing a run folder is :mod:`audit.output.publish`; rendering is :mod:`audit.output.render`.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import msgspec

from audit.errors import AuditError
from audit.figures import Availability
from audit.findings import Finding, Severity, from_jsonl, to_jsonl
from audit.results import AnyStageResult

#: Stage names in the order the runner executes them (and renderers show them).
STAGES: tuple[str, ...] = ("structure", "images", "urls", "license", "takedown", "expectations")

StageStatus = Literal["ok", "skipped", "failed"]
StageOutcome = Literal["clean", "warnings", "errors", "skipped", "failed"]
RunStatus = Literal["running", "succeeded", "failed"]

REPORT_FILE = "report.json"
#: Every finding, gzip-compressed JSON Lines (about 10x smaller); runs published before 0.x
#: have the plain ``findings.jsonl``, which every reader still takes.
FINDINGS_FILE = "findings.jsonl.gz"
PLAIN_FINDINGS_FILE = "findings.jsonl"
_GZIP_MAGIC = b"\x1f\x8b"
PAGE_FILE = "index.html"
DATA_DOCS_DIR = "data-docs"
#: Each dataset's per-record licence classes (``RecordLicences`` by dataset name), for `export`.
LICENCES_FILE = "licences.json"
#: report.json's layout; 2: typed stage results (a tagged union on "stage") instead of stats dicts.
REPORT_VERSION = 2


class ReportFormatError(AuditError):
    """A ``report.json`` in another layout (written by an older llava-audit): one line, exit 3."""


class StageRun(msgspec.Struct, kw_only=True):
    """One stage on one dataset: its typed result, or why it did not run (skipped or failed)."""

    status: StageStatus
    result: AnyStageResult | None = None  # None when the stage was skipped or failed
    note: str = ""
    seconds: float = 0.0
    finding_count: int = 0  # on disk only: this stage's share of findings.jsonl, in report order

    @property
    def outcome(self) -> StageOutcome:
        """What the stage came to, as every view labels it: failed or skipped when it did not
        run, else errors, warnings or clean by its worst finding."""
        if self.status != "ok":
            return self.status
        counts = self.result.finding_counts() if self.result else {}
        worst = max((severity.rank for (_, severity), n in counts.items() if n), default=0)
        if worst >= Severity.ERROR.rank:
            return "errors"
        return "warnings" if worst >= Severity.WARNING.rank else "clean"


class Recovery(msgspec.Struct, kw_only=True, frozen=True):
    """Records whose local image is missing or broken, by what their source URL says."""

    broken: int = 0  # image missing, empty, corrupt, truncated or unreadable
    recoverable: int = 0  # the source URL answered with an image: `export` lists it for re-fetch
    gone: int = 0  # the source URL is dead for good (404/410, DNS, placeholder, not an image)

    @property
    def unknown(self) -> int:
        """No URL, a transient failure, an opt-out or a takedown: neither of the above."""
        return self.broken - self.recoverable - self.gone


class InputFingerprint(msgspec.Struct, kw_only=True, frozen=True, array_like=True):
    """An input file (or image root) as the run saw it: ``export`` reuses the run only while
    every input still matches (size, mtime, inode, ctime; a missing one is all -1)."""

    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int


class DatasetReport(msgspec.Struct, kw_only=True):
    """Everything one run learned about one configured dataset."""

    name: str
    kind: str
    records: int | None = None
    #: Local images missing, broken and unavailable (images stage; None: not probed), and the
    #: same for the source URLs (urls stage): see :class:`audit.figures.Availability`.
    images: Availability | None = None
    urls: Availability | None = None
    stages: dict[str, StageRun] = msgspec.field(default_factory=dict)
    #: The records behind the first example findings of each code: index -> JSON excerpt, all
    #: from ``examples_file`` (the conversation file, named as the findings name it).
    examples: dict[int, str] = msgspec.field(default_factory=dict)
    examples_file: str | None = None
    #: A shard set's: shard (named as findings name it) -> index in the shard -> JSON excerpt.
    shard_examples: dict[str, dict[int, str]] = msgspec.field(default_factory=dict)
    #: Broken local images re-fetchable from their source URL, and gone for good.
    recovery: Recovery | None = None

    def findings(self) -> Iterator[Finding]:
        for stage in ordered_stages(self.stages):
            result = self.stages[stage].result
            if result is not None:
                yield from result.findings

    def finding_counts(self) -> Counter[tuple[str, Severity]]:
        """(code, severity) -> findings over every stage: counted from the findings, or the
        stage's ``finding_totals`` when it holds examples only (the Spark engine)."""
        counts: Counter[tuple[str, Severity]] = Counter()
        for run in self.stages.values():
            if run.result is not None:
                counts.update(run.result.finding_counts())
        return counts

    def stage(self, name: str) -> AnyStageResult | None:
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
    unavailable_rates: dict[str, float | None] = msgspec.field(default_factory=dict)


#: The folder of a run holding each takedown request's checklist page.
TAKEDOWNS_DIR = "takedowns"


class TakedownSummary(msgspec.Struct, kw_only=True, frozen=True):
    """One takedown request as the report lists it (no personal data: contact and notes stay in
    the ledger); ``checklist`` is its checklist page, relative to the run folder."""

    request_id: str
    ground: str
    received: date
    deadline: date | None = None
    deadline_note: str = ""
    closed: bool = False
    open_steps: list[str] = msgspec.field(default_factory=list)
    checklist: str | None = None


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
    takedowns: list[TakedownSummary] = msgspec.field(default_factory=list)
    #: Every configured input (path as configured -> fingerprint) and a digest of the settings,
    #: taken before the stages ran: whether a later `export` may reuse this run.
    inputs: dict[str, InputFingerprint] = msgspec.field(default_factory=dict)
    settings_digest: str = ""
    version: int = REPORT_VERSION

    def findings(self) -> Iterator[Finding]:
        """All findings, dataset by dataset in config order, stages in :data:`STAGES` order."""
        for ds in self.datasets:
            yield from ds.findings()

    def finding_counts(self) -> Counter[tuple[str, Severity]]:
        """(code, severity) -> findings over every dataset (see DatasetReport.finding_counts)."""
        return sum((ds.finding_counts() for ds in self.datasets), Counter())

    def finding_tables(self) -> list[str]:
        """The Parquet tables of stages run on Spark: with any, :meth:`findings` are examples."""
        totals = [
            r.result.finding_totals for d in self.datasets for r in d.stages.values() if r.result
        ]
        return sorted({t.location for t in totals if t is not None})

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
        for (code, severity), n in ds.finding_counts().items():
            by_sev[severity] += n
            by_code[code] += n
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
    """``(report.json, findings JSONL)``: the report without findings, and the findings
    (uncompressed: :func:`compress_findings` makes the published file)."""
    findings: list[Finding] = []
    datasets = []
    for ds in report.datasets:
        stages = {}
        for name in ordered_stages(ds.stages):
            run = ds.stages[name]
            if run.result is None:
                stages[name] = run
                continue
            findings.extend(run.result.findings)
            stripped = msgspec.structs.replace(run.result, findings=[])
            stages[name] = msgspec.structs.replace(
                run, result=stripped, finding_count=len(run.result.findings)
            )
        datasets.append(msgspec.structs.replace(ds, stages=stages))
    compact = msgspec.structs.replace(report, datasets=datasets)
    return msgspec.json.format(_ENCODER.encode(compact), indent=1), to_jsonl(findings)


def compress_findings(jsonl: bytes) -> bytes:
    """The published ``findings.jsonl.gz``: reproducible bytes (no timestamp in the header)."""
    return gzip.compress(jsonl, compresslevel=6, mtime=0)


def findings_bytes(data: bytes) -> bytes:
    """Findings JSON Lines from a file's bytes, gzip-compressed or plain (read by content, so a
    renamed file works either way)."""
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        raise ValueError("damaged or truncated gzip data") from None


def findings_path(run_dir: str | Path) -> Path:
    """A run folder's findings file: ``findings.jsonl.gz``, or an older run's ``findings.jsonl``."""
    d = Path(run_dir)
    plain = d / PLAIN_FINDINGS_FILE
    return plain if not (d / FINDINGS_FILE).exists() and plain.exists() else d / FINDINGS_FILE


class _Layout(msgspec.Struct):
    version: int = 1


def from_files(
    report_json: bytes, findings_jsonl: bytes, *, name: str = REPORT_FILE
) -> AuditReport:
    """Inverse of :func:`to_files`: re-attach the findings to their dataset and stage.

    A report in another layout raises :class:`ReportFormatError` naming ``name``.
    """
    version = msgspec.json.decode(report_json, type=_Layout).version
    if version != REPORT_VERSION:
        raise ReportFormatError(
            f"{name}: written in report format {version} (an older llava-audit); this version "
            f"reads format {REPORT_VERSION}: run the audit again to gate on it or use it as a baseline"
        )
    report = _DECODER.decode(report_json)
    findings = from_jsonl(findings_bytes(findings_jsonl))
    pos = 0
    for ds in report.datasets:
        for name_ in ordered_stages(ds.stages):
            run = ds.stages[name_]
            if run.result is not None:
                own = findings[pos : pos + run.finding_count]
                run.result = msgspec.structs.replace(run.result, findings=own)
            pos += run.finding_count
            run.finding_count = 0  # back to the in-memory form (see StageRun)
    if pos != len(findings):
        raise ValueError(f"{FINDINGS_FILE} has {len(findings)} findings, report.json counts {pos}")
    return report


class _Rate(msgspec.Struct):
    unavailable_rate: float | None = None


class _RatesOnly(msgspec.Struct):
    name: str
    images: _Rate | None = None
    missing_rate: float | None = None  # reports before the images' figures were kept

    @property
    def unavailable_rate(self) -> float | None:
        return self.images.unavailable_rate if self.images is not None else self.missing_rate


class _TrendOnly(msgspec.Struct):
    """The part of any report layout (older ones too) the next run's trend needs."""

    run_id: str
    started: datetime
    totals: Totals
    datasets: list[_RatesOnly] = msgspec.field(default_factory=list)


def read_previous(run_dir: str | Path) -> PreviousRun | None:
    """What a later run compares against, from ``report.json`` alone (findings are not read)."""
    try:
        report = msgspec.json.decode((Path(run_dir) / REPORT_FILE).read_bytes(), type=_TrendOnly)
    except (OSError, msgspec.DecodeError):
        return None  # pruned or damaged: the new report simply shows no change
    return PreviousRun(
        run_id=report.run_id,
        started=report.started,
        totals=report.totals,
        unavailable_rates={ds.name: ds.unavailable_rate for ds in report.datasets},
    )


def read_report(run_dir: str | Path) -> AuditReport:
    """Load a published run folder back into an :class:`AuditReport`."""
    d = Path(run_dir)
    report_json, findings = (d / REPORT_FILE).read_bytes(), findings_path(d).read_bytes()
    return from_files(report_json, findings, name=str(d / REPORT_FILE))
