"""A run over a shard set on the local engine never loads the set whole: the images stage reads
it a shard at a time, and the report's record excerpts read only the records they show."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import imagefactory as make
import pytest
import realsamples
from shardsets import write_jsonl

from audit import config as config_mod
from audit import stages
from audit.excerpts import record_examples
from audit.findings import Code
from audit.findings import make as finding
from audit.loaders import shardread
from audit.models import NoProgress
from audit.runner import relative_name, run_audit
from audit.store import Store


@pytest.fixture
def whole_set_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading every record of a shard set at once fails the test (the one whole-set loader);
    the expectations stage, which still loads it, is skipped."""

    def refused(*args: object, **kwargs: object) -> object:
        raise AssertionError("a shard set was loaded whole")

    def skip(ctx: stages.StageContext) -> object:
        raise stages.StageSkipped("skipped by the test")

    monkeypatch.setattr(shardread, "load_set", refused)
    monkeypatch.setitem(stages.STAGE_FUNCTIONS, "expectations", skip)


def _records() -> list[dict[str, Any]]:
    """Nine real LCS records in three shards; record 1 of each has a wrong role."""
    records: list[dict[str, Any]] = realsamples.load(realsamples.LCS_CHAT)[:9]
    for n in (1, 4, 7):
        records[n]["conversations"][0]["from"] = "Human"
    return records


def _config(tmp_path: Path, records: list[dict[str, Any]]) -> config_mod.Config:
    write_jsonl(records, tmp_path / "set", 3)
    for n, record in enumerate(records):
        if n % 3 != 2:  # record 2 of each shard: its image is missing
            image = tmp_path / "images" / record["image"]
            image.parent.mkdir(parents=True, exist_ok=True)
            image.write_bytes(make.jpeg(width=8, height=8, seed=n))
    (tmp_path / "audit.toml").write_text(
        '[[datasets]]\nname = "lcs"\nkind = "auto"\nchat = "set"\nimages = ["images"]\n',
        encoding="utf-8",
    )
    return config_mod.load(tmp_path / "audit.toml")


def _head(record: dict[str, Any]) -> str:
    """How a record's excerpt starts (id and image first)."""
    return f'{{"id":"{record["id"]}","image":"{record["image"]}"'


def test_a_run_on_a_shard_set_audits_images_and_shows_records_without_loading_it_whole(
    tmp_path: Path, whole_set_refused: None
) -> None:
    records = _records()
    report = run_audit(_config(tmp_path, records), config_file="audit.toml")
    ds = report.datasets[0]
    assert ds.stages["images"].status == "ok", ds.stages["images"].note
    assert ds.kind == "lcs-chat"
    shards = [f"set/train-{i:05d}-of-00003.jsonl" for i in range(3)]
    images = ds.stage("images")
    assert images is not None
    missing = sorted((f.file, f.index) for f in images.findings if f.code == Code.IMAGE_MISSING)
    assert missing == [(shard, 2) for shard in shards]
    # the page shows the record behind each shard's first examples, read from its shard
    assert set(ds.shard_examples) == set(shards)
    for n, shard in enumerate(shards):
        shown = ds.shard_examples[shard]
        assert '"from":"Human"' in shown[1]
        assert shown[2].startswith(_head(records[3 * n + 2]))
    page = (tmp_path / "reports" / report.run_id / "index.html").read_text(encoding="utf-8")
    caption = records[4]["conversations"][1]["value"][:40]
    assert caption in page.replace("&#39;", "'").replace("&amp;", "&")


def test_excerpts_read_a_shard_set_only_as_far_as_the_records_they_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, whole_set_refused: None
) -> None:
    """A record of the first shard (after an unreadable line) and a position over the whole set
    (the URL stage's COCO references name those) in the second: the third shard is not read."""
    records = _records()
    config = _config(tmp_path, records)
    first = tmp_path / "set" / "train-00000-of-00003.jsonl"
    first.write_text('{"id": \n' + first.read_text(encoding="utf-8"), encoding="utf-8")
    opened: list[str] = []
    real_open = shardread.open_shard

    def recording(path: Path, *args: Any, **kwargs: Any) -> shardread.ShardStream:
        opened.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(shardread, "open_shard", recording)
    wanted = [
        finding(
            Code.TURN_ROLE, "role", dataset="lcs", file="set/train-00000-of-00003.jsonl", index=2
        ),
        finding(Code.URL_DEAD, "404", dataset="lcs", file="set", index=5),  # 4 elements before
    ]
    with Store(tmp_path / "state.sqlite") as store:
        ctx = stages.StageContext(
            config=config,
            dataset=config.datasets[0],
            store=store,
            progress=NoProgress(),
            work_dir=tmp_path / "work",
        )
        shown = record_examples(ctx, wanted, 3, lambda p: relative_name(p, config.base_dir))
    assert opened == ["train-00000-of-00003.jsonl", "train-00001-of-00003.jsonl"]
    assert shown.file == "set"
    (excerpt,) = shown.shards["set/train-00000-of-00003.jsonl"].values()
    assert excerpt.startswith(_head(records[1]))  # index 2: the line before is not one
    assert shown.examples[5].startswith(_head(records[4]))


def test_the_images_command_reads_a_shard_set_a_shard_at_a_time(
    tmp_path: Path, whole_set_refused: None
) -> None:
    """`images SET --root` (and with `--config`): each shard's record 2 has no image, named on
    its shard at its index there, with the set never loaded whole."""
    from audit.cli import main
    from audit.findings import from_jsonl

    _config(tmp_path, _records())
    shards = sorted(str(p) for p in (tmp_path / "set").glob("*.jsonl"))
    out = tmp_path / "found.jsonl"
    argv = ["images", str(tmp_path / "set"), "--root", str(tmp_path / "images"), "--no-cache"]
    assert main([*argv, "--findings", str(out), "--workers", "1"]) == 1
    missing = [(f.file, f.index) for f in from_jsonl(out.read_bytes()) if f.code == "image.missing"]
    assert sorted(missing) == [(shard, 2) for shard in shards]
    config = ["images", "--config", str(tmp_path / "audit.toml"), "--no-cache", "--workers", "1"]
    assert main([*config, "--findings", str(out)]) == 1
    again = [(f.file, f.index) for f in from_jsonl(out.read_bytes()) if f.code == "image.missing"]
    assert sorted(again) == [(shard, 2) for shard in shards]


def test_the_expectations_table_places_each_shards_image_findings_at_its_own_records(
    tmp_path: Path,
) -> None:
    """Image findings of a set name the shard and the index in it: record 2 of each of the three
    shards is missing, three of nine (the table once marked only the first shard's)."""
    report = run_audit(_config(tmp_path, _records()), config_file="audit.toml")
    expectations = report.datasets[0].stage("expectations")
    assert expectations is not None
    availability = [r for r in expectations.rules if r.column == "image_available"]
    assert availability
    assert {r.unexpected_count for r in availability} == {3}
    assert not any(r.success for r in availability)  # 6 of 9 available: under "mostly" 0.8
