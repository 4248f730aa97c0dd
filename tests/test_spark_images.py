"""The image stage on Spark: the same findings and counts as the local engine over a folder and a
zip with missing, corrupt and truncated images, and a re-run that reads no image again."""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import imagefactory as make
import msgspec
import pytest

from audit import config as config_mod
from audit.config import EngineConfig
from audit.models import ImageRef
from audit.probes.images import probe_images
from audit.results import ImagesResult
from audit.store import Store

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.spark

ENGINE = EngineConfig(name="spark", master="local[2]")
IN_FOLDER = {
    "coco/train2017/1.jpg": make.jpeg(seed=1),
    "coco/train2017/2.jpg": make.truncated_jpeg(),
    "ocr_vqa/images/3.jpg": make.gif(),
    "vg/VG_100K_2/4.jpg": b"",
}
IN_ZIP = {
    "lcs/5.jpg": make.jpeg(width=80, height=60, seed=5),
    "lcs/6.jpg": make.html_page(),
    "lcs/7.png": make.png(),
}
NAMES = [
    *IN_FOLDER,
    *IN_ZIP,
    "lcs/7.png",  # two records, one image
    "coco/train2017/missing.jpg",
    "../outside.jpg",
]


def roots(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "data"
    for name, data in IN_FOLDER.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in IN_ZIP.items():
            zf.writestr(name, data)
    return [folder, archive]


def refs() -> list[ImageRef]:
    return [ImageRef(i, f"r{i}", name) for i, name in enumerate(NAMES)]


def on_spark(tmp_path: Path, given: list[Path]) -> ImagesResult:
    from audit.engines.spark.images import probe_images as probe_on_spark

    return probe_on_spark(
        refs(), given, tmp_path / "state.sqlite", ENGINE, level="decode", dataset="d", file="c"
    )


def table(spark: SparkSession, result: ImagesResult) -> Counter[tuple[str, int | None, str]]:
    assert result.finding_totals is not None
    rows = spark.read.parquet(result.finding_totals.location).collect()
    return Counter((r["file"], r["index"], r["code"]) for r in rows)


def test_spark_gives_the_local_engines_findings_and_counts(
    spark: SparkSession, tmp_path: Path
) -> None:
    given = roots(tmp_path)
    with Store(tmp_path / "local.sqlite") as store:
        local = probe_images(
            refs(), given, level="decode", store=store, dataset="d", file="c", workers=1
        )
    remote = on_spark(tmp_path, given)
    assert table(spark, remote) == Counter((f.file, f.index, f.code) for f in local.findings)
    for field in ("referenced", "unique_images", "status", "formats", "dimensions", "roots"):
        assert getattr(remote, field) == getattr(local, field), field
    assert remote.worst_folders == local.worst_folders
    assert (remote.probed, remote.cached) == (local.probed, 0)
    assert {"missing", "corrupt", "truncated", "bad_path"} <= set(remote.status)


def test_a_rerun_reads_no_image_again(spark: SparkSession, tmp_path: Path) -> None:
    given = roots(tmp_path)
    first = on_spark(tmp_path, given)
    again = on_spark(tmp_path, given)
    assert (again.probed, again.cached) == (0, first.probed)
    assert again.status == first.status and table(spark, again) == table(spark, first)
    (given[0] / "coco/train2017/1.jpg").write_bytes(make.truncated_jpeg())  # changed on disk
    third = on_spark(tmp_path, given)
    assert (third.probed, third.status["truncated"]) == (1, first.status["truncated"] + 1)


def test_the_images_command_on_spark_writes_every_finding(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--findings` holds the whole table, not the report's examples; errors exit 1."""
    from audit.cli import main
    from audit.findings import from_jsonl

    given = roots(tmp_path)
    chat = tmp_path / "chat.json"
    chat.write_text(
        json.dumps([{"id": n, "image": name, "conversations": []} for n, name in enumerate(NAMES)])
    )
    out = tmp_path / "found.jsonl"
    argv = ["images", chat, "--level", "decode", "--findings", out, "--state", tmp_path / "s"]
    roots_given = [x for root in given for x in ("--root", root)]
    code = main(
        [str(a) for a in [*argv, *roots_given, "--engine", "spark", "--master", "local[2]"]]
    )
    assert code == 1
    found = from_jsonl(out.read_bytes())
    with Store(tmp_path / "local.sqlite") as store:
        local = probe_images(refs(), given, level="decode", store=store, workers=1)
    assert Counter(f.code for f in found) == Counter(f.code for f in local.findings)
    assert "image.truncated" in capsys.readouterr().out


def _shard_config(tmp_path: Path, layout: str) -> config_mod.Config:
    """12 records in 3 shards: record 1 of each has a wrong role and a missing image, record 6
    a truncated one."""
    from shardsets import write_jsonl, write_parquet

    records = []
    for i in range(12):
        first = "bot" if i % 4 == 1 else "human"
        records.append(
            {
                "id": f"{i:012d}",
                "image": f"{i:012d}.jpg",
                "conversations": [
                    {"from": first, "value": "<image>\nWhat is it?"},
                    {"from": "gpt", "value": "A picture."},
                ],
            }
        )
        if i % 4 != 1:  # the wrong roles' images are missing
            data = make.truncated_jpeg() if i == 6 else make.jpeg(width=8, height=8, seed=i)
            (tmp_path / "images" / f"{i:012d}.jpg").parent.mkdir(exist_ok=True)
            (tmp_path / "images" / f"{i:012d}.jpg").write_bytes(data)
    if layout == "jsonl":
        write_jsonl(records, tmp_path / "set", 3)
    else:
        write_parquet(records, tmp_path / "set", 3)
    (tmp_path / "audit.toml").write_text(
        '[images]\nlevel = "decode"\n[[datasets]]\nname = "d"\nkind = "instruct"\n'
        'chat = "set"\nimages = ["images"]\n'
    )
    return config_mod.load(tmp_path / "audit.toml")


def _stage(
    spark: SparkSession, tmp_path: Path, stage: str, chosen: config_mod.Config, state: str
) -> list[tuple[str, int, str]]:
    """The stage's record findings as sorted (file, index, code), from its table on Spark."""
    from audit import stages
    from audit.models import NoProgress

    with Store(tmp_path / f"{state}.sqlite") as store:
        ctx = stages.StageContext(
            config=chosen,
            dataset=chosen.datasets[0],
            store=store,
            progress=NoProgress(),
            work_dir=tmp_path / f"work-{state}",
        )
        result = stages.STAGE_FUNCTIONS[stage](ctx)
    if result.finding_totals is not None:
        rows = spark.read.parquet(result.finding_totals.location).collect()
        found = [(r["file"], r["index"], r["code"]) for r in rows]
    else:
        found = [(f.file, f.index, str(f.code)) for f in result.findings]
    return sorted((f, i, c) for f, i, c in found if i is not None)


@pytest.mark.parametrize("layout", ["jsonl", "parquet"])
def test_a_shard_sets_image_findings_name_the_shard_and_index_on_both_engines(
    spark: SparkSession, tmp_path: Path, layout: str
) -> None:
    """As the structure stage's do: the record with a wrong role and a missing image is one
    (shard, index) for both stages, on either engine."""
    config = _shard_config(tmp_path, layout)
    local = _stage(spark, tmp_path, "images", config, "local")
    on_spark = _stage(
        spark, tmp_path, "images", msgspec.structs.replace(config, engine=ENGINE), "spark"
    )
    assert on_spark == local
    structure = _stage(spark, tmp_path, "structure", config, "structure")
    wrong_roles = [(f, i) for f, i, c in structure if c == "turn.role"]
    assert [(f, i) for f, i, c in local if c == "image.missing"] == wrong_roles
    assert len(wrong_roles) == 3 and len({f for f, _ in wrong_roles}) == 3, "one in each shard"
    assert [c for _, _, c in local].count("image.truncated") == 1


def test_a_shard_set_is_read_a_shard_at_a_time_never_whole_on_both_engines(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the whole-set loader refused, the images stage gives the same findings on both
    engines (on Spark the executors read the shards: no record or reference on the driver),
    and a shard that cannot be read is the same one line and exit code on both."""
    from audit.errors import AuditError
    from audit.loaders import shardread

    def refused(*args: object, **kwargs: object) -> object:
        raise AssertionError("a shard set was loaded whole")

    monkeypatch.setattr(shardread, "load_set", refused)
    config = _shard_config(tmp_path, "parquet")
    remote = msgspec.structs.replace(config, engine=ENGINE)
    local = _stage(spark, tmp_path, "images", config, "local")
    assert _stage(spark, tmp_path, "images", remote, "spark") == local
    shards = tmp_path / "set" / "data"
    assert {f for f, _, _ in local} == {str(p) for p in shards.glob("*.parquet")} != set()
    (shards / "train-00001-of-00003.parquet").write_bytes(b"not parquet")
    errors = []
    for chosen, state in ((config, "local-bad"), (remote, "spark-bad")):
        with pytest.raises(AuditError) as raised:
            _stage(spark, tmp_path, "images", chosen, state)
        errors.append((raised.value.message, raised.value.exit_code))
    assert errors[0] == errors[1]
    assert "train-00001-of-00003.parquet" in errors[0][0] and errors[0][1] == 3
    assert "\n" not in errors[0][0]


def test_the_images_command_with_a_config_reads_a_shard_set_in_the_executors(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`images --config --engine spark` writes the local command's findings while the driver
    never loads the set (its executors read the shards)."""
    from audit.cli import main
    from audit.findings import from_jsonl
    from audit.loaders import shardread

    _shard_config(tmp_path, "jsonl")
    argv = ["images", "--config", str(tmp_path / "audit.toml"), "--no-cache"]
    assert main([*argv, "--findings", str(tmp_path / "local.jsonl")]) == 1

    def refused(*args: object, **kwargs: object) -> object:
        raise AssertionError("a shard set was loaded whole")

    monkeypatch.setattr(shardread, "load_set", refused)
    remote = ["--findings", str(tmp_path / "spark.jsonl"), "--engine", "spark"]
    assert main([*argv, *remote, "--master", "local[2]"]) == 1
    found = {
        side: Counter(
            (f.file, f.index, str(f.code))
            for f in from_jsonl((tmp_path / f"{side}.jsonl").read_bytes())
            if f.index is not None
        )
        for side in ("local", "spark")
    }
    assert found["spark"] == found["local"] != Counter()
