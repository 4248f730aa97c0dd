"""The run page and the console summary say how many broken images a re-fetch can restore."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from audit.figures import IMAGE_BROKEN, IMAGE_MISSING, availability
from audit.output import model as rpt
from audit.output.render import html
from audit.output.render.report_console import render_report


def _report(recovery: rpt.Recovery | None) -> rpt.AuditReport:
    ds = rpt.DatasetReport(
        name="cc3m",
        kind="cc3m-chat",
        records=595_375,
        images=availability(
            {"ok": 495_375, "missing": 99_000, "corrupt": 1_000}, IMAGE_MISSING, IMAGE_BROKEN
        ),
        recovery=recovery,
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


RECOVERY = rpt.Recovery(broken=100_000, recoverable=71_234, gone=27_766)


def test_the_run_page_shows_recoverable_and_gone_images() -> None:
    page = html.render_run(_report(RECOVERY))
    assert "71,234</strong> recoverable by re-fetch" in page
    assert "27,766</strong> gone for good" in page
    assert "1,000 unknown" in page  # neither: no URL, a transient failure or a takedown


def test_the_console_summary_shows_them_within_80_columns() -> None:
    console = Console(record=True, width=80, color_system=None)
    render_report(_report(RECOVERY), console)
    text = console.export_text()
    assert "71,234 re-fetchable" in text and "27,766 gone for good" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_nothing_is_said_when_no_image_is_broken() -> None:
    report = _report(rpt.Recovery())
    console = Console(record=True, width=80, color_system=None)
    render_report(report, console)
    assert "re-fetchable" not in console.export_text()
    assert "recoverable by re-fetch" not in html.render_run(report)
