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
