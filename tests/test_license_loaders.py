"""COCO annotation and Visual Genome image-data loaders: the join tables and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit.errors import InputError
from audit.loaders.coco import load_coco_licences, load_vg_coco_ids


@pytest.mark.realdata
def test_real_coco_file_gives_the_licence_block_and_image_licences(realdata: Path) -> None:
    coco = load_coco_licences(realdata / "coco_licenses.json")
    assert sorted(coco.licenses) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert coco.licenses[3] == (
        "Attribution-NonCommercial-NoDerivs License",
        "http://creativecommons.org/licenses/by-nc-nd/2.0/",
    )
    assert len(coco.images) == 40 and coco.without_license == 0
    licence, flickr = coco.images[493652]  # LLaVA id "000000493652"
    assert licence == 3 and flickr.startswith("http://farm4.staticflickr.com/")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "not a COCO annotation file"),
        ('{"licenses": [{"id": "one"}]}', "not a COCO annotation file"),
        ('{"info": {}}', "no `licenses` and no `images`"),
        ('{"licenses": [', "invalid JSON"),
    ],
)
def test_bad_coco_files_are_input_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "coco.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as info:
        load_coco_licences(path)
    assert str(path) in str(info.value) and info.value.exit_code == 3


def test_missing_coco_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_coco_licences(tmp_path / "nope.json")


def test_images_without_a_licence_id_stay_unresolved(tmp_path: Path) -> None:
    path = tmp_path / "coco.json"
    path.write_text(json.dumps({"licenses": [], "images": [{"id": 1}, {"id": 2, "license": 4}]}))
    coco = load_coco_licences(path)
    assert coco.images == {2: (4, "")} and coco.without_license == 1


def test_vg_image_data_maps_vg_ids_to_coco_ids_in_both_layouts(tmp_path: Path) -> None:
    path = tmp_path / "image_data.json"
    path.write_text(
        json.dumps(
            [
                {"image_id": 1, "coco_id": 9, "flickr_id": None},
                {"id": 2, "coco_id": 10},  # VG 1.0 names the id `id`
                {"image_id": 3, "coco_id": None, "flickr_id": 77},
            ]
        )
    )
    assert load_vg_coco_ids(path) == {1: 9, 2: 10}
    path.write_text('{"images": []}')
    with pytest.raises(InputError, match=r"not a Visual Genome image_data\.json"):
        load_vg_coco_ids(path)
