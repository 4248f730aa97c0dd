"""The rich console summary of an :class:`AuditReport`: one screen, the worst first.

Rendered from the same report object as the HTML page, so the terminal and the published report
never disagree. Dataset text is printed with markup disabled (a caption like ``[bold]`` stays text).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from audit.output import report as rpt
from audit.output.html import CC3M_BASELINE, group_findings

#: Codes listed in the console summary; the HTML page and findings.jsonl have all of them.
CODES_SHOWN = 12

_STATUS_STYLE = {"ok": "green", "skipped": "dim", "failed": "bold red"}
_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def render_report(
    report: rpt.AuditReport, console: Console, *, published: Path | None = None
) -> None:
    """Print the summary: stages per dataset, findings by code, totals and where the report is."""
    console.print(_stage_table(report))
    groups = group_findings(report.findings())
    if groups:
        codes = Table(title="Findings by code", title_justify="left", expand=True)
        codes.add_column("severity", no_wrap=True)
        codes.add_column("code", no_wrap=True)
        codes.add_column("count", justify="right", no_wrap=True)
        codes.add_column("first example", no_wrap=True, overflow="ellipsis", ratio=1)
        for g in groups[:CODES_SHOWN]:
            first = g.examples[0]
            where = first.dataset + (f"[{first.index}]" if first.index is not None else "")
            codes.add_row(
                Text(g.severity, style=_SEVERITY_STYLE.get(g.severity, "")),
                Text(g.code),
                f"{g.count:,}",
                Text(f"{where} {' '.join(first.message.split())}"),
            )
        console.print(codes)
        if len(groups) > CODES_SHOWN:
            console.print(f"... and {len(groups) - CODES_SHOWN} more codes in the report")
    t = report.totals
    verdict = (
        Text("FAILED to run", style="bold red")
        if report.status != "succeeded"
        else Text("errors found", style="bold red")
        if t.errors
        else Text("passed", style="bold green")
    )
    line = Text.assemble(
        verdict,
        f": {t.datasets} datasets, {t.records:,} records, ",
        (f"{t.errors:,} errors", "red" if t.errors else "green"),
        f", {t.warnings:,} warnings, {t.infos:,} info",
    )
    if t.stages_failed or t.stages_skipped:
        line.append(f"; stages failed {t.stages_failed}, skipped {t.stages_skipped}")
    console.print(line)
    if published is not None:
        console.print(Text.assemble("report: ", (str(published / rpt.PAGE_FILE), "bold")))


def _stage_table(report: rpt.AuditReport) -> Table:
    """One row per dataset; the stages as one wrapped cell so it fits an 80-column terminal."""
    table = Table(title=f"Audit {report.run_id}", title_justify="left")
    table.add_column("dataset")
    table.add_column("records", justify="right")
    table.add_column("missing images", justify="right")
    table.add_column("stages")
    for ds in report.datasets:
        stages = Text()
        for stage in rpt.STAGES:
            run = ds.stages.get(stage)
            if run is None:
                continue
            label: str = run.status
            style = _STATUS_STYLE[run.status]
            if run.status == "ok":
                errors = sum(1 for f in run.result.findings if f.severity == "error")
                label, style = (f"{errors} err", "red") if errors else ("ok", "green")
            if stages:
                stages.append(" · ")
            stages.append(f"{stage} ")
            stages.append(label, style=style)
        rate = ds.missing_rate
        table.add_row(
            Text(f"{ds.name}\n{ds.kind}"),
            "-" if ds.records is None else f"{ds.records:,}",
            "-"
            if rate is None
            else Text(f"{rate:.1%}", style="red" if rate > CC3M_BASELINE else "green"),
            stages,
        )
    return table
