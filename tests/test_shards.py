"""Sharded inputs on the local engine: a folder or glob of JSON Lines or Parquet shards gives the
findings the same records give as one JSON file (file = the shard, index = within the shard),
and the cross-record checks (duplicates, chat vs metadata) see across shards."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import realsamples
from shardsets import global_keys, write_jsonl, write_parquet

from audit.catalogue.codes import Code
from audit.cli import main
from audit.loaders.shards import shard_starts
from audit.loaders.urlsources import load_url_refs
from audit.structure import check_files


def _planted() -> list[dict[str, Any]]:
    """The 20 real LCS-558K records with defects planted across what become different shards."""
    records: list[dict[str, Any]] = realsamples.load(realsamples.LCS_CHAT)
    records[2]["conversations"][0]["from"] = "bot"  # turn.role
    records[9]["conversations"][0]["value"] = "Describe it."  # image_token.count, prompt.unknown
    records[16] = json.loads(json.dumps(records[1]))  # an exact copy, in another shard
    records[18]["id"] = records[4]["id"]  # the same id, another record
    return records


def _by_code(findings: Any, code: str) -> list[Any]:
    return [f for f in findings if f.code == code]


@pytest.mark.parametrize("layout", ["jsonl-3", "jsonl.gz-2", "parquet-2", "parquet-glob"])
def test_shards_give_the_findings_of_the_single_file(tmp_path: Path, layout: str) -> None:
    records = _planted()
    single = tmp_path / "single.json"
    single.write_text(json.dumps(records, indent=2), encoding="utf-8")
    if layout.startswith("jsonl"):
        offsets = write_jsonl(records, tmp_path / "set", int(layout[-1]), gz=".gz" in layout)
        source = str(tmp_path / "set")
    else:
        offsets = write_parquet(records, tmp_path / "set", 2)
        glob = layout == "parquet-glob"
        source = (
            str(tmp_path / "set" / "data" / "train-*.parquet") if glob else str(tmp_path / "set")
        )
    whole = check_files([single], workers=1)
    sharded = check_files([source], workers=2 if layout == "parquet-2" else 1)

    assert global_keys(sharded.findings, offsets) == global_keys(whole.findings, {})
    assert {"turn.role", "image_token.count", "record.duplicate"} <= {
        str(f.code) for f in sharded.findings
    }
    assert {f.file for f in sharded.findings if f.index is not None} <= set(offsets)
    assert sharded.records == whole.records == len(records)
    # dataset-level lines: the same text, on the set
    for code in ("stats.duplicates", "file.record_count"):
        (one,) = _by_code(whole.findings, code)
        (other,) = _by_code(sharded.findings, code)
        assert (other.file, other.message) == (source, one.message)
    assert sharded.files[source].duplicates == whole.files[str(single)].duplicates
    assert sum(f.records for f in sharded.files.values()) == len(records)


def test_a_duplicate_across_two_shards_is_found_once_and_names_the_first(
    tmp_path: Path,
) -> None:
    offsets = write_jsonl(_planted(), tmp_path / "set", 3)  # records 0-5, 6-12, 13-19
    first, _, third = sorted(offsets)
    result = check_files([tmp_path / "set"], workers=1)
    (dup,) = _by_code(result.findings, "record.duplicate")
    assert (dup.file, dup.index) == (third, 16 - offsets[third])
    assert dup.message == f"exact copy of record 1 of {first}"
    stats = result.files[str(tmp_path / "set")].duplicates
    assert stats is not None
    assert (stats.repeated_ids, stats.exact_duplicates) == (2, 1)


def test_a_broken_record_in_a_parquet_shard_is_found_at_its_shard_and_index(
    tmp_path: Path,
) -> None:
    records: list[dict[str, Any]] = realsamples.load(realsamples.LCS_CHAT)
    clean = write_parquet(records, tmp_path / "clean", 2)
    assert not [
        f for f in check_files([tmp_path / "clean"], workers=1).findings if f.index is not None
    ]

    records[13]["conversations"][1]["from"] = "assistant"
    records[13]["conversations"][0]["value"] = ""
    broken = write_parquet(records, tmp_path / "broken", 2)
    found = [
        f for f in check_files([tmp_path / "broken"], workers=1).findings if f.index is not None
    ]
    second = sorted(broken)[1]
    assert {(f.file, f.index) for f in found} == {(second, 13 - broken[second])}
    assert {"turn.role", "turn.empty_value"} <= {str(f.code) for f in found}
    assert sorted(clean) != sorted(broken)


def test_a_text_only_parquet_record_has_no_image(tmp_path: Path) -> None:
    """Parquet writes null for an absent key: no `image` there is a text-only record, as in JSON."""
    records: list[dict[str, Any]] = realsamples.load(realsamples.LCS_CHAT)[:4]
    records[1] = {
        "id": "text-1",
        "conversations": [
            {"from": "human", "value": "Hello?"},
            {"from": "gpt", "value": "Hi."},
        ],
    }
    single = tmp_path / "single.json"
    single.write_text(json.dumps(records), encoding="utf-8")
    offsets = write_parquet(records, tmp_path / "set", 1)
    sharded = check_files([tmp_path / "set"], kind="lcs-chat", workers=1)
    whole = check_files([single], kind="lcs-chat", workers=1)
    assert global_keys(sharded.findings, offsets) == global_keys(whole.findings, {})
    stats = next(iter(s for p, s in sharded.files.items() if p in offsets))
    assert stats.text_only_records == 1


def _cc3m_pair() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    chat: list[dict[str, Any]] = realsamples.load(realsamples.CC3M_CHAT)
    meta = [
        {
            "id": r["id"],
            "image": r["image"],
            "caption": r["conversations"][1]["value"],
            "url": f"http://example.org/{r['id']}.jpg",
        }
        for r in chat
    ]
    meta[3]["caption"] = "a different caption"  # xfile.caption_mismatch on chat record 3
    meta[1]["image"] = "GCC_train_000000000.jpg"  # xfile.image_mismatch on chat record 1
    meta.append({**meta[0], "id": "GCC_train_999999999"})  # xfile.missing_chat
    return chat, meta


@pytest.mark.parametrize("meta_sharded", [False, True])
def test_chat_shards_are_cross_checked_with_their_metadata(
    tmp_path: Path, meta_sharded: bool
) -> None:
    chat, meta = _cc3m_pair()
    folder = tmp_path / "LLaVA-CC3M-Pretrain-595K"
    folder.mkdir()
    (folder / "chat.json").write_text(json.dumps(chat), encoding="utf-8")
    (folder / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    whole = check_files([folder / "chat.json", folder / "metadata.json"], workers=1)

    offsets = write_parquet(chat, tmp_path / "chat", 2)
    if meta_sharded:
        offsets |= write_jsonl(meta, tmp_path / "meta", 2)
        meta_path = tmp_path / "meta"
    else:
        meta_path = folder / "metadata.json"
    sharded = check_files([tmp_path / "chat", meta_path], workers=2 if meta_sharded else 1)

    def xfile(findings: Any, offsets: dict[str, int]) -> Counter[tuple[str, int]]:
        return Counter(
            (str(f.code), offsets.get(f.file, 0) + f.index)
            for f in findings
            if str(f.code).startswith("xfile.")
        )

    expected = xfile(whole.findings, {})
    assert set(expected) == {
        ("xfile.caption_mismatch", 3),
        ("xfile.image_mismatch", 1),
        ("xfile.missing_chat", 5),
    }
    assert xfile(sharded.findings, offsets) == expected
    compared = sharded.files[str(meta_path)].crossfile
    assert compared == whole.files[str(folder / "metadata.json")].crossfile


def test_check_cli_takes_a_folder_and_names_each_shard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_parquet(_planted(), tmp_path / "set", 2)
    out = tmp_path / "findings.jsonl"
    assert (
        main(["check", str(tmp_path / "set"), "--json", "--findings", str(out), "--workers", "1"])
        == 1
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["records"] == 20
    assert summary["files"][str(tmp_path / "set")]["kind"] == "lcs-chat"
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {line["file"] for line in lines if line["index"] is not None} == {
        str(tmp_path / "set" / "data" / "train-00000-of-00002.parquet"),
        str(tmp_path / "set" / "data" / "train-00001-of-00002.parquet"),
    }


def test_an_unreadable_shard_is_one_line_and_the_others_are_audited(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    offsets = write_jsonl(_planted(), tmp_path / "set", 2, gz=True)
    bad = sorted(offsets)[1]
    Path(bad).write_bytes(b"\x1f\x8b not really gzip")
    assert main(["check", str(tmp_path / "set"), "--json", "--workers", "1"]) == 3
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["records"] == 10  # the first shard
    assert len(summary["unreadable"]) == 1
    (line,) = captured.err.strip().splitlines()
    assert bad in line


def test_laion_parquet_is_a_url_source_read_by_column(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "laion"
    folder.mkdir()
    for i, urls in enumerate((["http://a.example/1.jpg", None], ["http://b.example/2.jpg"])):
        table = pa.table(
            {
                "URL": urls,
                "TEXT": ["a caption"] * len(urls),
                "key": [f"{i}{j:04d}" for j in range(len(urls))],
            }
        )
        pq.write_table(table, folder / f"part-{i:05d}.parquet")
    refs = load_url_refs(folder)
    # each names its shard and its position there (the other stages' findings name them so)
    assert [(Path(r.file or "").name, r.index, r.record_id, r.url) for r in refs] == [
        ("part-00000.parquet", 0, "00000", "http://a.example/1.jpg"),
        ("part-00001.parquet", 0, "10000", "http://b.example/2.jpg"),
    ]
    one = load_url_refs(folder / "part-00001.parquet", column="URL")
    assert [(r.index, r.url) for r in one] == [(0, "http://b.example/2.jpg")]


def test_url_references_of_gzipped_and_one_line_json_lines_shards(tmp_path: Path) -> None:
    """A ``.jsonl.gz`` shard is decompressed, a shard of one line is a record (both were
    refused), and a blank line is not a record."""
    import gzip

    folder = tmp_path / "meta"
    folder.mkdir()
    first = b'{"id": 1, "url": "http://a.example/1.jpg"}\n\n{"id": 2, "caption": "none"}\n'
    (folder / "part-00000.jsonl.gz").write_bytes(gzip.compress(first))
    (folder / "part-00001.jsonl.gz").write_bytes(gzip.compress(b'{"url": "http://b.example/"}'))
    refs = load_url_refs(folder)
    assert [(Path(r.file or "").name, r.index, r.record_id, r.url) for r in refs] == [
        ("part-00000.jsonl.gz", 0, "1", "http://a.example/1.jpg"),
        ("part-00001.jsonl.gz", 0, None, "http://b.example/"),
    ]


def test_image_references_of_a_set_name_the_shard_and_the_index_in_it(tmp_path: Path) -> None:
    """Image references of a sharded chat: every record, each on its shard at its position
    there, as the structure stage's findings name it (a JSON Lines line that is not a record
    still counts)."""
    from audit.loaders.records import image_refs

    records = _planted()
    offsets = write_jsonl(records, tmp_path / "set", 3)
    last = sorted(offsets)[2]
    with Path(last).open("a", encoding="utf-8") as handle:
        handle.write("[1, 2]\n" + json.dumps(records[0]) + "\n")
    single = tmp_path / "single.json"
    single.write_text(json.dumps([*records, [1, 2], records[0]]), encoding="utf-8")
    sharded = image_refs(tmp_path / "set")
    assert [(offsets[str(r.file)] + r.index, r.record_id, r.image) for r in sharded] == [
        (r.index, r.record_id, r.image) for r in image_refs(single)
    ]
    assert (sharded[-1].file, sharded[-1].index) == (last, 21 - offsets[last])


def test_the_structure_stage_of_a_run_reruns_when_a_shard_changes(tmp_path: Path) -> None:
    from audit import config as config_mod
    from audit import stages
    from audit.models import NoProgress
    from audit.store import Store

    records: list[dict[str, Any]] = realsamples.load(realsamples.LCS_CHAT)
    offsets = write_parquet(records, tmp_path / "set", 2)
    (tmp_path / "audit.toml").write_text(
        '[[datasets]]\nname = "lcs"\nchat = "set/data/*.parquet"\n', encoding="utf-8"
    )
    config = config_mod.load(tmp_path / "audit.toml")

    def structure(store: Store) -> tuple[Any, bool]:
        ctx = stages.StageContext(
            config=config,
            dataset=config.datasets[0],
            store=store,
            progress=NoProgress(),
            work_dir=tmp_path / "work",
        )
        return stages.STAGE_FUNCTIONS["structure"](ctx), "structure" in ctx.reused

    with Store(tmp_path / "state.sqlite") as store:
        first, _ = structure(store)
        assert structure(store)[1]  # unchanged: reused
        records[12]["conversations"][0]["from"] = "bot"
        write_parquet(records, tmp_path / "set", 2)  # the second shard rewritten
        second, reused = structure(store)
    assert not reused
    assert "turn.role" not in {str(f.code) for f in first.findings}
    (role,) = [f for f in second.findings if f.code == "turn.role"]
    assert (role.file, role.index) == (sorted(offsets)[1], 2)


def test_recovery_counts_a_sharded_chats_broken_images_on_their_shards(tmp_path: Path) -> None:
    """The report's recovery joins the images stage's findings (on each shard, at its index
    there) to the metadata's URLs by record id: two shards' record 1 are two broken images."""
    from audit import config as config_mod
    from audit.export.sources import dataset_recovery
    from audit.findings import make
    from audit.runner import relative_name

    records: list[dict[str, Any]] = realsamples.load(realsamples.LCS_CHAT)[:8]
    offsets = write_jsonl(records, tmp_path / "set", 2)
    meta = [
        {"id": r["id"], "image": r["image"], "url": f"http://x.test/{n}.jpg"}
        for n, r in enumerate(records)
    ]
    (tmp_path / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    (tmp_path / "audit.toml").write_text(
        '[[datasets]]\nname = "lcs"\nkind = "lcs-chat"\nchat = "set"\nmetadata = "meta.json"\n',
        encoding="utf-8",
    )
    config = config_mod.load(tmp_path / "audit.toml")
    name = lambda p: relative_name(p, config.base_dir)  # noqa: E731 - as the runner spells files
    found = []
    for shard, first in offsets.items():  # record 1 of each shard: missing image
        rid = records[first + 1]["id"]
        found.append(
            make(
                Code.IMAGE_MISSING, "gone", dataset="lcs", file=name(shard), index=1, record_id=rid
            )
        )
    dead = offsets[max(offsets)] + 1  # the second shard's: its URL is dead too
    found.append(make(Code.URL_DEAD, "404", dataset="lcs", file="meta.json", index=dead))
    recovery = dataset_recovery(config, config.datasets[0], found, name)
    assert recovery is not None
    assert (recovery.broken, recovery.recoverable, recovery.gone) == (2, 1, 1)


def test_a_findings_file_name_is_placed_at_its_shards_start_whole_components_only() -> None:
    shards = [(Path("/data/set/train-0.jsonl"), 0), (Path("/data/set/train-1.jsonl"), 40)]
    names = ["set/train-1.jsonl", "/data/set/train-0.jsonl", "rain-1.jsonl", "set", "other.json"]
    assert shard_starts(names, shards) == {"set/train-1.jsonl": 40, "/data/set/train-0.jsonl": 0}
