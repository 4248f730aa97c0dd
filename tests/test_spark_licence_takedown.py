"""The licence and takedown stages on Spark give the local engine's findings and totals."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import pytest

from audit import config as config_mod
from audit import demodata
from audit.config import EngineConfig
from audit.demo import plant_takedown, write_config
from audit.findings import Finding
from audit.licensing import license_dataset
from audit.results import FindingTotals
from audit.store import Store
from audit.takedown import blocklist_findings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.spark

ENGINE = EngineConfig(name="spark", master="local[2]")
#: uses under which the demo's records are forbidden, conditional and unknown: per-record
#: findings as well as the grouped ones
USES = ["commercial/train", "research/redistribute-images", "commercial/redistribute-annotations"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> config_mod.Config:
    folder = tmp_path_factory.mktemp("spark-demo")
    datasets = demodata.build(folder, "http://127.0.0.1:9")
    config = config_mod.load(write_config(folder, datasets, "http://127.0.0.1:9"))
    plant_takedown(config)
    return config


def everything(findings: list[Finding], totals: FindingTotals | None) -> list[Finding]:
    """All findings of a Spark stage, read back from its table."""
    from audit.engines.spark.findingtable import read_back

    assert totals is not None, "the stage ran on Spark"
    return list(read_back(totals)) if totals.total else []


def multiset(found: list[Finding]) -> Counter[tuple[str, int | None, str, str]]:
    return Counter((f.file, f.index, f.code, f.message) for f in found)


def test_licence_verdicts_on_spark_equal_the_local_engines(
    spark: SparkSession, demo: config_mod.Config, tmp_path: Path
) -> None:
    from audit.engines.spark.licence_batches import SparkLicensing

    codes: Counter[str] = Counter()
    for ds in demo.datasets:
        local_verdicts: dict[int, str] = {}
        local = license_dataset(ds, demo, uses=USES, verdicts_out=local_verdicts)
        job = SparkLicensing(ENGINE)
        spark_verdicts: dict[int, str] = {}
        result = license_dataset(ds, demo, uses=USES, verdicts_out=spark_verdicts, assess_file=job)
        result = job.publish(result, tmp_path / ds.name)
        found = everything(result.findings, result.finding_totals)
        assert multiset(found) == multiset(local.findings), ds.name
        assert result.finding_counts() == local.finding_counts()
        assert set(result.findings) <= set(local.findings), "examples are real findings"
        stripped = msgspec.structs.replace(result, findings=[], finding_totals=None)
        assert stripped == msgspec.structs.replace(local, findings=[]), "the same statistics"
        assert spark_verdicts == local_verdicts
        codes.update(f.code for f in found)
    assert codes["license.forbidden"] > 10, "per-record findings were made in executors"
    assert codes["license.conditional"] and codes["license.summary"] == len(demo.datasets)


def test_takedown_matches_on_spark_equal_the_local_engines(
    spark: SparkSession, demo: config_mod.Config, tmp_path: Path
) -> None:
    from audit.engines.spark.takedown_batches import SparkMatching

    present = 0
    with Store(demo.path(demo.state)) as store:
        for ds in demo.datasets:
            local = blocklist_findings(demo, store, datasets=[ds.name])
            match = SparkMatching(ENGINE, tmp_path / ds.name)
            result = blocklist_findings(demo, store, datasets=[ds.name], match_records=match)
            found = everything(result.findings, result.finding_totals)
            assert multiset(found) == multiset(local.findings), ds.name
            stripped = msgspec.structs.replace(result, findings=[], finding_totals=None)
            assert stripped == msgspec.structs.replace(local, findings=[])
            present += result.present
    assert present >= 1, "the demo's taken-down image is found"


def test_the_license_command_on_spark_prints_and_writes_what_the_local_one_does(
    spark: SparkSession,
    demo: config_mod.Config,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from audit.cli import main

    outputs = {}
    for engine in ("local", "spark"):
        found = tmp_path / f"{engine}.jsonl"
        args = ["license", "--config", str(demo.path("audit.toml")), "--purpose", "commercial"]
        code = main([*args, "--engine", engine, "--findings", str(found)])
        lines = sorted(found.read_text().splitlines())
        outputs[engine] = (code, capsys.readouterr().out, lines)
    assert outputs["spark"] == outputs["local"]
    assert outputs["spark"][0] == 1 and outputs["spark"][2], "forbidden records found"
