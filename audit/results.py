"""What each stage returns: typed results the runner, the report, the CLI and later stages read.

Every field is named so a reader of the report or a later stage never looks a statistic up by a
string key or parses a finding's message. The six result types form one msgspec tagged union on
``stage`` (:data:`AnyStageResult`), so ``report.json`` and the stage cache decode back into the
same types. Foundation layer: no I/O, and nothing here imports the stages that fill these in.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import msgspec

from audit.config import LicenseConfig
from audit.figures import (
    IMAGE_BROKEN,
    IMAGE_MISSING,
    URL_BROKEN,
    URL_MISSING,
    URL_NOT_JUDGED,
    Availability,
    availability,
)
from audit.findings import Finding, Severity


class FindingTotals(msgspec.Struct, frozen=True, kw_only=True):
    """A stage's findings counted where they were written (the Spark engine's Parquet table):
    then ``findings`` holds only the first examples of each code, and these are the counts."""

    #: code -> severity -> count, over every finding of the stage
    counts: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    #: the Parquet folder (partitioned by dataset and code) that holds all of them
    location: str = ""

    @property
    def total(self) -> int:
        return sum(n for by_severity in self.counts.values() for n in by_severity.values())


class StageResult(msgspec.Struct, kw_only=True, frozen=True, tag_field="stage"):
    """The part every stage result shares: its findings (the tag names the stage)."""

    findings: list[Finding] = msgspec.field(default_factory=list)
    #: set when the findings stay outside this process (Spark): ``findings`` are examples only
    finding_totals: FindingTotals | None = None

    @property
    def stage(self) -> str:
        """The stage's name, as the report and the runner key it."""
        return str(type(self).__struct_config__.tag)

    def finding_counts(self) -> dict[tuple[str, Severity], int]:
        """(code, severity) -> findings, over all of them: from ``finding_totals`` when the
        findings stayed in a table (``findings`` are examples then), else counted here."""
        if self.finding_totals is not None:
            return {
                (code, Severity(severity)): n
                for code, by_severity in self.finding_totals.counts.items()
                for severity, n in by_severity.items()
            }
        return dict(Counter((f.code, f.severity) for f in self.findings))


class _Counts(msgspec.Struct, frozen=True, kw_only=True):
    """A small group of statistics."""


# ---- structure -------------------------------------------------------------------------------


class PromptStats(_Counts, frozen=True):
    """The first human turn's instruction: the most common ones, and how many are known prompts."""

    top: dict[str, int] = msgspec.field(default_factory=dict)
    known: int | None = None  # None: the kind has no list of known prompts
    unknown: int | None = None


class DuplicateStats(_Counts, frozen=True):
    repeated_ids: int = 0
    repeated_images: int = 0
    exact_duplicates: int = 0


class MixStats(_Counts, frozen=True):
    """mix665k only: records per image folder prefix, text-only records, integer ids."""

    prefixes: dict[str, int] = msgspec.field(default_factory=dict)
    text_only: int = 0
    int_ids: int = 0


class CrossfileStats(_Counts, frozen=True):
    """Chat file against its metadata file (same ids and images; CC-3M captions)."""

    matched: int = 0
    only_in_chat: int = 0
    only_in_metadata: int = 0
    image_mismatches: int = 0
    caption_mismatches: int = 0


class FileStats(_Counts, frozen=True, omit_defaults=True):
    """One audited file: conversation files fill the first group, metadata files the second
    (in JSON, a field the file's kind does not have is left out)."""

    records: int = 0
    turns: int | None = None
    image_records: int | None = None
    text_only_records: int | None = None
    turn_counts: dict[str, int] | None = None
    image_token_position: dict[str, int] | None = None
    prompts: PromptStats | None = None
    duplicates: DuplicateStats | None = None
    mix: MixStats | None = None
    metadata_keys: bool = False  # a metadata file (its records are not counted as the dataset's)
    keys: dict[str, str] | None = None
    repeated_ids: int | None = None
    repeated_urls: int | None = None
    blip_caption_missing: int | None = None
    crossfile: CrossfileStats | None = None


class StructureResult(StageResult, tag="structure", frozen=True):
    """The structure stage: records in the conversation files, per-file statistics, and the files
    that could not be audited at all (the CLI exits 3 for them)."""

    records: int = 0
    files: dict[str, FileStats] = msgspec.field(default_factory=dict)
    unreadable: list[str] = msgspec.field(default_factory=list)


# ---- images ----------------------------------------------------------------------------------


class Spread(_Counts, frozen=True):
    min: int = 0
    median: float = 0.0
    max: int = 0


class Dimensions(_Counts, frozen=True):
    width: Spread = msgspec.field(default_factory=Spread)
    height: Spread = msgspec.field(default_factory=Spread)


class FolderCounts(_Counts, frozen=True):
    referenced: int = 0
    missing: int = 0
    broken: int = 0


class ImagesResult(StageResult, tag="images", frozen=True):
    """The local image probe; counts are per record (an image named by 3 records counts 3 times).

    Missing, broken and unavailable are :attr:`figures` (see :class:`Availability`), computed from
    ``status``: never stored apart, so no view can count them differently.
    """

    dataset: str = ""
    file: str = ""
    level: str = "header"
    roots: list[str] = msgspec.field(default_factory=list)
    referenced: int = 0
    unique_images: int = 0
    status: dict[str, int] = msgspec.field(default_factory=dict)
    formats: dict[str, int] = msgspec.field(default_factory=dict)
    dimensions: Dimensions | None = None
    worst_folders: dict[str, FolderCounts] = msgspec.field(default_factory=dict)
    probed: int = 0
    cached: int = 0
    seconds: float = 0.0

    @property
    def figures(self) -> Availability:
        return availability(self.status, IMAGE_MISSING, IMAGE_BROKEN)

    @property
    def none_found(self) -> bool:
        """Not one referenced image exists: the roots are most likely the wrong folders."""
        return bool(self.referenced) and self.status.get("missing") == self.referenced


# ---- urls ------------------------------------------------------------------------------------


class DomainCount(_Counts, frozen=True):
    domain: str = ""
    urls: int = 0
    unavailable: int = 0  # missing or broken (see Availability)
    unavailable_rate: float = 0.0


class UrlCounts(_Counts, frozen=True):
    """One URL file's probe (or the sum over a dataset's files)."""

    file: str = ""
    urls: int = 0
    unique_urls: int = 0
    probed: int = 0
    cached: int = 0
    status_counts: dict[str, int] = msgspec.field(default_factory=dict)
    referenced: int = 0  # records whose URL was judged (refused ones are not)
    opt_out: int = 0
    worst_domains: list[DomainCount] = msgspec.field(default_factory=list)
    seconds: float = 0.0
    probed_per_second: float | None = None

    @property
    def figures(self) -> Availability:
        """Missing, broken and unavailable source URLs (see :class:`Availability`)."""
        return availability(self.status_counts, URL_MISSING, URL_BROKEN, URL_NOT_JUDGED)


class OptOut(msgspec.Struct, frozen=True, array_like=True, order=True):
    """A record whose source URL carries a TDM opt-out (the licence stage's cache depends on them),
    and the kinds of opt-out (x-robots-tag, tdm-reservation, tdmrep-json, robots-txt)."""

    file: str
    index: int | None
    url: str
    kinds: tuple[str, ...] = ()


class Placeholder(_Counts, frozen=True):
    """A host's stand-in image found by the cross-URL pass (audit/probes/placeholders.py): the
    same bytes (``rule`` "bytes": ``sha256`` of the bytes read, total ``size``) or the same final
    redirect ``target`` ("redirect") answering ``urls`` distinct URLs on ``hosts`` hosts."""

    rule: Literal["bytes", "redirect"] = "bytes"
    sha256: str | None = None
    size: int | None = None
    target: str | None = None  # the final URL most of them redirect to, if they do
    urls: int = 0
    hosts: int = 0
    examples: list[str] = msgspec.field(default_factory=list)

    @property
    def label(self) -> str:
        """What the stand-in is, in words (console and report page)."""
        if self.rule == "redirect":
            return f"a redirect to {self.target}"
        size = "size unknown" if self.size is None else f"{self.size:,} bytes"
        via = f"; reached by redirects to {self.target}" if self.target else ""
        return f"the same image (sha256 {(self.sha256 or '')[:16]}, {size}{via})"


class UrlsResult(StageResult, tag="urls", frozen=True):
    """The source URL probe: totals over the dataset's URL files, and each file's counts."""

    totals: UrlCounts = msgspec.field(default_factory=UrlCounts)
    files: list[UrlCounts] = msgspec.field(default_factory=list)
    opt_outs: list[OptOut] = msgspec.field(default_factory=list)
    placeholders: list[Placeholder] = msgspec.field(default_factory=list)


# ---- licence ---------------------------------------------------------------------------------

#: use -> verdict value -> records
VerdictCounts = dict[str, dict[str, int]]


class LicenseFileTotals(_Counts, frozen=True):
    file: str = ""
    dataset: str = ""
    kind: str = ""
    records: int = 0
    verdicts: VerdictCounts = msgspec.field(default_factory=dict)
    usable: dict[str, int] = msgspec.field(default_factory=dict)
    by_source: dict[str, VerdictCounts] = msgspec.field(default_factory=dict)
    by_license: dict[str, VerdictCounts] = msgspec.field(default_factory=dict)
    inferred: int = 0
    opt_out: int = 0
    coco_records: int = 0
    coco_unresolved: int = 0


class LicenceClass(_Counts, frozen=True):
    """What a group of records shares: licences, and per declared use the verdict and obligations."""

    licenses: list[str] = msgspec.field(default_factory=list)
    verdicts: dict[str, str] = msgspec.field(default_factory=dict)  # use -> verdict value
    obligations: dict[str, list[str]] = msgspec.field(default_factory=dict)  # use -> obligations


class RecordLicences(_Counts, frozen=True):
    """Each record's licence class, compactly (a few classes, one small int per record), so an
    export can reuse a run's verdicts instead of judging 600K records again."""

    file: str = ""
    uses: list[str] = msgspec.field(default_factory=list)
    classes: list[LicenceClass] = msgspec.field(default_factory=list)
    records: list[int] = msgspec.field(default_factory=list)  # file position -> class (-1: none)


class LicenseResult(StageResult, tag="license", frozen=True):
    """Licence verdicts per declared use: dataset totals, per source and licence, per file.

    ``record_verdicts`` (file position -> verdict for the first declared use) feeds the
    expectations table; the runner leaves it and ``record_licences`` out of the report (one row
    per record). On Spark the verdicts stay in the executors' Parquet table
    ``record_verdicts_table`` (columns ``index``, ``verdict``) instead.
    """

    uses: list[str] = msgspec.field(default_factory=list)
    use: str = ""
    image_origin: str = ""
    settings: LicenseConfig = msgspec.field(default_factory=LicenseConfig)
    coco_joined: bool = False
    records: int = 0
    inferred: int = 0
    opt_out: int = 0
    coco_records: int = 0
    coco_unresolved: int = 0
    verdicts: VerdictCounts = msgspec.field(default_factory=dict)
    usable: dict[str, int] = msgspec.field(default_factory=dict)
    dataset_verdict: dict[str, str | None] = msgspec.field(default_factory=dict)
    usable_lines: list[str] = msgspec.field(default_factory=list)
    forbidden: dict[str, int] = msgspec.field(default_factory=dict)
    by_source: dict[str, VerdictCounts] = msgspec.field(default_factory=dict)
    by_license: dict[str, VerdictCounts] = msgspec.field(default_factory=dict)
    files: list[LicenseFileTotals] = msgspec.field(default_factory=list)
    skipped: str | None = None
    record_verdicts: dict[int, str] = msgspec.field(default_factory=dict)
    record_verdicts_table: str | None = None
    #: per record, for the run folder's licences.json (export); left out of report.json too
    record_licences: RecordLicences | None = None


# ---- takedown --------------------------------------------------------------------------------


class TakedownResult(StageResult, tag="takedown", frozen=True):
    blocklist_keys: int = 0
    pending_requests: int = 0
    records: int = 0
    unreadable: list[str] = msgspec.field(default_factory=list)
    present: int = 0
    pending: int = 0


# ---- expectations ----------------------------------------------------------------------------


class RuleResult(_Counts, frozen=True):
    """One expectation of the suite as Great Expectations judged it.

    ``kwargs``, ``observed`` and ``example_values`` are the suite's and GX's own JSON values,
    shown as they are; nothing reads inside them.
    """

    type: str = ""
    column: str | None = None
    kwargs: dict[str, object] = msgspec.field(default_factory=dict)
    severity: Literal["critical", "warning", "info"] = "critical"
    success: bool = False
    observed: object = None
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    examples: list[int] = msgspec.field(default_factory=list)
    example_values: list[object] = msgspec.field(default_factory=list)
    invalid: str | None = None


class ExpectationsResult(StageResult, tag="expectations", frozen=True):
    suite: str = ""
    kind: str = ""
    rows: int = 0
    evaluated: int = 0
    failed: int = 0
    success: bool = True
    data_docs: str | None = None  # the Data Docs index (absolute while running)
    rules: list[RuleResult] = msgspec.field(default_factory=list)
    cached: bool = False


AnyStageResult = (
    StructureResult
    | ImagesResult
    | UrlsResult
    | LicenseResult
    | TakedownResult
    | ExpectationsResult
)
