"""`run --engine spark` on the demo: the same report, gate and JUnit as the local engine's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import pytest

from audit import config as config_mod
from audit import demodata
from audit.cli import main
from audit.config import EngineConfig
from audit.demo import image_host, plant_takedown, write_config
from audit.output import model as rpt
from audit.runner import run_audit

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# two full demo audits (the Spark one starts Python workers per stage): minutes on a busy machine
pytestmark = [pytest.mark.spark, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def runs(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo audited once per engine (each in its own folder); engine -> published run."""
    published = {}
    with image_host() as url:
        for engine in ("local", "spark"):
            folder = tmp_path_factory.mktemp(f"run-{engine}")
            config = config_mod.load(write_config(folder, demodata.build(folder, url), url))
            plant_takedown(config)
            chosen = EngineConfig(name=engine, master="local[2]")
            report = run_audit(msgspec.structs.replace(config, engine=chosen))
            published[engine] = config.path(config.reports_dir) / report.run_id
    return published


def test_the_spark_run_publishes_the_local_runs_totals(runs: dict[str, Path]) -> None:
    local, spark = rpt.read_report(runs["local"]), rpt.read_report(runs["spark"])
    assert spark.totals == local.totals
    assert spark.totals.errors and spark.totals.warnings
    for mine, theirs in zip(spark.datasets, local.datasets, strict=True):
        assert mine.images == theirs.images and mine.urls == theirs.urls
        assert mine.recovery == theirs.recovery, "recovery joins every finding, not examples"
        for name, run in mine.stages.items():
            other = theirs.stages[name]
            assert run.status == other.status and run.outcome == other.outcome, name
            if run.result is not None and other.result is not None:
                assert run.result.finding_counts() == other.result.finding_counts(), name
    assert not local.finding_tables()
    tables = spark.finding_tables()
    assert "findings/license/cc3m" in tables and "findings/takedown/cc3m" in tables
    assert all((runs["spark"] / t).is_dir() for t in tables), "tables inside the run folder"


def test_gate_and_junit_on_the_spark_run_equal_the_local_runs(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    outputs = {}
    for engine, folder in runs.items():
        junit, result = tmp_path / f"{engine}.xml", tmp_path / f"{engine}.json"
        code = main(["gate", "--report", str(folder), "--junit", str(junit), "--json", str(result)])
        outputs[engine] = (
            code,
            junit.read_text().replace(folder.name, "RUN"),
            json.loads(result.read_text().replace(folder.name, "RUN")),
        )
    assert outputs["spark"] == outputs["local"]
    assert outputs["spark"][0] == 1, "the demo's planted errors fail the gate"


def test_a_spark_run_as_baseline_gates_as_the_local_run_does(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    outputs = {}
    for engine, baseline in runs.items():
        result = tmp_path / f"{engine}.json"
        args = ["gate", "--report", str(runs["local"]), "--baseline", str(baseline)]
        code = main([*args, "--json", str(result)])
        outputs[engine] = (code, json.loads(result.read_text().replace(str(baseline), "BASE")))
    assert outputs["spark"] == outputs["local"]
    rules = {(r["rule"], r["dataset"]): r for r in outputs["spark"][1]["rules"]}
    assert all(r["passed"] for (rule, _), r in rules.items() if rule == "errors"), (
        "the same data: no finding is new"
    )


def test_export_audits_again_on_this_machine_rather_than_reuse_a_spark_run(
    runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit import runner
    from audit.export.exporter import audit_results

    config = config_mod.load(runs["spark"].parents[1] / "audit.toml")
    audited: list[str] = []

    def fake_run(chosen: config_mod.Config, **_: object) -> rpt.AuditReport:
        audited.append(chosen.engine.name)
        return rpt.read_report(runs["local"])

    monkeypatch.setattr(runner, "run_audit", fake_run)
    notes: list[str] = []
    spark_config = msgspec.structs.replace(config, engine=EngineConfig(name="spark"))
    _, reused = audit_results(spark_config, None, None, notes.append)
    assert not reused and audited == ["local"], "every finding is needed: a local audit"
    assert "Parquet tables" in notes[0]
