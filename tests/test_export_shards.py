"""`llava-audit export` on shard sets (issue 13): the same records kept and dropped as when the
same data is one JSON file, written as a set of the same format, shard names and count."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from shardsets import write_jsonl
from test_takedown_shards import one_shard_at_a_time  # noqa: F401 - the guard fixture

from audit import config as config_mod
from audit import demodata
from audit.cli import main
from audit.demo import write_config
from audit.export.exporter import Manifest, export

CHAT, META = "LLaVA-CC3M-Pretrain-595K/chat.json", "LLaVA-CC3M-Pretrain-595K/metadata.json"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The demo's CC-3M dataset (defects planted) as its two JSON files, and as a JSON Lines
    set (3 shards, a folder) with a gzipped JSON Lines metadata set (2 shards, a glob)."""
    folder = tmp_path_factory.mktemp("exportsets")
    url_base = "http://127.0.0.1:9"  # nothing listens: no network, URLs just fail
    datasets = demodata.build(folder, url_base)
    files = write_config(folder, {"cc3m": datasets["cc3m"]}, url_base)
    chat = json.loads((folder / CHAT).read_text())
    write_jsonl(chat, folder / "sets/chat", 3)
    write_jsonl(json.loads((folder / META).read_text()), folder / "sets/meta", 2, gz=True)
    toml = files.read_text().replace(CHAT, "sets/chat").replace(META, "sets/meta/*.jsonl.gz")
    sets = folder / "sets.toml"
    sets.write_text(toml.replace('reports_dir = "reports"', 'reports_dir = "reports-sets"'))
    _export(sets, None)  # a dry run: audits the sets once, so every export here reuses that run
    return folder, files, sets


def _export(config: Path, out: Path | None) -> Manifest:
    return export(config_mod.load(config), out, purpose="research", include_conditional=True)


def _dropped(out: Path) -> dict[tuple[str | None, bool], tuple[str, ...]]:
    """Dropped records by (record id, metadata or not): their reasons."""
    lines = (out / "cc3m" / "dropped.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    return {(r["record_id"], "meta" in r["file"]): tuple(r["reasons"]) for r in rows}


def _lines(path: Path) -> list[bytes]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return data.splitlines()


def test_a_set_exports_the_records_its_json_file_exports_as_a_set(
    world: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    folder, files, sets = world
    as_files = _export(files, tmp_path / "files")
    as_sets = _export(sets, tmp_path / "sets")
    assert _dropped(tmp_path / "sets") == _dropped(tmp_path / "files")
    (one,) = as_files.datasets
    (many,) = as_sets.datasets
    assert (many.kept, many.dropped, many.reasons) == (one.kept, one.dropped, one.reasons)
    assert 0 < many.kept < many.kept + many.dropped

    drops = [json.loads(x) for x in (tmp_path / "sets/cc3m/dropped.jsonl").read_text().split()]
    for original in sorted((folder / "sets").rglob("train-*")):
        name = str(original.relative_to(folder))
        out = tmp_path / "sets/cc3m" / original.parent.name / original.name
        gone = {d["index"] for d in drops if d["file"] == name}
        kept = [line for i, line in enumerate(_lines(original)) if i not in gone]
        assert _lines(out) == kept, name  # byte for byte, in order; a shard per shard
    assert [f.file for f in many.files] == [
        str(p.relative_to(folder)) for p in sorted((folder / "sets").rglob("train-*"))
    ]
    assert sum(f.kept for f in many.files[:3]) == many.kept


def test_an_export_reads_one_shard_at_a_time(
    world: tuple[Path, Path, Path],
    tmp_path: Path,
    one_shard_at_a_time: list[str],  # noqa: F811
) -> None:
    _, _, sets = world
    manifest = _export(sets, tmp_path / "out")
    assert manifest.reused_run  # the run of the test above: only the export reads here
    assert len(set(one_shard_at_a_time)) == 5


def _break(folder: Path, how: str) -> Any:
    shard = folder / "sets/meta/train-00001-of-00002.jsonl.gz"
    if how == "truncated shard":
        shard.write_bytes(shard.read_bytes()[:60])
    elif how == "mixed formats":
        (folder / "sets/chat/x.parquet").write_bytes(b"PAR1....PAR1")
    else:
        for p in (folder / "sets/chat").iterdir():
            p.unlink()


@pytest.mark.parametrize("how", ["truncated shard", "mixed formats", "empty set"])
def test_a_broken_mixed_or_empty_set_is_one_line_and_exit_3(
    world: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    import shutil

    folder, _, sets = world
    copy = tmp_path / "w"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("reports*", ".llava-audit"))
    _break(copy, how)
    capsys.readouterr()
    code = main(["export", "--config", str(copy / sets.name), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 3 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and str(copy / "sets") in err, err


def test_an_out_folder_that_would_replace_an_input_shard_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_jsonl([{"id": "1"}, {"id": "2"}], tmp_path / "cc3m/data", 2)
    config = tmp_path / "audit.toml"
    config.write_text('[[datasets]]\nname = "cc3m"\nchat = "cc3m/data"\n', encoding="utf-8")
    before = {p: p.read_bytes() for p in (tmp_path / "cc3m/data").iterdir()}
    capsys.readouterr()
    assert main(["export", "--config", str(config), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "would overwrite the input shard" in err and len(err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in (tmp_path / "cc3m/data").iterdir()} == before
