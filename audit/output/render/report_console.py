"""The rich console summary of an :class:`AuditReport`: one screen, the worst first.

Rendered from the same report object as the HTML page, so the terminal and the published report
never disagree. Dataset text is printed with markup disabled (a caption like ``[bold]`` stays text).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from audit.figures import Availability
from audit.output import model as rpt
from audit.output.render.console import render_findings
from audit.output.render.html import CC3M_BASELINE

#: A stage's outcome (:attr:`audit.output.model.StageRun.outcome`, the page's badge) -> style.
_OUTCOME_STYLE = {
    "clean": "green",
    "warnings": "yellow",
    "errors": "red",
    "skipped": "dim",
    "failed": "bold red",
}


def render_report(
    report: rpt.AuditReport, console: Console, *, published: Path | None = None
) -> None:
    """Print the summary: stages per dataset, findings by code, totals and where the report is."""
    console.print(_stage_table(report))
    render_findings(
        console,
        list(report.findings()),
        title="Findings by code",
        examples=1,
        show_info=False,
        counts=report.finding_counts(),
    )
    t = report.totals
    verdict = (
        Text("FAILED to run", style="bold red")
        if report.status != "succeeded"
        else Text("incomplete (stages failed)", style="bold red")
        if t.stages_failed
        else Text("errors found", style="bold red")
        if t.errors
        else Text("passed", style="bold green")
    )
    line = Text.assemble(verdict, f": {t.datasets} datasets, {t.records:,} records")
    if t.stages_failed or t.stages_skipped:
        line.append(f"; stages failed {t.stages_failed}, skipped {t.stages_skipped}")
    console.print(line)
    if report.previous is not None:
        before = report.previous.totals
        console.print(
            f"since the previous run {report.previous.run_id}: "
            f"errors {t.errors - before.errors:+,}, warnings {t.warnings - before.warnings:+,}",
            highlight=False,
        )
    if published is not None:
        console.print(Text.assemble("report: ", (str(published / rpt.PAGE_FILE), "bold")))


def _stage_table(report: rpt.AuditReport) -> Table:
    """One row per dataset; the stages as one wrapped cell so it fits an 80-column terminal."""
    table = Table(title=f"Audit {report.run_id}", title_justify="left")
    table.add_column("dataset")
    table.add_column("records", justify="right")
    table.add_column("unavailable images", justify="right")
    table.add_column("stages")
    for ds in report.datasets:
        stages = Text()
        for stage in rpt.STAGES:
            run = ds.stages.get(stage)
            if run is None:
                continue
            if stages:
                stages.append(" · ")
            stages.append(f"{stage} ")
            stages.append(_stage_label(run), style=_OUTCOME_STYLE[run.outcome])
        table.add_row(
            Text(f"{ds.name}\n{ds.kind}"),
            "-" if ds.records is None else f"{ds.records:,}",
            _figures(ds.images, ds.recovery),
            stages,
        )
    return table


def _stage_label(run: rpt.StageRun) -> str:
    """The stage's outcome, with its count: "2 errors", "3 warnings", "clean", "skipped"."""
    if run.result is None or run.outcome not in ("errors", "warnings"):
        return run.outcome
    severity = "error" if run.outcome == "errors" else "warning"
    n = sum(n for (_, sev), n in run.result.finding_counts().items() if sev == severity)
    return f"{n:,} {severity}{'s' if n != 1 else ''}"


def _figures(fig: Availability | None, recovery: rpt.Recovery | None) -> Text | str:
    """The local images' unavailable rate, its missing + broken counts, and how many of those
    a re-fetch from the source URL can restore (``export``'s refetch.parquet) or are gone."""
    if fig is None or fig.unavailable_rate is None:
        return "-"
    rate = fig.unavailable_rate
    cell = Text.assemble(
        (f"{rate:.1%}", "red" if rate > CC3M_BASELINE else "green"),
        (f"\n{fig.missing:,} missing\n{fig.broken:,} broken", "dim"),
    )
    if recovery is not None and recovery.broken:
        cell.append(f"\n{recovery.recoverable:,} re-fetchable\n{recovery.gone:,} gone for good")
    return cell
