"""The published pages in a real headless Chromium: they render, run no script, and read well.

Uses Debian's chromium through playwright (never `playwright install`); skips when it is absent.
The pages are served from a local HTTP server as a user would see them with `llava-audit serve`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from httpserver import serving_folder

from audit import findings
from audit.atomic import write_atomic
from audit.figures import Availability
from audit.output import model as rpt
from audit.output import publish as pub
from audit.output.render.html import render_run
from audit.output.render.index_page import render_index
from audit.results import FileStats, PromptStats, StructureResult
from audit.store.runs import DatasetFigures, RunRecord

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
XSS = "<script>window.__pwned = 1; alert('xss')</script>"
T0 = datetime(2026, 11, 20, 2, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


def _report() -> rpt.AuditReport:
    """A report whose dataset text is hostile: ids, messages and stats holding markup."""
    bad = [
        findings.make(
            "turn.role",
            f"from is {XSS!r}, expected 'human' or 'gpt'",
            dataset="lcs",
            file="blip_laion_cc_sbu_558k.json",
            index=i,
            record_id=XSS if i == 15 else f"00453{i:04d}",
        )
        for i in range(3, 40, 3)
    ]
    bad.append(
        findings.make(
            "turn.empty_value", "turn 1 (gpt) is empty", dataset="lcs", file="a.json", index=5
        )
    )
    prompts = PromptStats(top={XSS: 3, "What is this?": 9})
    structure = StructureResult(
        findings=bad, records=24, files={"a.json": FileStats(records=24, prompts=prompts)}
    )
    lcs = rpt.DatasetReport(
        name="lcs",
        kind="lcs-chat",
        records=24,
        images=Availability(
            referenced=50, missing=6, broken=3, unavailable=9, unavailable_rate=0.18
        ),
        stages={
            "structure": rpt.StageRun(status="ok", result=structure, seconds=0.2),
            "urls": rpt.StageRun(status="skipped", note="no URL source configured"),
        },
    )
    cc3m = rpt.DatasetReport(
        name="cc3m",
        kind="cc3m-chat",
        records=20,
        images=Availability(referenced=20, missing=2, unavailable=2, unavailable_rate=0.1),
        stages={"structure": rpt.StageRun(status="ok", result=StructureResult())},
    )
    report = rpt.AuditReport(
        run_id="20261122T023000Z-00aa",
        started=T0 + timedelta(days=2),
        finished=T0 + timedelta(days=2, seconds=42),
        status="succeeded",
        datasets=[lcs, cc3m],
    )
    report.totals = rpt.compute_totals(report.datasets)
    return report


def _history(report: rpt.AuditReport) -> list[RunRecord]:
    return [
        RunRecord(
            run_id=report.run_id if day == 2 else f"2026112{day}T023000Z-00aa",
            started=T0 + timedelta(days=day),
            finished=T0 + timedelta(days=day, seconds=40),
            status="succeeded" if day != 1 else "failed",
            trigger="schedule",
            errors=20 - day * 4,
            warnings=3,
            records=44,
            report=report.run_id if day == 2 else None,
            message=None if day != 1 else f"interrupted {XSS}",
            datasets=(
                DatasetFigures(
                    dataset="lcs",
                    records=24,
                    errors=5,
                    warnings=1,
                    unavailable_rate=0.12 + day / 50,
                    url_unavailable_rate=0.25 + day / 40,
                ),
                DatasetFigures(
                    dataset="cc3m", records=20, errors=2, warnings=1, unavailable_rate=0.1
                ),
            ),
        )
        for day in range(3)
    ]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("reports")
    report = _report()
    pub.publish(report, root, render_page=render_run)
    write_atomic(root / "index.html", render_index(_history(report)).encode())
    with serving_folder(root) as base:
        yield base


def _open(browser: Any, url: str) -> tuple[Any, list[str], list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(url, wait_until="load")
    return page, errors, dialogs


def test_run_page_renders_and_shows_markup_as_text(browser: Any, site: str, tmp_path: Path) -> None:
    page, errors, dialogs = _open(browser, f"{site}/20261122T023000Z-00aa/index.html")
    assert errors == []
    assert dialogs == []
    assert page.evaluate("window.__pwned === undefined")
    assert page.locator("script").count() == 0  # the record's <script> did not become an element
    assert page.get_by_text(XSS, exact=True).first.is_visible()  # the id, shown verbatim
    assert "Unknown role" in page.inner_text("body")  # the catalogue title beside the code
    assert (
        page.locator("svg[aria-label='unavailable image rate per dataset'] rect").count() == 4
    )  # files and URLs per dataset
    shot = tmp_path / "run.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.close()


def test_index_lists_runs_with_trend_charts(browser: Any, site: str, tmp_path: Path) -> None:
    page, errors, dialogs = _open(browser, f"{site}/index.html")
    assert errors == [] and dialogs == []
    assert page.locator("polyline").count() == 5  # errors, warnings; lcs files + URLs, cc3m files
    assert page.get_by_text(f"interrupted {XSS}").is_visible()
    page.click("text=20261122T023000Z-00aa")
    assert page.title() == "llava-audit report 20261122T023000Z-00aa"
    page.goto(f"{site}/index.html")
    page.screenshot(path=str(tmp_path / "index.png"), full_page=True)
    page.close()


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """The demo's real reports folder, served: (base URL, the demo's report)."""
    from audit.demo import run_demo

    report, published = run_demo(tmp_path_factory.mktemp("demo"))
    with serving_folder(published.parent) as base:
        yield base, report


def test_demo_report_in_the_browser(browser: Any, demo_site: tuple[str, Any]) -> None:
    """The real pipeline's page: the demo's `<script>` record id is shown, never run."""
    from audit.demodata import XSS_ID

    base, report = demo_site
    page, errors, dialogs = _open(browser, f"{base}/{report.run_id}/index.html")
    assert errors == [] and dialogs == []
    assert page.locator("script").count() == 0
    assert page.get_by_text(XSS_ID, exact=True).first.is_visible()
    assert page.get_by_text("Great Expectations Data Docs").is_visible()
    page.goto(f"{base}/index.html")
    assert page.get_by_text(report.run_id).is_visible()
    page.close()


#: The page's width, the window's, and the deepest element sticking out (for the message).
_WIDTHS = """() => {
  let widest = "";
  for (const el of document.querySelectorAll("body *")) {
    if (el.getBoundingClientRect().right > window.innerWidth + 1)
      widest = el.tagName + "." + el.className + ": " + (el.textContent || "").slice(0, 80);
  }
  return [document.documentElement.scrollWidth, window.innerWidth, widest];
}"""


@pytest.mark.parametrize("width", [800, 1400])
def test_demo_pages_fit_the_window_without_sideways_scrolling(
    browser: Any, demo_site: tuple[str, Any], tmp_path: Path, width: int
) -> None:
    """The run page, the run index and a takedown checklist at 800 and 1400 px: nothing wider
    than the window with every section opened (long paths, ids and tables wrap); the
    screenshots are kept in the test's tmp dir."""
    base, report = demo_site
    (takedown,) = report.takedowns
    pages = {
        "run": f"{base}/{report.run_id}/index.html",
        "index": f"{base}/index.html",
        "checklist": f"{base}/{report.run_id}/{takedown.checklist}",
    }
    page = browser.new_page(viewport={"width": width, "height": 900})
    for name, url in pages.items():
        page.goto(url, wait_until="load")
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        scroll, inner, widest = page.evaluate(_WIDTHS)
        page.screenshot(path=str(tmp_path / f"{name}-{width}.png"), full_page=True)
        assert scroll <= inner, f"{name} at {width} px is {scroll} px wide: {widest}"
        assert (tmp_path / f"{name}-{width}.png").stat().st_size > 5_000
    page.close()


def test_the_run_page_links_each_takedown_checklist(
    browser: Any, demo_site: tuple[str, Any]
) -> None:
    """The demo's request: id, ground and open steps on the page; its checklist one click away,
    without the requester's contact (personal data stays in the ledger)."""
    base, report = demo_site
    page, _errors, _ = _open(browser, f"{base}/{report.run_id}/index.html")
    row = page.locator("table.takedowns tr", has_text="TD-0001")
    assert "copyright" in row.inner_text() and "open" in row.inner_text()
    assert row.locator("ul.steps li").count() >= 1
    row.get_by_role("link", name="checklist").click()
    body = page.inner_text("body")
    assert "TD-0001" in body and "photographer@example.org" not in body
    page.close()
