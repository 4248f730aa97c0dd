"""The HTML pages without a browser: escaping, bounded size, and the figures they show."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from audit import findings
from audit.figures import IMAGE_BROKEN, IMAGE_MISSING, availability
from audit.output import model as rpt
from audit.output.render import html, index_page
from audit.results import FileStats, ImagesResult, LicenseResult, StructureResult

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _report(n_findings: int = 3, message: str = "bad") -> rpt.AuditReport:
    found = [
        findings.make("turn.role", message, dataset=XSS, file="chat.json", index=i, record_id=XSS)
        for i in range(n_findings)
    ]
    licence = LicenseResult(
        uses=["commercial/train"],
        verdicts={
            "commercial/train": {"forbidden": 7, "allowed": 3},
            "research/train": {"allowed": 10},
        },
        usable={"commercial/train": 3, "research/train": 10},
    )
    structure = StructureResult(findings=found, files={XSS: FileStats(keys={XSS: XSS})})
    ds = rpt.DatasetReport(
        name=XSS,
        kind="generic",
        records=10,
        images=availability({"ok": 7, "missing": 2, "corrupt": 1}, IMAGE_MISSING, IMAGE_BROKEN),
        stages={
            "structure": rpt.StageRun(status="ok", result=structure),
            "license": rpt.StageRun(status="ok", result=licence),
        },
    )
    report = rpt.AuditReport(
        run_id="20261126T000000Z-0000",
        started=datetime(2026, 11, 26, tzinfo=UTC),
        finished=datetime(2026, 11, 26, 0, 1, tzinfo=UTC),
        status="succeeded",
        datasets=[ds],
    )
    report.totals = rpt.compute_totals(report.datasets)
    return report


def test_dataset_text_is_escaped_everywhere() -> None:
    page = html.render_run(_report())
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;" in page


def test_page_size_is_bounded_by_examples_per_code() -> None:
    small = len(html.render_run(_report(10, "x" * 5000)))
    large = len(html.render_run(_report(100_000, "x" * 5000)))
    assert large - small < 2_000  # only the count changes; examples and messages are capped
    assert large < 200_000


def test_licence_rows_put_declared_use_first_with_counts() -> None:
    (ds,) = _report().datasets
    rows = html.licence_rows(ds)
    assert rows[0].use == "commercial/train" and rows[0].declared
    assert dict(zip(html.VERDICTS, rows[0].counts, strict=True))["forbidden"] == 7
    assert rows[0].usable == 3
    assert [r.use for r in rows[1:]] == [
        "research/train",
        "research/redistribute-annotations",
        "research/redistribute-images",
        "commercial/redistribute-annotations",
        "commercial/redistribute-images",
    ]


def test_missing_bars_scale_with_the_baselines() -> None:
    report = _report()
    bars = html.missing_bars(report)
    assert [(b.series, b.text) for b in bars] == [("local", "30.0%"), ("url", "not probed")]
    assert html.baseline_x(report, html.CC3M_BASELINE) < bars[0].width  # 30% bar past the 15% line


def test_index_without_runs_says_how_to_start() -> None:
    assert "llava-audit demo" in index_page.render_index([])


def test_failed_and_skipped_stages_say_why() -> None:
    report = _report()
    ds = report.datasets[0]
    ds.stages["urls"] = rpt.StageRun(status="failed", note="state store is locked")
    ds.stages["images"] = rpt.StageRun(status="skipped", note="no image roots configured")
    report.totals = rpt.compute_totals(report.datasets)
    page = html.render_run(report)
    assert "state store is locked" in page and "no image roots configured" in page
    assert "incomplete: 1 stage failed" in page
    assert report.totals.stages_failed == 1 and not report.passed


def test_console_summary_fits_80_columns_and_keeps_markup_literal() -> None:
    from pathlib import Path

    from rich.console import Console

    from audit.output.render.report_console import render_report

    report = _report(message="[bold red]not markup[/]")
    console = Console(record=True, width=80, color_system=None)
    render_report(report, console, published=Path("reports") / report.run_id)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "[bold red]not" in text  # shown, not interpreted as rich markup
    assert "errors found" in text and "reports/20261126T000000Z-0000/index.html" in text


def test_odd_stage_statistics_never_cost_the_published_page() -> None:
    report = _report()
    report.datasets[0].stages["images"] = rpt.StageRun(status="ok", result=ImagesResult())
    page = html.render_run_safely(report)
    assert "page incomplete" not in page  # tolerated by the full page
    licence = report.datasets[0].stages["license"]
    assert isinstance(licence.result, LicenseResult)
    # replace() does not validate: a result of an unexpected shape, as a future bug might make
    licence.result = msgspec.structs.replace(licence.result, verdicts={"commercial/train": 7})
    page = html.render_run_safely(report)
    assert "page incomplete" in page and "report.json" in page
    assert "turn.role" in page


def test_change_since_the_previous_run_is_shown() -> None:
    report = _report(n_findings=5)
    report.previous = rpt.PreviousRun(
        run_id="20261125T000000Z-0000",
        started=datetime(2026, 11, 25, tzinfo=UTC),
        totals=rpt.Totals(errors=2, warnings=0, by_code={"image.missing": 4}),
    )
    page = html.render_run(report)
    assert "+3 since last run" in page  # 5 errors now, 2 before
    assert "new since last run" in page  # turn.role was not there
    assert "No longer found: <code>image.missing</code> (4)" in page
    assert 'href="../20261125T000000Z-0000/index.html"' in page
