"""A findings summary for the terminal: counts per code and severity, with the first examples.

Shared by every command that prints findings (check, images, urls, license, ...), so they all look
alike. Dataset text is shown with markup off: a caption containing ``[bold]`` stays literal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from audit.findings import Finding, Severity

SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def summarise(findings: Sequence[Finding]) -> dict[str, dict[str, int]]:
    """Counts per severity and per code, the shape of `--json` summaries."""
    by_severity = Counter(f.severity.value for f in findings)
    by_code = Counter(f.code for f in findings)
    return {
        "by_severity": {s.value: by_severity.get(s.value, 0) for s in Severity},
        "by_code": dict(sorted(by_code.items())),
    }


def render_findings(
    console: Console,
    findings: Sequence[Finding],
    *,
    title: str = "Findings",
    examples: int = 3,
    show_info: bool = True,
    counts: Mapping[tuple[str, Severity], int] | None = None,
) -> None:
    """Print one row per code and severity (worst first, then most frequent) with up to
    ``examples`` records; a code whose findings differ in severity (``expectation.failed``: a
    critical rule is an error, a warning rule a warning) gets a row per severity, as on the page.

    ``counts`` ((code, severity) -> n) when ``findings`` are only examples (a report from the
    Spark engine): the rows and totals count them instead. File-level statistics (`info` without
    an index) are listed after the table, one line each.
    """
    groups: dict[tuple[str, Severity], list[Finding]] = {}
    for finding in findings:
        if finding.severity is Severity.INFO and finding.index is None:
            continue
        groups.setdefault((finding.code, finding.severity), []).append(finding)
    sizes = {key: len(group) for key, group in groups.items()}
    if counts is not None:
        sizes = {key: n for key, n in counts.items() if key in groups or key[1] != Severity.INFO}
    ordered = sorted(sizes.items(), key=lambda item: (-item[0][1].rank, -item[1], item[0][0]))
    if ordered:
        table = Table(title=title, title_justify="left", show_lines=False)
        table.add_column("severity")
        table.add_column("code")
        table.add_column("count", justify="right")
        table.add_column("first examples (index, id: message)", overflow="fold")
        for (code, severity), size in ordered:
            lines = Text()
            for finding in groups.get((code, severity), [])[:examples]:
                if lines:
                    lines.append("\n")
                lines.append(_where(finding), style="dim")
                lines.append(_short(finding.message))
            table.add_row(
                Text(severity.value, style=SEVERITY_STYLE[severity]),
                Text(code),
                f"{size:,}",
                lines,
            )
        console.print(table)
    if show_info:
        current = None
        for finding in findings:
            if finding.severity is Severity.INFO and finding.index is None:
                if finding.file != current:
                    current = finding.file
                    console.print(Text(finding.file, style="bold"))
                console.print(Text("  " + finding.message))
    totals = summarise(findings)["by_severity"]
    if counts is not None:
        totals = {s.value: sum(n for (_, sev), n in counts.items() if sev == s) for s in Severity}
    line = Text.assemble(
        (
            f"{totals['error']:,} errors",
            SEVERITY_STYLE[Severity.ERROR] if totals["error"] else "green",
        ),
        ", ",
        (
            f"{totals['warning']:,} warnings",
            SEVERITY_STYLE[Severity.WARNING] if totals["warning"] else "",
        ),
        f", {totals['info']:,} info",
    )
    console.print(line)


def _where(finding: Finding) -> str:
    if finding.index is None:
        return "" if finding.message.startswith(finding.file) else f"{_name(finding.file)}: "
    record = f" {finding.record_id}" if finding.record_id is not None else ""
    return f"{_name(finding.file)}[{finding.index}]{record}: "


def _name(file: str) -> str:
    return file.rsplit("/", 1)[-1]


def _short(message: str, limit: int = 120) -> str:
    message = message.replace("\n", "\\n")
    return message if len(message) <= limit else message[: limit - 3] + "..."
