"""The cluster recipe: ``spark-submit .../submit.py COMMAND ...`` runs the CLI on Spark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audit.cli import main
from audit.engines.spark import submit

DATA = Path(__file__).parent / "data" / "blip_laion_cc_sbu_2k_head20.json"


def test_engine_spark_is_added_after_an_engine_command_only() -> None:
    assert submit.argv_for_spark(["check", "a.json"]) == ["check", "--engine", "spark", "a.json"]
    assert submit.argv_for_spark(["run", "--engine", "local"]) == ["run", "--engine", "local"]
    assert submit.argv_for_spark(["export", "--config", "x"]) == ["export", "--config", "x"]


def _codes(path: Path) -> list[tuple[str, int | None, str]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted((Path(r["file"]).name, r["index"], r["code"]) for r in rows)


@pytest.mark.spark
@pytest.mark.timeout(900)  # spark-submit starts its own JVM
def test_spark_submit_runs_check_with_the_same_findings(spark: object, tmp_path: Path) -> None:
    spark_submit = Path(sys.executable).with_name("spark-submit")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    done = subprocess.run(
        [
            str(spark_submit),
            "--master",
            "local[1]",
            "--conf",
            "spark.ui.enabled=false",
            submit.__file__,
            "check",
            str(DATA),
            "--findings",
            str(tmp_path / "spark.jsonl"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert main(["check", str(DATA), "--findings", str(tmp_path / "local.jsonl")]) == 0
    assert _codes(tmp_path / "spark.jsonl") == _codes(tmp_path / "local.jsonl")
