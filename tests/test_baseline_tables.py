"""A run audited on Spark as the baseline of a local gate: its findings tables are read on this
machine as key counts, and the gate is the one a local baseline of the same findings gives."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from test_examples_only_report import examples_only, full_report

from audit import findings
from audit.cli import main
from audit.errors import ProbeError
from audit.gate import finding_key
from audit.output import model as rpt
from audit.output.baseline import load_baseline


def publish(report: rpt.AuditReport, folder: Path, *, tables: bool) -> Path:
    """``report`` as a run folder; with ``tables`` as the Spark engine leaves it: examples
    beside the report, every finding in ``findings/<stage>/<dataset>/`` by dataset and code."""
    full = report
    if tables:
        report = examples_only(report)
    folder.mkdir()
    report_json, findings_jsonl = rpt.to_files(report)
    (folder / rpt.REPORT_FILE).write_bytes(report_json)
    (folder / rpt.FINDINGS_FILE).write_bytes(rpt.compress_findings(findings_jsonl))
    if tables:
        for ds in full.datasets:
            for name, run in ds.stages.items():
                assert run.result is not None
                rows = [
                    {
                        "dataset": f.dataset,
                        "file": f.file,
                        "index": f.index,
                        "record_id": f.record_id,
                        "code": str(f.code),
                        "severity": f.severity.value,
                        "message": f.message,
                    }
                    for f in run.result.findings
                ]
                frame = pl.DataFrame(rows, schema_overrides={"index": pl.Int64})
                frame.write_parquet(
                    folder / "findings" / name / ds.name, partition_by=["dataset", "code"]
                )
    return folder


def later_run(folder: Path) -> Path:
    """The same data audited again, locally, with one more wrong role."""
    report = full_report()
    structure = report.datasets[0].stages["structure"].result
    assert structure is not None
    structure.findings.append(
        findings.make(
            "turn.role", "a new one", dataset="cc3m", file="chat.json", index=99, record_id=99
        )
    )
    report.totals = rpt.compute_totals(report.datasets)
    return publish(report, folder, tables=False)


def gate(tmp_path: Path, run: Path, baseline: Path) -> tuple[int, str, dict[str, object]]:
    junit, result = tmp_path / "gate.xml", tmp_path / "gate.json"
    files = ["--junit", str(junit), "--json", str(result)]
    code = main(["gate", "--report", str(run), "--baseline", str(baseline), *files])
    same = [t.read_text().replace(str(baseline), "BASELINE") for t in (junit, result)]
    return code, same[0], json.loads(same[1])


def test_a_spark_runs_tables_are_its_findings_keys(tmp_path: Path) -> None:
    spark = publish(full_report(), tmp_path / "spark", tables=True)
    expected = Counter(finding_key(f) for f in full_report().findings())
    assert load_baseline(spark).keys() == expected
    assert load_baseline(spark / rpt.REPORT_FILE).keys() == expected


def test_a_spark_run_as_baseline_gates_like_the_same_run_audited_locally(tmp_path: Path) -> None:
    local = publish(full_report(), tmp_path / "local", tables=False)
    spark = publish(full_report(), tmp_path / "spark", tables=True)
    run = later_run(tmp_path / "later")
    outcomes = {}
    for name, baseline in (("local", local), ("spark", spark)):
        (tmp_path / name / "out").mkdir()
        outcomes[name] = gate(tmp_path / name / "out", run, baseline)
    assert outcomes["spark"] == outcomes["local"]
    code, _, result = outcomes["spark"]
    assert code == 1
    errors = next(r for r in result["rules"] if r["rule"] == "errors")  # type: ignore[union-attr,index]
    assert errors["reason"].startswith("1 new error findings (turn.role 1)")


@pytest.mark.parametrize("damage", ["a shard gone", "garbled"])
def test_a_spark_baseline_whose_tables_are_not_all_here_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    spark = publish(full_report(), tmp_path / "spark", tables=True)
    run = later_run(tmp_path / "later")
    table = spark / "findings" / "images" / "cc3m"
    parts = sorted(table.rglob("*.parquet"))
    if damage == "a shard gone":
        shutil.rmtree(parts[0].parent)
    else:
        parts[0].write_bytes(b"not parquet at all")
    with pytest.raises(ProbeError, match="baseline's findings table"):
        load_baseline(spark).keys()
    capsys.readouterr()
    assert main(["gate", "--report", str(run), "--baseline", str(spark)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "baseline's findings table" in err[0], err
