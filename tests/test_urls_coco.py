"""COCO-based datasets get their source URLs from the COCO annotation file (Flickr originals)."""

from __future__ import annotations

import json
from pathlib import Path

import realsamples

from audit import config as config_mod
from audit.loaders.urlsources import coco_url_refs
from audit.probes.urls import sources_for


def _chat(path: Path, images: list[str]) -> Path:
    records = [
        {
            "id": Path(image).stem,
            "image": image,
            "conversations": [
                {"from": "human", "value": "<image>\nWhat is shown?"},
                {"from": "gpt", "value": "A photo."},
            ],
        }
        for image in images
    ]
    path.write_text(json.dumps(records, indent=2))
    return path


def test_each_record_gets_the_flickr_url_of_its_real_coco_image(tmp_path: Path) -> None:
    coco = realsamples.COCO
    entries = json.loads(coco.read_text())["images"][:3]
    images = [e["file_name"] for e in entries] + ["not-coco.png", "coco/train2017/000000000001.jpg"]
    refs = coco_url_refs(_chat(tmp_path / "chat.json", images), coco)
    assert [(r.index, r.url, r.image) for r in refs] == [
        (i, e["flickr_url"], e["file_name"]) for i, e in enumerate(entries)
    ]
    assert refs[0].record_id == Path(entries[0]["file_name"]).stem


def test_mix_style_prefixed_names_and_coco_mirror_fallback(tmp_path: Path) -> None:
    coco = tmp_path / "instances.json"
    coco.write_text(
        json.dumps(
            {
                "licenses": [{"id": 4, "name": "Attribution License", "url": "u"}],
                "images": [
                    {"id": 33471, "license": 4, "coco_url": "http://images.cocodataset.org/a.jpg"}
                ],
            }
        )
    )
    chat = _chat(tmp_path / "mix.json", ["coco/train2017/000000033471.jpg"])
    assert [r.url for r in coco_url_refs(chat, coco)] == ["http://images.cocodataset.org/a.jpg"]


def test_a_dataset_without_metadata_is_probed_through_its_coco_annotations(tmp_path: Path) -> None:
    (tmp_path / "audit.toml").write_text(
        '[[datasets]]\nname = "instruct"\nchat = "chat.json"\ncoco_annotations = "coco.json"\n'
        '[[datasets]]\nname = "cc3m"\nchat = "c.json"\nmetadata = "m.json"\ncoco_annotations = "x"\n'
    )
    config = config_mod.load(tmp_path / "audit.toml")
    (instruct,) = sources_for(config, config.dataset("instruct"))
    assert instruct.coco_annotations == str(tmp_path / "coco.json")
    assert instruct.path == str(tmp_path / "chat.json")
    (cc3m,) = sources_for(config, config.dataset("cc3m"))  # its own metadata URLs win
    assert cc3m.path == str(tmp_path / "m.json") and cc3m.coco_annotations is None


def test_a_file_that_is_neither_json_nor_a_tsv_is_an_input_error(tmp_path: Path) -> None:
    """A wrong file must not pass as "0 URLs, nothing missing"."""
    from audit.cli import main

    wrong = tmp_path / "notes.txt"
    wrong.write_text("garbage\nmore garbage\n")
    assert main(["urls", str(wrong), "--state", str(tmp_path / "s.sqlite")]) == 3


def test_the_coco_join_of_a_sharded_chat_names_the_shard_and_the_index_in_it(
    tmp_path: Path,
) -> None:
    """As the images stage's findings on the same records do (the report's recovery joins them
    by shard and index)."""
    coco = tmp_path / "instances.json"
    images = [{"id": k, "coco_url": f"http://images.cocodataset.org/{k}.jpg"} for k in (1, 2, 11)]
    coco.write_text(json.dumps({"licenses": [], "images": images}))
    chat = tmp_path / "chat"
    chat.mkdir()
    for n in range(2):
        names = [f"coco/train2017/{n * 10 + i:012d}.jpg" for i in range(3)]
        records = json.loads(_chat(tmp_path / "part.json", names).read_text())
        lines = "".join(json.dumps(r) + "\n" for r in records)
        (chat / f"train-{n:05d}-of-00002.jsonl").write_text(lines)
    refs = coco_url_refs(chat, coco)
    assert [(Path(r.file or "").name, r.index, r.url) for r in refs] == [
        ("train-00000-of-00002.jsonl", 1, "http://images.cocodataset.org/1.jpg"),
        ("train-00000-of-00002.jsonl", 2, "http://images.cocodataset.org/2.jpg"),
        ("train-00001-of-00002.jsonl", 1, "http://images.cocodataset.org/11.jpg"),
    ]
