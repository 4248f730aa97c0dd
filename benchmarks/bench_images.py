"""Local image probe: full-decode throughput on images.zip-sized JPEGs, the cache, zip membership.

    .venv/bin/python -m benchmarks.bench_images                 # 60,000 JPEGs + a 595,375-name zip
    .venv/bin/python -m benchmarks.bench_images --count 4000 --names 100000   # quick look

Figures (DESIGN.md "Performance"): >= 1,500 JPEGs/s decoded end to end on 2 cores for files of the
size in LLaVA's images.zip (6.46 GB / 595,375 = about 11 KB); the ratio against what a user would
write first (a sequential Pillow loop over the zip, as the trainer opens images); a second run on
unchanged inputs <= 10% of the first; membership of 595,375 zip names in < 2 s, next to zipfile.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import zipfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from benchmarks.harness import Bench, warm_page_cache

DISTINCT = 400  # distinct JPEGs cycled over the names: decode cost is per byte, not per identity


def photo(seed: int, width: int = 256, height: int = 192) -> bytes:
    """A photo-like JPEG of about 11 KB: gradient, shapes and blurred noise, quality 86."""
    rng = random.Random(seed)
    im = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x, y = rng.randrange(width), rng.randrange(height)
        box = (x, y, x + rng.randrange(10, 90), y + rng.randrange(10, 90))
        draw.ellipse(box, fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    noise = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    im = Image.blend(im, noise.filter(ImageFilter.GaussianBlur(1)), 0.3)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=86)
    return buf.getvalue()


def build_dataset(folder: Path, count: int) -> tuple[Path, Path, int]:
    """images.zip (deflated, under images/ as some re-packs are) and a CC-3M style chat.json."""
    blobs = [photo(i) for i in range(DISTINCT)]
    names = [f"GCC_train_{i:09d}.jpg" for i in range(count)]
    zip_path = folder / "images.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, name in enumerate(names):
            zf.writestr("images/" + name, blobs[i % DISTINCT])
    records = [
        {
            "id": name[:-4],
            "image": name,
            "conversations": [
                {"from": "human", "value": "<image>\nDescribe the image concisely."},
                {"from": "gpt", "value": "a photo"},
            ],
        }
        for name in names
    ]
    chat = folder / "chat.json"
    chat.write_text(json.dumps(records, indent=2), encoding="utf-8")
    return zip_path, chat, sum(map(len, blobs)) // DISTINCT


def naive_loop(zip_path: Path, limit: int) -> dict[str, float]:
    """What a user writes first: open each member with Pillow and convert, one at a time."""
    with zipfile.ZipFile(zip_path) as zf:
        names = [n for n in zf.namelist() if n.endswith(".jpg")][:limit]
        for name in names:
            with Image.open(io.BytesIO(zf.read(name))) as im:
                im.convert("RGB")
    return {"images": len(names)}


def build_name_zip(path: Path, names: int) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(names):
            zf.writestr(f"GCC_train_{i:09d}.jpg", b"")


def membership(path: Path, names: int) -> dict[str, int]:
    from audit.loaders.imageroots import ZipRoot

    root = ZipRoot(path)
    return {"found": sum(f"GCC_train_{i:09d}.jpg" in root for i in range(names))}


def zipfile_membership(path: Path, names: int) -> dict[str, int]:
    with zipfile.ZipFile(path) as zf:
        members = set(zf.namelist())
    return {"found": sum(f"GCC_train_{i:09d}.jpg" in members for i in range(names))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60_000, help="JPEGs in the zip (60,000)")
    parser.add_argument("--naive", type=int, default=4_000, help="JPEGs for the naive loop")
    parser.add_argument("--names", type=int, default=595_375, help="names in the membership zip")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    exe = str(Path(sys.executable).with_name("llava-audit"))
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        folder = Path(tmp)
        zip_path, chat, mean_size = build_dataset(folder, args.count)
        bench = Bench(
            "images",
            params={"jpegs": args.count, "mean_jpeg_bytes": mean_size, "pixels": "256x192",
                    "workers": args.workers, "names": args.names},
        )  # fmt: skip
        warm_page_cache([zip_path, chat])
        naive = bench.call(
            "naive Pillow loop (sequential)", lambda: naive_loop(zip_path, args.naive)
        )
        state = folder / "state.sqlite"
        probe = [exe, "images", str(chat), "--root", str(zip_path), "--level", "decode",
                 "--state", str(state), "--workers", str(args.workers)]  # fmt: skip
        first = bench.run("llava-audit images --level decode (cold cache)", probe)
        second = bench.run("llava-audit images --level decode (warm cache)", probe)
        naive_rate = args.naive / naive.wall_s
        tool_rate = args.count / first.wall_s
        bench.figure("JPEGs/s, full decode, end to end", tool_rate, 1_500, higher_is_better=True)
        bench.ratio("JPEGs/s: llava-audit / naive loop", tool_rate, naive_rate)
        bench.figure("cores used (decode run, peak)", first.peak_cores)
        # On a shared machine wall time hides what the code costs; CPU time does not.
        tool_per_cpu = args.count / first.cpu_s if first.cpu_s else 0.0
        naive_per_cpu = args.naive / naive.cpu_s if naive.cpu_s else 0.0
        bench.ratio("JPEGs per CPU-second: llava-audit / naive loop", tool_per_cpu, naive_per_cpu)
        bench.figure("JPEGs/s on 2 free cores (per CPU-second x 2)", 2 * tool_per_cpu, 1_500, True)
        bench.ratio("second run / first run (unchanged)", second.wall_s, first.wall_s, 0.10)
        names_zip = folder / "names.zip"
        build_name_zip(names_zip, args.names)
        warm_page_cache([names_zip])
        ours = bench.call(
            "zip membership (llava-audit index)", lambda: membership(names_zip, args.names)
        )
        stdlib = bench.call(
            "zip membership (zipfile.ZipFile)", lambda: zipfile_membership(names_zip, args.names)
        )
        bench.figure("zip membership seconds (wall)", ours.wall_s, 2.0)
        bench.figure("zip membership seconds (CPU)", ours.cpu_s, 2.0)
        bench.ratio("zip membership: llava-audit / zipfile", ours.wall_s, stdlib.wall_s)
        bench.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
