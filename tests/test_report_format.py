"""report.json holds typed stage results: they round-trip by type, and an older layout is one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from audit import findings
from audit.cli import main
from audit.output import model as rpt
from audit.output import publish as pub
from audit.results import (
    DomainCount,
    LicenseResult,
    StructureResult,
    UrlCounts,
    UrlsResult,
)


def _report() -> rpt.AuditReport:
    bad = findings.make("turn.role", "turn 0 is 'Human'", dataset="lcs", file="a.json", index=0)
    counts = UrlCounts(
        file="m.json",
        urls=4,
        referenced=4,
        status_counts={"ok": 3, "gone": 1},
        worst_domains=[
            DomainCount(domain="a.example", urls=2, unavailable=1, unavailable_rate=0.5)
        ],
    )
    ds = rpt.DatasetReport(
        name="lcs",
        kind="lcs-chat",
        records=4,
        stages={
            "structure": rpt.StageRun(status="ok", result=StructureResult(findings=[bad])),
            "images": rpt.StageRun(status="skipped", note="no image roots configured"),
            "urls": rpt.StageRun(status="ok", result=UrlsResult(totals=counts, files=[counts])),
            "license": rpt.StageRun(
                status="ok", result=LicenseResult(records=4, forbidden={"commercial": 0})
            ),
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


def test_stage_results_come_back_as_their_types(tmp_path: Path) -> None:
    folder = pub.publish(_report(), tmp_path / "reports")
    again = rpt.read_report(folder)
    ds = again.datasets[0]
    urls = ds.stage("urls")
    assert isinstance(urls, UrlsResult) and urls.totals.worst_domains[0].domain == "a.example"
    assert isinstance(ds.stage("structure"), StructureResult)
    assert ds.stages["images"].result is None and ds.stage("images") is None
    assert [f.code for f in again.findings()] == ["turn.role"]
    assert again == _report()


def test_a_report_from_an_older_version_is_one_line_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = pub.publish(_report(), tmp_path / "reports")
    old = json.loads((folder / rpt.REPORT_FILE).read_text(encoding="utf-8"))
    old["version"] = 1
    for run in old["datasets"][0]["stages"].values():  # the old layout: a stats dictionary
        run["result"] = {"stage": "x", "findings": [], "stats": {"records": 4}}
    (folder / rpt.REPORT_FILE).write_text(json.dumps(old), encoding="utf-8")
    capsys.readouterr()
    assert main(["gate", "--report", str(folder)]) == 3
    err = capsys.readouterr().err
    assert "older llava-audit" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    new = pub.publish(_report(), tmp_path / "reports2")
    assert main(["gate", "--report", str(new), "--baseline", str(folder)]) == 3
    assert "older llava-audit" in capsys.readouterr().err
    previous = rpt.read_previous(folder)  # the next run's trend still reads it
    assert previous is not None and previous.totals.errors == 1
