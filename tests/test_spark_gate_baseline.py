"""`gate --baseline` with the spark engine: the new findings matched by a join on Spark give the
local engine's verdict, exit code, counts and examples (JUnit and JSON alike)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import imagefactory as make
import pytest

from audit.cli import main

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# three audits (one on Spark) and two gates reading Spark tables: minutes on a busy machine
pytestmark = [pytest.mark.spark, pytest.mark.timeout(1800)]

RECORDS = 200
SPARK = ["--engine", "spark", "--master", "local[2]"]


def write_dataset(folder: Path, *, later: bool) -> Path:
    """An Instruct-style dataset with wrong roles and missing images; ``later`` has more of both
    (the earlier release has them only in its first 60 records) and a third copy of a record
    that the earlier one has twice, so one of its findings is new and two are not."""
    images = folder / "coco"
    images.mkdir(parents=True)
    records = []
    for i in range(RECORDS):
        rid = f"{i:012d}"
        old = i < 60 or later
        if i % 5 or not old:
            (images / f"{rid}.jpg").write_bytes(make.jpeg(width=16, height=16, seed=i))
        first = "user" if i % 7 == 0 and old else "human"
        conversation = [
            {"from": first, "value": "<image>\nWhat is in the picture?"},
            {"from": "gpt", "value": f"Picture {i}."},
        ]
        records.append({"id": rid, "image": f"{rid}.jpg", "conversations": conversation})
    records += [dict(records[0]) for _ in range(3 if later else 2)]
    (folder / "chat.json").write_text(json.dumps(records))
    config = folder / "audit.toml"
    config.write_text(
        'reports_dir = "reports"\nstate = ".llava-audit/state.sqlite"\n'
        '[[datasets]]\nname = "small"\nkind = "instruct"\nchat = "chat.json"\n'
        'images = ["coco"]\n[gate]\nmax_unavailable_rate = 1.0\n'
    )
    return config


def gate(folder: Path, *args: str | Path) -> tuple[int, str, dict[str, object]]:
    """Exit code, JUnit and JSON result of one gate, with its baseline and run id written
    BASELINE and RUN."""
    junit, result = folder / "gate.xml", folder / "gate.json"
    code = main([*(str(a) for a in args), "--junit", str(junit), "--json", str(result)])
    baseline = str(args[args.index("--baseline") + 1])
    run_id = json.loads(result.read_text())["run_id"]
    same = [
        text.replace(baseline, "BASELINE").replace(run_id, "RUN")
        for text in (junit.read_text(), result.read_text())
    ]
    return code, same[0], json.loads(same[1])


def published(config: Path) -> Path:
    """The one run published beside ``config``."""
    (run,) = (p for p in (config.parent / "reports").iterdir() if (p / "report.json").is_file())
    return run


@pytest.fixture(scope="module")
def audits(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The earlier release audited locally (the baseline), then the later one gated against it
    on each engine: engine -> (exit code, JUnit, JSON), and the runs' folders."""
    earlier = write_dataset(tmp_path_factory.mktemp("earlier"), later=False)
    assert main(["run", "--config", str(earlier)]) == 1
    baseline = published(earlier)
    out: dict[str, object] = {"baseline": baseline}
    for engine, extra in (("local", []), ("spark", SPARK)):
        later = write_dataset(tmp_path_factory.mktemp(f"later-{engine}"), later=True)
        found = gate(later.parent, "gate", "--config", later, *extra, "--baseline", baseline)
        out[engine] = found
        out[f"{engine}-run"] = published(later)
    return out


def test_the_spark_gate_with_a_baseline_is_the_local_ones(audits: dict[str, object]) -> None:
    assert audits["spark"] == audits["local"]
    code, _, result = audits["spark"]  # type: ignore[misc]
    assert code == 1, "new wrong roles and missing images fail the gate"
    errors = next(r for r in result["rules"] if r["rule"] == "errors")
    # record 0 (a wrong role, no image) and its copies: 3 later, 2 earlier; then per release
    # 29 and 9 other wrong roles, 39 and 11 other missing images
    assert errors["reason"].startswith("51 new error findings (image.missing 29, turn.role 21")
    assert len(errors["examples"]) == 10


def test_a_baseline_covering_every_finding_passes_on_both_engines(
    audits: dict[str, object], tmp_path: Path
) -> None:
    everything = audits["local-run"]
    outcomes = {}
    for engine in ("local", "spark"):
        run = audits[f"{engine}-run"]
        config = run.parents[1] / "audit.toml"  # type: ignore[attr-defined]
        outcomes[engine] = gate(
            tmp_path, "gate", "--config", config, "--report", run, "--baseline", everything
        )
    assert outcomes["spark"] == outcomes["local"]
    assert outcomes["spark"][0] == 0, "every finding is in the baseline"


@pytest.mark.parametrize(("damage", "exit_code"), [("missing", 2), ("garbled", 3)])
def test_a_missing_or_damaged_findings_table_is_one_line(
    audits: dict[str, object],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: str,
    exit_code: int,
) -> None:
    run = tmp_path / "run"
    shutil.copytree(audits["spark-run"], run)  # type: ignore[arg-type]
    table = run / "findings" / "images" / "small"
    if damage == "missing":
        shutil.rmtree(table)
    else:
        for part in table.rglob("*.parquet"):
            part.write_bytes(b"not parquet at all")
    capsys.readouterr()
    assert main(["gate", "--report", str(run), "--baseline", str(audits["baseline"])]) == exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "findings table" in err[0], err


def test_a_run_audited_on_spark_is_a_baseline_like_the_same_run_audited_locally(
    audits: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> None:
    earlier = write_dataset(tmp_path_factory.mktemp("earlier-spark"), later=False)
    assert main(["run", "--config", str(earlier), *SPARK]) == 1
    on_spark = published(earlier)
    assert not (on_spark / "findings.jsonl").exists()
    for engine in ("local", "spark"):  # the current run's engine: its gate reads or joins
        run = audits[f"{engine}-run"]
        config = run.parents[1] / "audit.toml"  # type: ignore[attr-defined]
        outcomes = [
            gate(
                tmp_path_factory.mktemp(f"gate-{engine}"),
                "gate",
                "--config",
                config,
                "--report",
                run,
                "--baseline",
                baseline,
            )
            for baseline in (audits["baseline"], on_spark)
        ]
        assert outcomes[1] == outcomes[0], engine
        assert outcomes[1][0] == 1
