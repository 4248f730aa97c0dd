"""COCO annotation files (`captions_*.json`, `instances_*.json`): the licence block and image licences.

Only `licenses` and `images[].{id, license, flickr_url, coco_url}` are decoded; msgspec skips the (large)
`annotations` array without building objects, so even instances_train2017.json loads in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from audit.errors import InputError
from audit.loaders import read_input


class _License(msgspec.Struct, gc=False):
    id: int
    name: str = ""
    url: str = ""


class _Image(msgspec.Struct, gc=False):
    id: int
    license: int | None = None
    flickr_url: str | None = None
    coco_url: str | None = None
    file_name: str | None = None
    width: int | None = None
    height: int | None = None


class _CocoFile(msgspec.Struct, gc=False):
    licenses: list[_License] = msgspec.field(default_factory=list)
    images: list[_Image] = msgspec.field(default_factory=list)


@dataclass(frozen=True)
class CocoLicences:
    """The join table: licence id -> (name, url) as the file states it; image id -> licence."""

    path: Path
    licenses: dict[int, tuple[str, str]]
    images: dict[int, tuple[int, str]]  # image id -> (licence id, flickr url)
    without_license: int  # image entries with no licence id (they stay unresolved)
    #: image id -> (width, height) as COCO recorded the original: a copy of another size was changed
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)


def load_coco_licences(path: str | Path) -> CocoLicences:
    """Read a COCO annotation file; an unreadable or non-COCO file is an InputError naming the spot."""
    p = Path(path)
    data = _read(p)
    images: dict[int, tuple[int, str]] = {}
    sizes: dict[int, tuple[int, int]] = {}
    without = 0
    for image in data.images:
        if image.width and image.height:
            sizes[image.id] = (image.width, image.height)
        if image.license is None:
            without += 1
            continue
        images[image.id] = (image.license, image.flickr_url or "")
    return CocoLicences(
        path=p,
        licenses={lic.id: (lic.name, lic.url) for lic in data.licenses},
        images=images,
        without_license=without,
        sizes=sizes,
    )


def load_coco_urls(path: str | Path) -> dict[int, str]:
    """COCO image id -> its source URL: the Flickr original (the rights holder's copy), else COCO's.

    This is how LLaVA-Instruct and mix665k's COCO records get a source URL to probe: their image
    names are COCO ids, and only the annotation file knows where each image came from.
    """
    return {
        image.id: url
        for image in _read(Path(path)).images
        if (url := image.flickr_url or image.coco_url)
    }


def load_coco_flickr(path: str | Path) -> dict[str, str]:
    """Image file name -> its Flickr URL (the rights holder's photo), for takedown notices that
    name the Flickr photo. Each image is listed under its file name and under its 2017 name
    (``000000442786.jpg``), which LLaVA-Instruct and mix665k use whatever the annotation year."""
    names: dict[str, str] = {}
    for image in _read(Path(path)).images:
        if not image.flickr_url:
            continue
        if image.file_name:
            names[image.file_name] = image.flickr_url
        names.setdefault(f"{image.id:012d}.jpg", image.flickr_url)
    return names


def _read(p: Path) -> _CocoFile:
    raw = read_input(p, "COCO annotation file")
    if not raw.strip():
        raise InputError(str(p), "COCO annotation file is empty")
    try:
        data = msgspec.json.decode(raw, type=_CocoFile)
    except msgspec.ValidationError as exc:
        raise InputError(str(p), f"not a COCO annotation file: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InputError(str(p), f"invalid JSON: {exc}") from None
    if not data.licenses and not data.images:
        raise InputError(str(p), "not a COCO annotation file: no `licenses` and no `images`")
    return data


class _VgImage(msgspec.Struct, gc=False):
    image_id: int | None = None
    id: int | None = None  # VG 1.0 names the field `id`
    coco_id: int | None = None


def load_vg_coco_ids(path: str | Path) -> dict[int, int]:
    """Visual Genome `image_data.json`: VG image id -> COCO image id, for images taken from COCO.

    VG (and GQA, which uses VG images) has no licence per image; a VG image that came from COCO
    carries the COCO image's licence, so the licence stage resolves it through the COCO join.
    """
    p = Path(path)
    raw = read_input(p, "Visual Genome image data")
    if not raw.strip():
        raise InputError(str(p), "Visual Genome image data is empty")
    try:
        images = msgspec.json.decode(raw, type=list[_VgImage])
    except msgspec.ValidationError as exc:
        raise InputError(str(p), f"not a Visual Genome image_data.json: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InputError(str(p), f"invalid JSON: {exc}") from None
    mapping: dict[int, int] = {}
    for image in images:
        vg_id = image.image_id if image.image_id is not None else image.id
        if vg_id is not None and image.coco_id is not None:
            mapping[vg_id] = image.coco_id
    return mapping
