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
    assert "Per source, for commercial / train" in printed and "CC-BY-NC-ND-2.0" in printed
    assert "records usable for commercial train" in printed


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


@pytest.mark.realdata
def test_commercial_redistribution_of_nc_images_is_forbidden(
    mix: tuple[Path, Path], tmp_path: Path
) -> None:
    """Redistribution follows the purpose: NC licences forbid every commercial action (issue 10)."""
    data, coco = mix
    out = tmp_path / "v.jsonl"
    args = (data, "--coco-annotations", coco, "--purpose", "commercial")
    assert _run(*args, "--action", "redistribute-images", "--verdicts", out) == 1
    licences = {i["file_name"][:-4]: i["license"] for i in json.loads(coco.read_text())["images"]}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(licences)
    for row in rows:
        assert (row["purpose"], row["action"]) == ("commercial", "redistribute-images")
        nc = licences[row["record_id"]] in (1, 2, 3)
        assert (row["verdict"] == "forbidden") == nc, row["record_id"]
    # the same images redistributed for research stay usable (ND ones only conditionally)
    assert _run(data, "--coco-annotations", coco, "--action", "redistribute-images") == 0


def test_use_is_an_alias_of_purpose_and_action(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chat = _cc3m_chat(tmp_path)
    cfg = tmp_path / "audit.toml"
    cfg.write_text('[use]\npurpose = "commercial"\n')
    out = tmp_path / "v.jsonl"
    assert _run(chat, "--config", cfg, "--use", "redistribute-annotations", "--verdicts", out) == 0
    row = json.loads(out.read_text())
    assert (row["purpose"], row["action"]) == ("commercial", "redistribute-annotations")
    assert _run(chat, "--use", "commercial", "--verdicts", out) == 1
    row = json.loads(out.read_text())
    assert (row["purpose"], row["action"]) == ("commercial", "train")
    assert _run(chat, "--use", "research", "--action", "train") == 2
    assert "--use is the older form" in capsys.readouterr().err


def test_config_use_keys_purpose_and_action(tmp_path: Path) -> None:
    chat = _cc3m_chat(tmp_path)
    cfg = tmp_path / "audit.toml"
    cfg.write_text('[use]\npurpose = "research"\naction = ["train", "redistribute-images"]\n')
    out = tmp_path / "v.jsonl"
    assert _run(chat, "--config", cfg, "--verdicts", out) == 1  # CC-3M images: no licence
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["action"], r["verdict"]) for r in rows] == [
        ("train", "unknown"),
        ("redistribute-images", "forbidden"),
    ]


def test_verdicts_file_carries_the_chain_of_evidence(tmp_path: Path) -> None:
    from audit.licensing import read_verdict_rows

    chat = _cc3m_chat(tmp_path)
    out = tmp_path / "v.jsonl"
    assert _run(chat, "--image-origin", "llava-images-zip", "--verdicts", out) == 0
    (row,) = read_verdict_rows(out)
    assert (row.file, row.index, row.record_id) == (str(chat), 0, "GCC_train_000000001")
    assert (row.purpose, row.action, row.verdict) == ("research", "train", "conditional")
    assert row.licenses == [
        "LicenseRef-LLaVA-images-zip-unlicensed",
        "LicenseRef-Google-Conceptual-Captions",
    ]
    terms = {link.term: link for link in row.evidence}
    restriction = terms["LicenseRef-LLaVA-images-research-reproduction-only"]
    assert (
        restriction.policy_entry.url
        == "https://github.com/haotian-liu/LLaVA/blob/main/docs/Data.md"
    )
    assert "research community" in restriction.policy_entry.quote
    assert restriction.source == "cc3m" and restriction.part == "image"
    assert restriction.source_entry is not None and restriction.source_entry.url.startswith(
        "https://"
    )
    assert all(link.policy_entry.url.startswith(("http://", "https://")) for link in row.evidence)
    assert not list(tmp_path.glob(".v.jsonl*"))  # written atomically


def test_the_cc3m_tsv_is_read_as_cc3m_records(tmp_path: Path) -> None:
    import realsamples

    out = tmp_path / "v.jsonl"
    assert _run(realsamples.GCC_TSV, "--verdicts", out) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5
    assert [r["record_id"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert {tuple(r["licenses"]) for r in rows} == {
        ("LicenseRef-All-Rights-Reserved", "LicenseRef-Google-Conceptual-Captions")
    }
    assert {r["verdict"] for r in rows} == {"unknown"}
