"""Two datasets built from real LCS-558K records that share one image, for the takedown tests.

The records are the real ones from ../shared/realdata; only the `image` reference of a few is
pointed at the taken-down image, the way one image ends up in several files and records.
Images are small generated JPEGs (no real image bytes are published with the samples).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from audit import config as config_mod
from audit.store import Store

TARGET = "00453/004539375.jpg"  # lcs558k_samples.json record 0
TARGET_URL = "http://ec1.ostkcdn.com/images/products/8111140/P15459545.jpg"  # SOURCES.md


@dataclass
class World:
    config: Path
    a_chat: Path
    b_chat: Path
    b_meta: Path
    images: Path
    #: (dataset, file, index, record id) of every record that uses the target image
    affected: list[tuple[str, Path, int, str]]


def _jpeg(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, "JPEG")
    return buf.getvalue()


def _meta(record: dict[str, Any]) -> dict[str, Any]:
    caption = record["conversations"][1]["value"]
    return {"id": record["id"], "image": record["image"], "blip_caption": caption}


def dump(path: Path, records: list[Any]) -> None:
    path.write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def build(tmp_path: Path, realdata: Path, *, with_images: bool = True) -> World:
    real = json.loads((realdata / "lcs558k_samples.json").read_text(encoding="utf-8"))
    a = [dict(r) for r in real[0:5]]  # a[0] is the target's own record
    a.append({**real[5], "image": TARGET})  # the image reused by another record
    b = [dict(r) for r in real[10:16]]
    b[1] = {**b[1], "image": TARGET}
    b[4] = {**b[4], "image": "copies/00453-renamed.jpg"}  # same bytes under another name
    # LCS-558K _meta.json shape (id, image, blip_caption, url); the gpt answer is the BLIP caption.
    meta = [_meta(r) for r in real[10:16]]
    meta.append({**_meta(real[0]), "url": TARGET_URL})
    data = tmp_path / "data"
    data.mkdir()
    dump(data / "a_chat.json", a)
    dump(data / "b_chat.json", b)
    dump(data / "b_meta.json", meta)
    images = tmp_path / "images"
    if with_images:
        for i, r in enumerate(real[0:16]):
            (images / r["image"]).parent.mkdir(parents=True, exist_ok=True)
            (images / r["image"]).write_bytes(_jpeg((i * 15, 40, 200 - i * 10)))
        (images / "copies").mkdir()
        (images / "copies/00453-renamed.jpg").write_bytes((images / TARGET).read_bytes())
    roots = f'images = ["{images}"]\n' if with_images else ""
    config = tmp_path / "audit.toml"
    config.write_text(
        'state = "state/audit.sqlite"\n\n'
        f'[[datasets]]\nname = "lcs-a"\nkind = "lcs-chat"\nchat = "data/a_chat.json"\n{roots}\n'
        f'[[datasets]]\nname = "lcs-b"\nkind = "lcs-chat"\nchat = "data/b_chat.json"\n'
        f'metadata = "data/b_meta.json"\n{roots}',
        encoding="utf-8",
    )
    affected = [
        ("lcs-a", data / "a_chat.json", 0, real[0]["id"]),
        ("lcs-a", data / "a_chat.json", 5, real[5]["id"]),
        ("lcs-b", data / "b_chat.json", 1, real[11]["id"]),
        ("lcs-b", data / "b_meta.json", 6, real[0]["id"]),
    ]
    if with_images:
        affected.insert(3, ("lcs-b", data / "b_chat.json", 4, real[14]["id"]))
    return World(
        config, data / "a_chat.json", data / "b_chat.json", data / "b_meta.json", images, affected
    )


def open_world(world: World) -> tuple[config_mod.Config, Store]:
    """The world's loaded config and its state store (the takedown ledger lives there)."""
    cfg = config_mod.load(world.config)
    return cfg, Store(cfg.path(cfg.state))
