"""A report whose findings stayed in Parquet tables (the Spark engine: ``finding_totals`` set,
``findings`` only the first examples of each code) renders and gates like the full report."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from rich.console import Console

from audit import findings
from audit.config import GateConfig
from audit.errors import ConfigError
from audit.findings import Finding
from audit.gate import evaluate
from audit.output import model as rpt
from audit.output.baseline import load_baseline
from audit.output.render.html import EXAMPLES_PER_CODE, render_run
from audit.output.render.junit import to_json, to_junit_xml
from audit.output.render.report_console import render_report
from audit.results import FindingTotals, ImagesResult, LicenseResult, StructureResult


def _many(code: str, n: int, dataset: str = "cc3m", start: int = 0) -> list[Finding]:
    return [
        findings.make(
            code, f"{code} on record {i}", dataset=dataset, file="chat.json", index=i, record_id=i
        )
        for i in range(start, start + n)
    ]


def full_report() -> rpt.AuditReport:
    """Codes with more findings than the examples a Spark stage keeps, in three stages."""
    structure = StructureResult(
        findings=_many("turn.role", 30) + _many("turn.empty_value", 3, start=40), records=100
    )
    structure.findings.append(
        findings.make("stats.summary", "100 records", dataset="cc3m", file="chat.json")
    )
    images = ImagesResult(
        findings=_many("image.missing", 25) + _many("image.truncated", 9, start=50),
        referenced=100,
        status={"ok": 66, "missing": 25, "truncated": 9},
    )
    licence = LicenseResult(findings=_many("license.forbidden", 12))
    ds = rpt.DatasetReport(
        name="cc3m",
        kind="cc3m-chat",
        records=100,
        images=images.figures,
        stages={
            "structure": rpt.StageRun(status="ok", result=structure),
            "images": rpt.StageRun(status="ok", result=images),
            "license": rpt.StageRun(status="ok", result=licence),
        },
    )
    report = rpt.AuditReport(
        run_id="20261126T010000Z-0001",
        started=datetime(2026, 11, 26, 1, 0, tzinfo=UTC),
        finished=datetime(2026, 11, 26, 1, 5, tzinfo=UTC),
        status="succeeded",
        datasets=[ds],
    )
    report.totals = rpt.compute_totals(report.datasets)
    return report


def examples_only(report: rpt.AuditReport) -> rpt.AuditReport:
    """What the Spark engine publishes for the same findings: counts, and the first examples."""
    copy = msgspec.json.decode(msgspec.json.encode(report), type=rpt.AuditReport)
    for ds in copy.datasets:
        for run in ds.stages.values():
            if run.result is None:
                continue
            counts: dict[str, dict[str, int]] = {}
            kept: Counter[str] = Counter()
            examples = []
            for f in run.result.findings:
                by_severity = counts.setdefault(f.code, {})
                by_severity[f.severity.value] = by_severity.get(f.severity.value, 0) + 1
                if kept[f.code] < EXAMPLES_PER_CODE:
                    kept[f.code] += 1
                    examples.append(f)
            totals = FindingTotals(counts=counts, location=f"findings/{run.result.stage}/{ds.name}")
            run.result = msgspec.structs.replace(
                run.result, findings=examples, finding_totals=totals
            )
    copy.totals = rpt.compute_totals(copy.datasets)
    return copy


def _console(report: rpt.AuditReport) -> str:
    console = Console(record=True, width=120, color_system=None)
    render_report(report, console)
    return console.export_text()


def test_the_examples_only_report_keeps_fewer_findings_but_the_same_totals() -> None:
    full = full_report()
    spark = examples_only(full)
    assert len(list(spark.findings())) < len(list(full.findings()))
    assert spark.totals == full.totals
    assert spark.totals.errors == 30 + 3 + 25 + 9 + 12
    assert spark.finding_tables() and not full.finding_tables()


def test_console_and_page_show_the_same_counts() -> None:
    full = full_report()
    spark = examples_only(full)
    assert _console(spark) == _console(full)
    assert "79 errors" in _console(spark)
    table = "the Parquet table <code>findings/</code> (by dataset and code)"
    page = render_run(spark)
    assert table in page
    jsonl = '<a href="findings.jsonl.gz">findings.jsonl.gz</a>'
    assert page.replace(table, jsonl) == render_run(full)


@pytest.mark.parametrize(
    "config",
    [
        GateConfig(),
        GateConfig(max_errors=100, fail_on_forbidden=False),
        GateConfig(max_errors=100, max_errors_per_code={"turn.role": 10}),
    ],
)
def test_gate_verdict_junit_and_json_are_the_same(config: GateConfig) -> None:
    full = full_report()
    spark = examples_only(full)
    assert to_junit_xml(evaluate(spark, config)) == to_junit_xml(evaluate(full, config))
    assert to_json(evaluate(spark, config)) == to_json(evaluate(full, config))


def test_the_counts_survive_report_json() -> None:
    full = full_report()
    spark = examples_only(full)
    report_json, findings_jsonl = rpt.to_files(spark)
    back = rpt.from_files(report_json, findings_jsonl)
    assert back.totals == full.totals
    assert _console(back) == _console(full)
    assert to_junit_xml(evaluate(back, GateConfig())) == to_junit_xml(evaluate(full, GateConfig()))


def test_a_baseline_is_refused_for_findings_kept_in_tables() -> None:
    spark = examples_only(full_report())
    with pytest.raises(ConfigError, match="--baseline"):
        evaluate(spark, GateConfig(), baseline=[], baseline_name="earlier")


def _publish(report: rpt.AuditReport, folder: Path) -> Path:
    folder.mkdir()
    report_json, findings_jsonl = rpt.to_files(report)
    (folder / rpt.REPORT_FILE).write_bytes(report_json)
    (folder / rpt.FINDINGS_FILE).write_bytes(rpt.compress_findings(findings_jsonl))
    return folder


def test_a_run_audited_on_spark_without_its_tables_is_refused_as_a_baseline(
    tmp_path: Path,
) -> None:
    folder = _publish(examples_only(full_report()), tmp_path / "run")
    with pytest.raises(ConfigError, match=r"findings table .* is missing"):
        load_baseline(folder)
    with pytest.raises(ConfigError, match=r"findings table .* is missing"):
        load_baseline(folder / rpt.REPORT_FILE)
    assert len(load_baseline(_publish(full_report(), tmp_path / "local")).findings) == 80
