"""The demo's dataset: small, in the real LLaVA layouts, with known defects planted on purpose.

Three datasets a newcomer recognises: LCS-558K style (chat + ``_meta.json`` + image folders),
CC-3M style (chat.json + metadata.json + images.zip) and LLaVA-Instruct style (COCO names, several
turns). The records are synthetic (no real data is copied) but every key, id pattern, prompt and
path shape follows spec/llava-data.md, so only the planted defects are reported. :data:`PLANTED`
lists them, so tests and the demo text can say what should be found.
"""

from __future__ import annotations

import io
import json
import random
import zipfile
from pathlib import Path
from typing import Any

from PIL import Image

LCS_PROMPTS = (
    "Describe the image concisely.",
    "Provide a brief description of the given image.",
    "Render a clear and concise summary of the photo.",
    "Write a terse but informative summary of the picture.",
    "What is in the photo?",
)
CC3M_PROMPTS = (
    "Summarize the visual content of the image.",
    "Give a short and clear explanation of the subsequent image.",
    "Share a concise interpretation of the image provided.",
)
CAPTIONS = (
    "a red bicycle leaning against a brick wall",
    "fresh vegetables at a farmers market stall",
    "a lighthouse on a rocky coast at sunset",
    "two dogs running on a sandy beach",
    "a bowl of ramen with a soft boiled egg",
    "snow covered mountains above a quiet lake",
    "a vintage car parked on a city street",
    "people walking through a covered market",
    "a wooden cabin in a pine forest",
    "colourful kites flying over a green park",
    "a cup of coffee next to an open notebook",
    "a tram crossing a bridge in the rain",
)
#: The record whose id is markup: every report must show it as text, never run it.
XSS_ID = "<script>alert('xss')</script>"

#: (dataset, index, what is wrong) for every planted defect.
PLANTED: tuple[tuple[str, int, str], ...] = (
    ("lcs", 3, "role 'Human' instead of 'human'"),
    ("lcs", 5, "empty gpt answer"),
    ("lcs", 7, "no <image> token"),
    ("lcs", 9, "three turns in a pretraining record"),
    ("lcs", 11, "image file missing"),
    ("lcs", 12, "image file has zero bytes"),
    ("lcs", 13, "truncated JPEG"),
    ("lcs", 14, "GIF named .jpg"),
    ("lcs", 15, "id is a <script> element"),
    ("cc3m", 2, "<image> in the gpt turn"),
    ("cc3m", 4, "caption differs from metadata.json"),
    ("cc3m", 6, "answer contains </s>"),
    ("cc3m", 8, "absolute image path"),
    ("cc3m", 10, "record missing from metadata.json"),
    ("cc3m", 12, "zip member missing"),
    ("cc3m", 13, "zip member is not an image"),
    ("cc3m", 16, "image taken down on request, still in the dataset"),
    ("instruct", 2, "roles do not alternate"),
    ("instruct", 4, "integer id"),
    ("instruct", 5, "exact duplicate of record 1"),
    ("instruct", 6, "image file missing"),
)

#: The image a rights holder asked to remove (the demo records and applies the request).
TAKEDOWN_IMAGE = f"GCC_train_{2582585 - 16 * 4111:09d}.jpg"

#: URL kinds served by the demo's local server (see audit/demo.py), cycled over metadata records.
URL_KINDS = ("img", "img", "img", "dead", "img", "gone", "img", "moved", "img", "optout", "html")


def jpeg(rng: random.Random, size: tuple[int, int] = (96, 72)) -> bytes:
    """A small real JPEG: a two-colour gradient, different per image."""
    a = [rng.randrange(256) for _ in range(3)]
    b = [rng.randrange(256) for _ in range(3)]
    img = Image.new("RGB", size)
    w = size[0]
    img.putdata(
        [
            tuple(a[c] + (b[c] - a[c]) * x // w for c in range(3))
            for _y in range(size[1])
            for x in range(w)
        ]
    )
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def gif(rng: random.Random) -> bytes:
    buf = io.BytesIO()
    Image.new("P", (32, 32), rng.randrange(256)).save(buf, "GIF")
    return buf.getvalue()


def _pair(prompt: str, caption: str, *, image_first: bool) -> list[dict[str, str]]:
    human = f"<image>\n{prompt}" if image_first else f"{prompt}\n<image>"
    return [{"from": "human", "value": human}, {"from": "gpt", "value": caption}]


def build(root: Path, url_base: str, *, seed: int = 7) -> dict[str, dict[str, Any]]:
    """Write the three datasets under ``root``; returns their config entries by name."""
    rng = random.Random(seed)
    return {
        "lcs": _lcs(root / "LLaVA-Pretrain", url_base, rng),
        "cc3m": _cc3m(root / "LLaVA-CC3M-Pretrain-595K", url_base, rng),
        "instruct": _instruct(root / "LLaVA-Instruct-150K", url_base, rng),
    }


def _url(url_base: str, i: int, name: str) -> str:
    return f"{url_base}/{URL_KINDS[i % len(URL_KINDS)]}/{name}"


def _lcs(folder: Path, url_base: str, rng: random.Random) -> dict[str, Any]:
    records, meta = [], []
    for i in range(24):
        rid = f"{453 * 10000 + 9375 + i * 37:09d}"
        image = f"{rid[:5]}/{rid}.jpg"
        caption = CAPTIONS[i % len(CAPTIONS)]
        conv = _pair(rng.choice(LCS_PROMPTS), caption, image_first=i % 2 == 0)
        if i == 3:
            conv[0]["from"] = "Human"
        elif i == 5:
            conv[1]["value"] = ""
        elif i == 7:
            conv[0]["value"] = conv[0]["value"].replace("<image>", "").strip()
        elif i == 9:
            conv.append({"from": "human", "value": "And the background?"})
        if i == 15:
            rid = XSS_ID
        records.append({"id": rid, "image": image, "conversations": conv})
        meta.append(
            {
                "id": rid,
                "image": image,
                "blip_caption": caption,
                "url": _url(url_base, i, f"{i}.jpg"),
            }
        )
        path = folder / "images" / image
        path.parent.mkdir(parents=True, exist_ok=True)
        if i == 11:
            continue
        data = {12: b"", 14: gif(rng)}.get(i, jpeg(rng))
        path.write_bytes(data[: len(data) // 2] if i == 13 else data)
    _write_json(folder / "blip_laion_cc_sbu_558k.json", records, indent=2)
    _write_json(folder / "blip_laion_cc_sbu_558k_meta.json", meta, indent=None)
    return {
        "kind": "lcs-chat",
        "chat": f"{folder.name}/blip_laion_cc_sbu_558k.json",
        "metadata": f"{folder.name}/blip_laion_cc_sbu_558k_meta.json",
        "images": [f"{folder.name}/images"],
        "source": "laion",
    }


def _cc3m(folder: Path, url_base: str, rng: random.Random) -> dict[str, Any]:
    records, meta = [], []
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "images.zip", "w", zipfile.ZIP_STORED) as zf:
        for i in range(20):
            rid = f"GCC_train_{2582585 - i * 4111:09d}"
            image = f"{rid}.jpg"
            caption = CAPTIONS[(i + 5) % len(CAPTIONS)] + " ."
            conv = _pair(rng.choice(CC3M_PROMPTS), caption, image_first=i % 3 == 0)
            if i == 2:
                conv[0]["value"] = conv[0]["value"].replace("<image>", "").strip()
                conv[1]["value"] += "\n<image>"
            elif i == 6:
                conv[1]["value"] += " </s>"
            record = {"id": rid, "image": "/tmp/" + image if i == 8 else image}
            records.append({**record, "conversations": conv})
            if i != 10:
                meta_caption = "a photo of something else ." if i == 4 else caption
                meta.append(
                    {
                        "id": rid,
                        "image": image,
                        "caption": meta_caption,
                        "blip_caption": "" if i % 10 == 9 else caption.rstrip(" ."),
                        "url": _url(url_base, i + 1, f"cc{i}.jpg"),
                    }
                )
            if i == 12:
                continue
            zf.writestr(image, b"<html>not an image</html>" if i == 13 else jpeg(rng))
    _write_json(folder / "chat.json", records, indent=None)
    _write_json(folder / "metadata.json", meta, indent=None)
    return {
        "kind": "cc3m-chat",
        "chat": f"{folder.name}/chat.json",
        "metadata": f"{folder.name}/metadata.json",
        "images": [f"{folder.name}/images.zip"],
        "source": "cc3m",
        "image_origin": "llava-images-zip",
    }


def _instruct(folder: Path, url_base: str, rng: random.Random) -> dict[str, Any]:
    questions = (
        ("What is the main object in the image?", "The main object is {c}."),
        ("Where could this photo have been taken?", "It looks like a public place: {c}."),
        ("What colours stand out?", "Warm colours stand out in {c}."),
    )
    records: list[dict[str, Any]] = []
    images = folder / "coco" / "train2017"
    images.mkdir(parents=True, exist_ok=True)
    for i in range(8):
        rid = f"{442786 + i * 1009:012d}"
        caption = CAPTIONS[(i + 2) % len(CAPTIONS)]
        conv: list[dict[str, str]] = []
        for turn, (q, a) in enumerate(questions[: 1 + i % 3]):
            human = f"<image>\n{q}" if turn == 0 else q
            conv += [
                {"from": "human", "value": human},
                {"from": "gpt", "value": a.format(c=caption)},
            ]
        if i == 2:
            conv.insert(1, {"from": "human", "value": "Please answer in detail."})
        record: dict[str, Any] = {"id": int(rid) if i == 4 else rid, "image": f"{rid}.jpg"}
        records.append({**record, "conversations": conv})
        if i != 6:
            (images / f"{rid}.jpg").write_bytes(jpeg(rng, (120, 90)))
    records[5] = json.loads(json.dumps(records[1]))
    _write_json(folder / "llava_instruct_150k.json", records, indent=2)
    _write_json(folder / "coco" / "captions_train2017.json", _coco(records, url_base), indent=None)
    return {
        "kind": "instruct",
        "chat": f"{folder.name}/llava_instruct_150k.json",
        "images": [f"{folder.name}/coco/train2017"],
        "source": "coco",
        "coco_annotations": f"{folder.name}/coco/captions_train2017.json",
    }


def _coco(records: list[dict[str, Any]], url_base: str) -> dict[str, Any]:
    """A COCO annotation file: licence block, per-image licence ids and Flickr source URLs."""
    licences = [
        (1, "Attribution-NonCommercial-ShareAlike License", "by-nc-sa"),
        (4, "Attribution License", "by"),
        (6, "Attribution-NoDerivs License", "by-nd"),
    ]
    ids = sorted({int(str(r["id"])) for r in records})
    return {
        "licenses": [
            {"id": n, "name": name, "url": f"http://creativecommons.org/licenses/{slug}/2.0/"}
            for n, name, slug in licences
        ],
        "images": [
            {
                "id": image_id,
                "license": licences[i % 3][0],
                "file_name": f"{image_id:012d}.jpg",
                "flickr_url": _url(url_base, i + 2, f"flickr{image_id}.jpg"),
            }
            for i, image_id in enumerate(ids)
        ],
        "annotations": [],
    }


def _write_json(path: Path, value: object, *, indent: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=indent, ensure_ascii=False), encoding="utf-8")
