"""Real image bytes for the image tests: valid, broken in the ways LLaVA users met, and bombs."""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image


def jpeg(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    im = Image.new("RGB", (width, height), ((seed * 37) % 256, 120, 200))
    for x in range(0, width, 4):
        im.putpixel((x, (x + seed) % height), (255, x % 256, 0))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def png(width: int = 32, height: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


def gif() -> bytes:
    buf = io.BytesIO()
    Image.new("P", (40, 30), 3).save(buf, "GIF")
    return buf.getvalue()


def noisy_jpeg(width: int = 160, height: int = 120, seed: int = 5) -> bytes:
    """Mostly scan data (noise compresses badly), like a photo."""
    rng = random.Random(seed)
    im = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def truncated_jpeg() -> bytes:
    """An interrupted download: header intact, the scan data stops halfway."""
    data = noisy_jpeg()
    return data[: len(data) // 2]


def html_page() -> bytes:
    return b"<!DOCTYPE html><html><body>404 Not Found</body></html>"


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims huge dimensions: what a decompression bomb looks like from outside."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def photo(seed: int = 0, size: tuple[int, int] = (320, 240), quality: int = 90) -> bytes:
    """A JPEG with a picture in it (overlapping shapes), different per seed: what a perceptual
    hash tells apart, unlike flat colours."""
    from PIL import ImageDraw

    rng = random.Random(seed)
    im = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        box = [x, y, x + rng.randrange(20, 160), y + rng.randrange(20, 120)]
        draw.ellipse(box, fill=tuple(rng.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def reencoded(data: bytes, quality: int = 40, scale: float = 0.6) -> bytes:
    """The same picture saved again: another JPEG quality and size (new bytes, new SHA-256)."""
    with Image.open(io.BytesIO(data)) as im:
        small = im.convert("RGB").resize((int(im.width * scale), int(im.height * scale)))
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
