"""The report as data: JSON round-trip and atomic publishing (a kill never half-publishes)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from audit import findings
from audit.models import StageResult
from audit.output import report as rpt


def _finding(code: str, index: int, dataset: str = "cc3m") -> findings.Finding:
    return findings.make(
        code, f"problem {index} <script>", dataset=dataset, file="chat.json", index=index
    )


def sample_report(run_id: str = "20261126T010000Z-0001") -> rpt.AuditReport:
    structure = StageResult(
        stage="structure",
        findings=[_finding("turn.role", 3), _finding("turn.empty_value", 5)],
        stats={"records": 10},
    )
    images = StageResult(stage="images", findings=[_finding("record.id_type", 1)], stats={"n": 1})
    ds = rpt.DatasetReport(
        name="cc3m",
        kind="cc3m-chat",
        records=10,
        missing_rate=0.1,
        stages={
            "structure": rpt.StageRun(status="ok", result=structure, seconds=0.5),
            "images": rpt.StageRun(status="ok", result=images),
            "urls": rpt.StageRun(
                status="skipped", result=StageResult(stage="urls"), note="not configured"
            ),
        },
    )
    other = rpt.DatasetReport(
        name="lcs",
        kind="lcs-chat",
        records=4,
        stages={
            "structure": rpt.StageRun(
                status="ok",
                result=StageResult(stage="structure", findings=[_finding("turn.order", 0, "lcs")]),
            )
        },
    )
    report = rpt.AuditReport(
        run_id=run_id,
        started=datetime(2026, 11, 26, 1, 0, tzinfo=UTC),
        finished=datetime(2026, 11, 26, 1, 5, tzinfo=UTC),
        status="succeeded",
        datasets=[ds, other],
    )
    report.totals = rpt.compute_totals(report.datasets)
    return report


def test_totals_count_every_stage_and_dataset() -> None:
    totals = sample_report().totals
    assert (totals.errors, totals.warnings, totals.records) == (3, 1, 14)
    assert totals.by_code["turn.role"] == 1
    assert totals.stages_skipped == 1


def test_report_round_trips_through_json_and_jsonl() -> None:
    report = sample_report()
    report_json, findings_jsonl = rpt.to_files(report)
    assert b"<script>" not in report_json  # findings are not duplicated into report.json
    assert findings_jsonl.count(b"\n") == 4
    again = rpt.from_files(report_json, findings_jsonl)
    assert again == report
    assert [f.index for f in again.datasets[0].stage("structure").findings] == [3, 5]  # type: ignore[union-attr]


def test_mismatched_findings_file_is_detected() -> None:
    report_json, findings_jsonl = rpt.to_files(sample_report())
    with pytest.raises(ValueError, match="findings"):
        rpt.from_files(report_json, findings_jsonl.split(b"\n", 1)[1])


def test_publish_then_read_back(tmp_path: Path) -> None:
    report = sample_report()
    out = rpt.publish(report, tmp_path, render_page=lambda r: f"<p>{r.run_id}</p>")
    assert out == tmp_path / report.run_id
    assert rpt.read_report(out) == report
    assert (out / "index.html").read_text() == f"<p>{report.run_id}</p>"
    assert rpt.published_runs(tmp_path) == [report.run_id]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".staging")]


def test_kill_mid_publish_leaves_previous_report_intact(tmp_path: Path) -> None:
    first = sample_report("20261125T010000Z-0001")
    published = rpt.publish(first, tmp_path)
    before = {p.name: p.read_bytes() for p in published.iterdir()}

    class Killed(BaseException):
        pass

    def die(_: Path) -> None:
        raise Killed

    second = sample_report("20261126T010000Z-0002")
    with pytest.raises(Killed):
        rpt.publish(second, tmp_path, before_rename=die)
    assert rpt.published_runs(tmp_path) == [first.run_id]
    assert {p.name: p.read_bytes() for p in published.iterdir()} == before
    assert not (tmp_path / second.run_id).exists()
    assert rpt.remove_stale_staging(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.run_id]


def test_write_atomic_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "index.html"
    rpt.write_atomic(target, b"old")
    rpt.write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]


def test_run_ids_sort_by_time() -> None:
    a = rpt.new_run_id(datetime(2026, 1, 2, tzinfo=UTC))
    b = rpt.new_run_id(datetime(2026, 1, 10, tzinfo=UTC))
    assert a < b and "/" not in a
