"""`takedown match`, `apply` and `verify` on shard sets (issue 13): read shard by shard, the
cleaned data a set of the same format, shard names and count, indexes per shard."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from shardsets import write_jsonl, write_parquet

from audit import config as config_mod
from audit import takedown, takedown_steps
from audit.cli import main
from audit.loaders import shardcopy, shardread
from audit.loaders.shards import expand
from audit.store import Store

TARGET = "target/picture.jpg"


def _record(i: int, image: str | None = None) -> dict[str, Any]:
    return {
        "id": f"{i:09d}",
        "image": image or f"{i // 100:05d}/{i:09d}.jpg",
        "conversations": [
            {"from": "human", "value": "<image>\nDescribe the image concisely."},
            {"from": "gpt", "value": f"caption number {i}"},
        ],
    }


def _meta(record: dict[str, Any]) -> dict[str, Any]:
    return {"id": record["id"], "image": record["image"], "blip_caption": "a caption"}


def build(tmp_path: Path) -> Path:
    """Two datasets of 300 records: Parquet shards in the Hugging Face layout (a folder), and
    gzipped JSON Lines shards (a glob) with a JSON Lines metadata set. The taken-down image is
    used by two Parquet records in two shards and by every record of the third JSON Lines shard."""
    pq_records = [_record(i, TARGET if i in (5, 150) else None) for i in range(300)]
    write_parquet(pq_records, tmp_path / "pq", 3)
    jl_records = [_record(1000 + i, TARGET if 150 <= i < 225 else None) for i in range(300)]
    write_jsonl(jl_records, tmp_path / "jl", 4, gz=True)
    write_jsonl([_meta(r) for r in jl_records], tmp_path / "jlmeta", 2)
    config = tmp_path / "audit.toml"
    config.write_text(
        'state = "state/audit.sqlite"\n\n'
        '[[datasets]]\nname = "pq"\nkind = "lcs-chat"\nchat = "pq"\n\n'
        '[[datasets]]\nname = "jl"\nkind = "lcs-chat"\nchat = "jl/train-*.jsonl.gz"\n'
        'metadata = "jlmeta"\n',
        encoding="utf-8",
    )
    return config


#: (cleaned set folder, shard path in it) -> positions removed from the original shard
EXPECTED = {
    ("pq", "data/train-00000-of-00003.parquet"): {5},
    ("pq", "data/train-00001-of-00003.parquet"): {50},
    ("pq", "data/train-00002-of-00003.parquet"): set(),
    ("jl", "train-00000-of-00004.jsonl.gz"): set(),
    ("jl", "train-00001-of-00004.jsonl.gz"): set(),
    ("jl", "train-00002-of-00004.jsonl.gz"): set(range(75)),  # every record: written empty
    ("jl", "train-00003-of-00004.jsonl.gz"): set(),
    ("jlmeta", "train-00000-of-00002.jsonl"): set(),
    ("jlmeta", "train-00001-of-00002.jsonl"): set(range(75)),
}


def _records(path: Path) -> list[Any]:
    """A shard's records as they are stored: Parquet rows, or each JSON line's exact bytes."""
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return data.splitlines()


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in ("pq", "jl", "jlmeta")
        for p in sorted((root / folder).rglob("*"))
        if p.is_file()
    }


def _open(config: Path) -> tuple[config_mod.Config, Store]:
    cfg = config_mod.load(config)
    return cfg, Store(cfg.path(cfg.state))


def _request(cfg: config_mod.Config, store: Store) -> str:
    return takedown.new_request(
        cfg, store, ground="copyright", requester_contact="a@example.org",
        identifiers=[("image", TARGET)],
    ).request_id  # fmt: skip


def test_apply_writes_each_set_cleaned_shard_by_shard_and_verify_checks_it(tmp_path: Path) -> None:
    config = build(tmp_path)
    cfg, store = _open(config)
    rid = _request(cfg, store)
    before = _digests(tmp_path)

    located = takedown.match(cfg, store, rid)
    found = {(Path(m.file).name, m.index) for m in located.matches}
    assert found == {(Path(s).name, i) for (_, s), drop in EXPECTED.items() for i in drop}
    applied = takedown.apply(cfg, store, rid)
    assert applied.removed == 2 + 75 + 75
    assert _digests(tmp_path) == before  # the originals are never touched

    for (folder, shard), drop in EXPECTED.items():
        original = tmp_path / folder / shard
        cleaned = tmp_path / f"{folder}.{rid}.cleaned" / shard
        want = [r for i, r in enumerate(_records(original)) if i not in drop]
        assert _records(cleaned) == want, cleaned  # the rest unchanged, in order
    for folder in ("pq", "jl", "jlmeta"):  # the same shard names and count, nothing else
        names = sorted(p.relative_to(tmp_path / folder) for p in (tmp_path / folder).rglob("*.*"))
        copy = tmp_path / f"{folder}.{rid}.cleaned"
        assert sorted(p.relative_to(copy) for p in copy.rglob("*.*")) == names

    rows = {(Path(f.original).name, r.index) for f in applied.files for r in f.removed}
    assert rows == found  # the manifest: each removal by its shard and its index there
    assert {f.set for f in applied.files} == {
        str(tmp_path / "pq"),
        str(tmp_path / "jl/train-*.jsonl.gz"),
        str(tmp_path / "jlmeta"),
    }
    checklist = takedown_steps.checklist(cfg, store, rid)
    steps = [line for line in checklist.splitlines() if "Put the cleaned" in line]
    assert len(steps) == 3 and all("cleaned shard set" in line for line in steps)  # one per set
    assert f"jl.{rid}.cleaned in place of" in steps[1]
    assert "train-00002-of-00004.jsonl.gz | 74 |" in checklist  # the shard, the index in it

    assert not takedown.verify(cfg, store, rid).ok  # the configured sets still hold them
    for folder in ("pq", "jl", "jlmeta"):  # the cleaned sets put in place
        shutil.rmtree(tmp_path / folder)
        (tmp_path / f"{folder}.{rid}.cleaned").rename(tmp_path / folder)
    verified = takedown.verify(cfg, store, rid)
    assert verified.ok and not verified.present
    assert {c.exists for c in verified.cleaned} == {False}  # moved into place
    store.close()


@pytest.fixture
def one_shard_at_a_time(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A reader that refuses to load a whole set or a whole file, and to open a shard before the
    one it is reading is done; returns the shards in the order they were read."""
    opened: list[str] = []
    reading: list[str] = []
    real = shardread.raw_batches

    def guarded(path: Path, batch_rows: int, dataset: str = "") -> Iterator[Any]:
        assert not reading, f"{path} opened while {reading[0]} is still being read"
        reading.append(str(path))
        opened.append(str(path))
        try:
            yield from real(path, batch_rows, dataset)
        finally:
            reading.remove(str(path))

    def whole(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a whole set or file was loaded: {args[:1]}")

    def one_shard(source: str, *args: Any) -> Any:
        assert len(expand(source)) == 1, f"a whole set was loaded: {source}"
        return real_set(source, *args)

    real_set = shardread.load_set
    monkeypatch.setattr(shardread, "raw_batches", guarded)
    monkeypatch.setattr(shardcopy, "raw_batches", guarded)
    monkeypatch.setattr(shardread, "load_set", one_shard)
    monkeypatch.setattr("audit.takedown_units.load_file", whole)
    monkeypatch.setattr("audit.export.shardsets.read_raw", whole)
    return opened


def test_match_apply_and_verify_stream_the_shards_one_at_a_time(
    tmp_path: Path, one_shard_at_a_time: list[str]
) -> None:
    config = build(tmp_path)
    cfg, store = _open(config)
    rid = _request(cfg, store)
    takedown.match(cfg, store, rid)
    applied = takedown.apply(cfg, store, rid)
    takedown.verify(cfg, store, rid)
    store.close()
    assert applied.removed == 152
    shards = {str(p) for p in tmp_path.glob("*/**/train-*") if ".cleaned" not in str(p)}
    assert set(one_shard_at_a_time) >= shards  # every shard was read, never two at once


def _break(tmp_path: Path, how: str) -> None:
    if how == "truncated gzip shard":
        shard = tmp_path / "jl/train-00001-of-00004.jsonl.gz"
        shard.write_bytes(shard.read_bytes()[:200])
    elif how == "truncated Parquet shard":
        shard = tmp_path / "pq/data/train-00001-of-00003.parquet"
        shard.write_bytes(shard.read_bytes()[:-40])
    elif how == "mixed formats":
        write_jsonl([_record(9)], tmp_path / "pq/data", 1)
    else:  # an empty set
        shutil.rmtree(tmp_path / "jlmeta")
        (tmp_path / "jlmeta").mkdir()


@pytest.mark.parametrize(
    "how", ["truncated gzip shard", "truncated Parquet shard", "mixed formats", "empty set"]
)
def test_a_broken_mixed_or_empty_set_is_one_line_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    config = build(tmp_path)
    cfg, store = _open(config)
    rid = _request(cfg, store)
    takedown.apply(cfg, store, rid)
    store.close()
    _break(tmp_path, how)
    capsys.readouterr()
    for step in ("match", "apply", "verify"):
        assert main(["takedown", step, rid, "--config", str(config)]) == 3, (how, step)
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (how, step, err)
        assert err.startswith("llava-audit: ") and str(tmp_path) in err


def test_a_cleaned_set_that_would_overwrite_an_input_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = build(tmp_path)
    write_jsonl([_record(7)], tmp_path / "jl.TD-0001.cleaned", 4, gz=True)  # another dataset's
    config.write_text(
        config.read_text() + '\n[[datasets]]\nname = "other"\nchat = "jl.TD-0001.cleaned"\n'
    )
    cfg, store = _open(config)
    rid = _request(cfg, store)
    store.close()
    before = _digests(tmp_path)
    inputs = {str(p): p.read_bytes() for p in (tmp_path / "jl.TD-0001.cleaned").iterdir()}
    capsys.readouterr()
    assert main(["takedown", "apply", rid, "--config", str(config)]) == 3
    err = capsys.readouterr().err
    assert "would overwrite the input" in err and len(err.strip().splitlines()) == 1
    assert {str(p): p.read_bytes() for p in (tmp_path / "jl.TD-0001.cleaned").iterdir()} == inputs
    assert _digests(tmp_path) == before
    assert not (tmp_path / f"pq.{rid}.cleaned").exists()  # every target checked before writing


def test_a_cleaned_folder_holding_a_shard_the_set_lacks_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = build(tmp_path)
    cfg, store = _open(config)
    rid = _request(cfg, store)
    takedown.apply(cfg, store, rid)
    store.close()
    stray = tmp_path / f"jl.{rid}.cleaned/train-00009-of-00010.jsonl.gz"
    stray.write_bytes(gzip.compress(b'{"id": "x"}\n'))  # a reader would take it for the set's
    capsys.readouterr()
    assert main(["takedown", "apply", rid, "--config", str(config)]) == 3
    err = capsys.readouterr().err
    assert "not in the set" in err and str(stray) in err and len(err.strip().splitlines()) == 1
