"""Smoke test of the benchmark data generator: tiny files in the real layouts that the loaders read.

No timing here (benchmarks/ measures); this only guards that the benchmark inputs stay valid, so a
benchmark never silently measures the loader's error path instead of the normal one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from audit.loaders.records import load_records

ROOT = Path(__file__).resolve().parents[1]
EXPECTED_KINDS = {
    "LLaVA-Instruct-150K/llava_instruct_150k.json": "instruct",
    "LLaVA-CC3M-Pretrain-595K/chat.json": "cc3m-chat",
    "LLaVA-CC3M-Pretrain-595K/metadata.json": "cc3m-metadata",
    "LLaVA-Pretrain/blip_laion_cc_sbu_558k.json": "lcs-chat",
    "LLaVA-Pretrain/blip_laion_cc_sbu_558k_meta.json": "lcs-metadata",
}


def _generate(out: Path, *extra: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.generate",
            "--out",
            str(out),
            "--scale",
            "0.002",
            *extra,
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    _generate(out)
    return out


@pytest.fixture(scope="module")
def defective(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("defects")
    _generate(out, "--defects", "7")
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED_KINDS))
def test_loaders_read_generated_files_as_their_kind(clean: Path, name: str) -> None:
    loaded = load_records(clean / name)
    assert loaded.kind == EXPECTED_KINDS[name]
    assert loaded.index is None  # the typed fast path took every record
    assert loaded.total == len(loaded.records) > 0
    assert [f for f in loaded.findings if f.severity == "error"] == []


@pytest.mark.parametrize("name", sorted(EXPECTED_KINDS))
def test_layout_is_exactly_json_dump_indent_2(clean: Path, name: str) -> None:
    text = (clean / name).read_text(encoding="ascii")  # ensure_ascii, like the originals
    assert json.dumps(json.loads(text), indent=2) == text


def test_same_seed_gives_identical_bytes(clean: Path, tmp_path: Path) -> None:
    _generate(tmp_path)
    for name in EXPECTED_KINDS:
        assert (tmp_path / name).read_bytes() == (clean / name).read_bytes(), name


def test_real_shapes_ids_images_and_image_token(clean: Path) -> None:
    lcs = json.loads((clean / "LLaVA-Pretrain/blip_laion_cc_sbu_558k.json").read_text())
    cc3m = json.loads((clean / "LLaVA-CC3M-Pretrain-595K/chat.json").read_text())
    instruct = json.loads((clean / "LLaVA-Instruct-150K/llava_instruct_150k.json").read_text())
    assert all(r["image"] == f"{r['id'][:5]}/{r['id']}.jpg" and len(r["id"]) == 9 for r in lcs)
    assert all(r["image"] == r["id"] + ".jpg" and r["id"].startswith("GCC_train_") for r in cc3m)
    assert all(r["image"] == r["id"] + ".jpg" and len(r["id"]) == 12 for r in instruct)
    for record in lcs + cc3m + instruct:
        turns = record["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert sum(t["value"].count("<image>") for t in turns) == 1
        assert turns[0]["value"].startswith("<image>\n") or turns[0]["value"].endswith("\n<image>")
    assert any(len(r["conversations"]) > 2 for r in instruct)  # multi-turn conversation_58k part
    metadata = json.loads((clean / "LLaVA-CC3M-Pretrain-595K/metadata.json").read_text())
    assert [m["id"] for m in metadata] == [r["id"] for r in cc3m]
    assert [m["caption"] for m in metadata] == [r["conversations"][1]["value"] for r in cc3m]
    assert 0 < sum("blip_caption" not in m for m in metadata) < len(metadata) * 0.2


def test_defects_are_listed_where_they_were_injected(clean: Path, defective: Path) -> None:
    manifest = json.loads((defective / "defects.json").read_text())
    assert {d["file"] for d in manifest} == set(EXPECTED_KINDS)
    assert json.loads((clean / "defects.json").read_text()) == []
    for defect in manifest:
        broken = json.loads((defective / defect["file"]).read_text())[defect["index"]]
        original = json.loads((clean / defect["file"]).read_text())[defect["index"]]
        assert broken["id"] == original["id"] == defect["record_id"]
        assert broken != original, defect  # the record really was changed
        assert defect["codes"]


def test_rerun_benchmark_builds_a_dataset_the_config_loader_accepts(tmp_path: Path) -> None:
    from audit.config import load

    script = (
        "import sys; from pathlib import Path; from benchmarks import bench_rerun as b; "
        "f = Path(sys.argv[1]); print(b.write_config(f, b.build_dataset(f, 30, 8080, 4)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "rerun")],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    config = load(done.stdout.strip())
    (dataset,) = config.datasets
    metadata = json.loads(Path(dataset.metadata or "").read_text())
    assert len(metadata) == 30
    assert {m["url"].split("/")[2] for m in metadata} == {f"127.0.0.{i}:8080" for i in (1, 2, 3, 4)}
    images = Path(dataset.images[0])
    assert all((images / m["image"]).stat().st_size > 5000 for m in metadata)
