"""HTML rendering of a report and of the run index: self-contained pages, every value escaped.

Jinja2 with autoescape forced on: dataset text (captions, ids, messages quoting records) can contain
markup and must show as text. Charts are inline SVG computed here (coordinates only; labels are
escaped by the template), CSS is inline, there are no scripts and no external resources, so a
page opened from disk or from a CI artifact looks the same with no network.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
import msgspec

from audit import __version__
from audit.figures import AVAILABILITY_TEXT
from audit.findings import CATALOGUE, Finding, Severity
from audit.output import model as rpt
from audit.results import AnyStageResult, ExpectationsResult, LicenseResult

#: Examples shown per finding code: the page stays small for a dataset with 100K findings.
EXAMPLES_PER_CODE = 8
#: Items shown per statistics mapping (prompt distributions and the like can be long).
STATS_ITEMS = 12
#: The share of CC-3M images LLaVA documents as no longer reachable (spec/llava-data.md §1.2).
CC3M_BASELINE = 0.15
#: About 30% by 2024 (spec/field-anchors.md): shown as a second reference line.
CC3M_2024 = 0.30

ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("audit.output.render", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _num(value: object) -> str:
    """Counts with thousands separators; a missing or odd statistic shows as itself, never fails."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int | float):
        return f"{value:,}"
    return str(value)


ENV.filters["num"] = _num


@dataclass(frozen=True)
class CodeGroup:
    """Findings of one code: the catalogue's words and a capped list of examples."""

    code: str
    severity: str
    title: str
    explanation: str
    count: int
    examples: list[Finding]


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    width: float  # in chart units
    text: str
    series: str  # "local" or "url"


@dataclass(frozen=True)
class LicenceRow:
    use: str
    declared: bool
    counts: list[int]  # per :data:`VERDICTS`
    usable: int


@dataclass(frozen=True)
class RuleRow:
    label: str
    severity: str
    detail: str


#: Licence verdicts, least to most restrictive, as the licence stage names them.
VERDICTS = ("allowed", "allowed_with_obligations", "conditional", "unknown", "forbidden")
#: the licence stage's uses, purpose/action (audit.licensing.USES; output does not import it)
USES = (
    "research/train",
    "research/redistribute-annotations",
    "research/redistribute-images",
    "commercial/train",
    "commercial/redistribute-annotations",
    "commercial/redistribute-images",
)
#: A stage's outcome (:attr:`audit.output.model.StageRun.outcome`) -> its badge's colour class.
OUTCOME_CLASS = {
    "clean": "ok",
    "warnings": "warning",
    "errors": "error",
    "skipped": "skipped",
    "failed": "failed",
}
#: A run's result in the run index (:attr:`audit.store.runs.RunRecord.result`) -> badge class.
RESULT_CLASS = {
    "passed": "passed",
    "errors": "error",
    "incomplete": "failed",
    "gate failed": "failed",
    "failed": "failed",
    "interrupted": "failed",
    "running": "running",
}
#: Expectation rules listed per dataset (failed ones first); Data Docs have all of them.
RULES_SHOWN = 25


def group_findings(
    findings: Iterable[Finding], totals: Mapping[tuple[str, Severity], int] | None = None
) -> list[CodeGroup]:
    """Findings by code and severity (as the console lists them), worst first, then most
    frequent; examples capped per group. ``totals`` are the counts when ``findings`` are only
    examples (a stage run on Spark)."""
    counts: dict[tuple[str, Severity], int] = defaultdict(int)
    examples: dict[tuple[str, Severity], list[Finding]] = defaultdict(list)
    for f in findings:
        key = (f.code, f.severity)
        counts[key] += 1
        if len(examples[key]) < EXAMPLES_PER_CODE:
            examples[key].append(f)
    if totals is not None:
        counts = defaultdict(int, totals)
    groups = []
    for (code, severity), n in counts.items():
        entry = CATALOGUE.get(code)
        groups.append(
            CodeGroup(
                code=code,
                severity=severity.value,
                title=entry.title if entry else code,
                explanation=entry.explanation if entry else "",
                count=n,
                examples=examples[(code, severity)],
            )
        )
    return sorted(groups, key=lambda g: (-Severity(g.severity).rank, -g.count, g.code))


def _rate_top(report: rpt.AuditReport) -> float:
    """Chart scale: the largest rate shown, and always room for the 30% reference line."""
    rates = [r or 0.0 for d in report.datasets for r in _rates(d)]
    return max([CC3M_2024 * 1.15, *rates])


def _rates(d: rpt.DatasetReport) -> tuple[float | None, float | None]:
    """The unavailable rates of the local images and the source URLs (None: not probed)."""
    return (
        d.images.unavailable_rate if d.images else None,
        d.urls.unavailable_rate if d.urls else None,
    )


def missing_bars(report: rpt.AuditReport, width: float = 360.0) -> list[Bar]:
    """Two bars per dataset (local files, source URLs): the unavailable rate (missing + broken),
    on one scale with the baselines."""
    top = _rate_top(report)
    bars = []
    for d in report.datasets:
        for series, rate in zip(("local", "url"), _rates(d), strict=True):
            bars.append(
                Bar(
                    label=d.name,
                    value=rate,
                    width=0.0 if rate is None else width * rate / top,
                    text="not probed" if rate is None else f"{rate:.1%}",
                    series=series,
                )
            )
    return bars


def baseline_x(report: rpt.AuditReport, rate: float, width: float = 360.0) -> float:
    return width * rate / _rate_top(report)


def licence_rows(ds: rpt.DatasetReport) -> list[LicenceRow]:
    """Records per verdict for each use, the declared uses first (licence stage statistics)."""
    result = ds.stage("license")
    if not isinstance(result, LicenseResult) or result.skipped is not None:
        return []
    declared = [u for u in result.uses if u in USES]
    order = declared + [u for u in USES if u not in declared]
    return [
        LicenceRow(
            use=use,
            declared=use in declared,
            counts=[result.verdicts.get(use, {}).get(v, 0) for v in VERDICTS],
            usable=result.usable.get(use, 0),
        )
        for use in order
    ]


def rule_rows(ds: rpt.DatasetReport) -> list[RuleRow]:
    """The failed expectation rules of the dataset's suite, capped at RULES_SHOWN."""
    result = ds.stage("expectations")
    rules = result.rules if isinstance(result, ExpectationsResult) else []
    rows = []
    for rule in rules:
        if rule.success:
            continue
        label = (rule.type or "?").removeprefix("expect_").replace("_", " ")
        if rule.column:
            label += f" · {rule.column}"
        if rule.invalid:
            detail = f"could not evaluate: {rule.invalid}"
        elif rule.unexpected_percent is not None:
            detail = f"{rule.unexpected_percent:.1f}% unexpected"
        else:
            detail = f"observed {rule.observed}"
        rows.append(RuleRow(label, rule.severity, detail))
    return rows[:RULES_SHOWN]


def statistics(result: AnyStageResult | None) -> Any:
    """A stage result's fields for the statistics section, shortened (findings are listed
    by code elsewhere; the licence stage's per-record verdicts, or on Spark their table, are
    not shown)."""
    if result is None:
        return {}
    fields = msgspec.to_builtins(result)
    hidden = ("stage", "findings", "finding_totals", "record_verdicts", "record_verdicts_table")
    for listed_elsewhere in hidden:
        fields.pop(listed_elsewhere, None)
    return _short(fields)


def _short(value: Any) -> Any:
    """Statistics for display: long mappings and lists cut to :data:`STATS_ITEMS` entries."""
    if isinstance(value, dict):
        items = list(value.items())
        shown = {str(k): _short(v) for k, v in items[:STATS_ITEMS]}
        if len(items) > STATS_ITEMS:
            shown["…"] = f"{len(items) - STATS_ITEMS} more"
        return shown
    if isinstance(value, list):
        return [_short(v) for v in value[:STATS_ITEMS]] + (
            [f"… {len(value) - STATS_ITEMS} more"] if len(value) > STATS_ITEMS else []
        )
    if isinstance(value, float):
        return f"{value:.4g}"
    return value


def duration(start: datetime, end: datetime | None) -> str:
    if end is None:
        return "-"
    seconds = (end - start).total_seconds()
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def render_run(report: rpt.AuditReport) -> str:
    """The run's page (``reports/<run-id>/index.html``)."""
    excerpts = {
        (ds.name, file, index): text
        for ds in report.datasets
        for file, examples in [(ds.examples_file, ds.examples), *ds.shard_examples.items()]
        for index, text in examples.items()
    }
    severity_by_dataset = {ds.name: _severity_counts(ds.finding_counts()) for ds in report.datasets}
    return ENV.get_template("run.html.j2").render(
        r=report,
        version=__version__,
        stages=rpt.STAGES,
        groups=group_findings(report.findings(), report.finding_counts()),
        tables=sorted({_table_root(t) for t in report.finding_tables()}),
        bars=missing_bars(report),
        licence_rows=licence_rows,
        rule_rows=rule_rows,
        verdicts=VERDICTS,
        baseline15=baseline_x(report, CC3M_BASELINE),
        baseline30=baseline_x(report, CC3M_2024),
        severity_by_dataset=severity_by_dataset,
        duration=duration(report.started, report.finished),
        statistics=statistics,
        excerpts=excerpts,
        delta=_delta,
        fixed=_fixed_codes(report),
        outcome_class=OUTCOME_CLASS,
        definitions=AVAILABILITY_TEXT,
    )


def render_run_safely(report: rpt.AuditReport) -> str:
    """The run's page, or a plain page with the totals if rendering fails.

    A stage whose statistics have an unexpected shape must not cost the night's published report:
    the data is in report.json either way, and the page says what went wrong.
    """
    try:
        return render_run(report)
    except Exception as exc:
        return ENV.get_template("fallback.html.j2").render(
            r=report, error=f"{type(exc).__name__}: {exc}", version=__version__
        )


def _delta(now: int, before: int) -> str:
    """A change in a count, signed, for the 'since the previous run' lines."""
    diff = now - before
    return "no change" if diff == 0 else f"{diff:+,}"


def _fixed_codes(report: rpt.AuditReport) -> list[tuple[str, int]]:
    """Codes the previous run reported that this one no longer does."""
    if report.previous is None:
        return []
    before = report.previous.totals.by_code
    return sorted((c, n) for c, n in before.items() if c not in report.totals.by_code)


def _table_root(location: str) -> str:
    """``findings/`` for the run folder's tables (``findings/<stage>/<dataset>``), else as is."""
    return location if location.startswith("/") else location.split("/", 1)[0] + "/"


def _severity_counts(found: Mapping[tuple[str, Severity], int]) -> dict[str, int]:
    counts = {s.value: 0 for s in Severity}
    for (_, severity), n in found.items():
        counts[severity.value] += n
    return counts
