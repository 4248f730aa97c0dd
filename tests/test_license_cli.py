"""`llava-audit license`: exit codes, findings JSONL, config settings and the summary tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit.cli import main

INSTR = "<image>\nWhat is in the picture?"


def _mix_from_real_coco(realdata: Path, tmp_path: Path) -> Path:
    """A mix665k-style file over the 40 real COCO images (licence ids 1-6)."""
    images = json.loads((realdata / "coco_licenses.json").read_text())["images"]
    records = [
        {
            "id": img["file_name"][:-4],
            "image": f"coco/train2017/{img['file_name']}",
            "conversations": [{"from": "human", "value": INSTR}, {"from": "gpt", "value": "A."}],
        }
        for img in images
    ]
    path = tmp_path / "llava_v1_5_mix665k.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


@pytest.fixture
def mix(realdata: Path, tmp_path: Path) -> tuple[Path, Path]:
    return _mix_from_real_coco(realdata, tmp_path), realdata / "coco_licenses.json"


def _run(*args: str | Path) -> int:
    return main(["license", *map(str, args)])


@pytest.mark.realdata
def test_research_passes_and_commercial_fails_on_non_commercial_coco_images(
    mix: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, coco = mix
    assert _run(data, "--coco-annotations", coco, "--use", "research") == 0
    out = tmp_path / "f.jsonl"
    assert _run(data, "--coco-annotations", coco, "--use", "commercial", "--findings", out) == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert set(rows[0]) == {"dataset", "file", "index", "record_id", "code", "severity", "message"}
    forbidden = [r for r in rows if r["code"] == "license.forbidden"]
    licences = [i["license"] for i in json.loads(coco.read_text())["images"]]
    assert len(forbidden) == sum(1 for lic in licences if lic in (1, 2, 3))
    assert all(r["severity"] == "error" and r["index"] is not None for r in forbidden)
    printed = capsys.readouterr().out
    assert "Per source, for commercial" in printed and "CC-BY-NC-ND-2.0" in printed
    assert "records usable for commercial" in printed


@pytest.mark.realdata
def test_images_zip_origin_fails_redistribution(mix: tuple[Path, Path], tmp_path: Path) -> None:
    data, coco = mix
    only_by = tmp_path / "by.json"
    records = json.loads(data.read_text())
    ids_by = {i["id"] for i in json.loads(coco.read_text())["images"] if i["license"] == 4}
    only_by.write_text(json.dumps([r for r in records if int(r["id"]) in ids_by]))
    base = (only_by, "--coco-annotations", coco, "--use", "redistribute-images")
    assert _run(*base) == 0
    assert _run(*base, "--image-origin", "llava-images-zip") == 1


@pytest.mark.realdata
def test_config_settings_flip_the_exit_code(mix: tuple[Path, Path], tmp_path: Path) -> None:
    data, coco = mix
    cfg = tmp_path / "audit.toml"
    cfg.write_text('[license]\ntraining_is_derivative = "yes"\n')
    assert _run(data, "--coco-annotations", coco, "--use", "research") == 0
    assert _run(data, "--coco-annotations", coco, "--use", "research", "--config", cfg) == 1


def _cc3m_chat(tmp_path: Path) -> Path:
    """A one-record CC-3M pretraining chat file."""
    chat = tmp_path / "chat.json"
    chat.write_text(
        json.dumps(
            [
                {
                    "id": "GCC_train_000000001",
                    "image": "GCC_train_000000001.jpg",
                    "conversations": [
                        {"from": "human", "value": "Describe the image concisely.\n<image>"},
                        {"from": "gpt", "value": "a dog ."},
                    ],
                }
            ]
        )
    )
    return chat


def test_declared_use_defaults_to_the_config_purpose(tmp_path: Path) -> None:
    chat = _cc3m_chat(tmp_path)
    cfg = tmp_path / "audit.toml"
    cfg.write_text('[use]\npurpose = "commercial"\n')
    assert _run(chat) == 0  # research: unknown is a warning, not an error
    assert _run(chat, "--config", cfg) == 1


def test_bad_policy_is_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chat = tmp_path / "chat.json"
    chat.write_text("[]")
    policy = tmp_path / "policy.toml"
    policy.write_text('[licenses."CC-BY-4.0"]\nresearch = "sure"\n')
    assert _run(chat, "--policy", policy) == 2
    err = capsys.readouterr().err
    assert 'licenses."CC-BY-4.0"' in err and "Traceback" not in err


def test_unknown_use_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        _run("x.json", "--use", "everything")
    assert info.value.code == 2


def test_unreadable_inputs_are_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path / "missing.json") == 3
    chat = tmp_path / "chat.json"
    chat.write_text("[]")
    not_coco = tmp_path / "coco.json"
    not_coco.write_text('{"licenses": "nope"}')
    assert _run(chat, "--coco-annotations", not_coco) == 3
    assert "not a COCO annotation file" in capsys.readouterr().err


def _cc3m_dataset(tmp_path: Path) -> Path:
    _cc3m_chat(tmp_path)
    cfg = tmp_path / "audit.toml"
    cfg.write_text('[[datasets]]\nname = "cc3m"\nchat = "chat.json"\n')
    return cfg


def test_without_files_every_configured_dataset_is_audited(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _cc3m_dataset(tmp_path)
    out = tmp_path / "f.jsonl"
    assert _run("--config", cfg) == 0
    assert _run("--config", cfg, "--use", "commercial", "--findings", out) == 1
    assert "dataset cc3m" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["dataset"] for r in rows if r["code"] == "license.forbidden"] == ["cc3m"]


def test_config_mode_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _cc3m_dataset(tmp_path)
    assert _run() == 2
    assert _run("--config", cfg, "--coco-annotations", "x.json") == 2
    assert "--coco-annotations apply to FILE arguments" in capsys.readouterr().err
