"""Smoke tests of the scale-out benchmark: its sharded data and, at tiny scale, the whole run.

No timing (benchmarks/bench_spark.py measures); these guard that the generated set stays one the
loaders read with every planted defect reported where defects.json says, and that the benchmark's
comparison of the two engines runs and finds them equal.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from audit.structure import check_files
from benchmarks import generate_shards

ROOT = Path(__file__).resolve().parents[1]


def test_shards_are_deterministic_and_list_their_defects(tmp_path: Path) -> None:
    first = generate_shards.generate(tmp_path / "a", records=600, shards=3, defects=2)
    again = generate_shards.generate(tmp_path / "b", records=600, shards=3, defects=2)
    assert [p.name for p in first] == [p.name for p in again]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, again, strict=True))
    planted = json.loads((tmp_path / "a" / "defects.json").read_text())
    assert {p["defect"] for p in planted} >= {"role", "empty_value", "duplicate"}


@pytest.mark.parametrize("fmt", generate_shards.FORMATS)
def test_local_engine_reports_every_planted_defect(tmp_path: Path, fmt: str) -> None:
    generate_shards.generate(tmp_path, records=900, shards=3, defects=8)
    result = check_files([tmp_path / fmt], workers=1)
    found = {(Path(f.file).name.split(".")[0], f.index, str(f.code)) for f in result.findings}
    planted = json.loads((tmp_path / "defects.json").read_text())
    wanted = {(p["shard"], p["index"], code) for p in planted for code in p["codes"]}
    assert wanted and wanted <= found
    errors_elsewhere = {
        (Path(f.file).name.split(".")[0], f.index)
        for f in result.findings
        if f.severity.value == "error"
    } - {(p["shard"], p["index"]) for p in planted}
    assert not errors_elsewhere


@pytest.mark.spark
@pytest.mark.timeout(900)  # three CLI runs, two of them start a JVM
def test_benchmark_finds_the_engines_equal(spark: object, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_spark",
            "--records=400",
            "--shards=2",
            "--defects=4",
            "--urls=0",
            "--rounds=1",
            f"--data={tmp_path / 'data'}",
            f"--results={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=850,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = {
        r["name"]: r["value"]
        for r in json.loads((tmp_path / "spark-400.json").read_text())["ratios"]
    }
    assert figures["findings equal, local vs spark local[2] (1 = yes)"] == 1
    assert figures["planted found, spark local[2]"] == 1
    assert figures["findings equal, spark local[1] vs local[2] (1 = yes)"] == 1
