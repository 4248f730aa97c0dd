"""Checking one image's bytes, in a worker process: what would LLaVA's trainer hit when opening it?

The trainer runs ``Image.open(path).convert('RGB')``: PIL sniffs the content (a GIF named .jpg
trains fine), decodes the first frame fully (a truncated file raises), and refuses images above
Pillow's pixel limit. ``Image.verify()`` misses truncated JPEGs, so the deep level decodes the whole
stream; for JPEG it uses draft mode (DCT scaling), which still entropy-decodes every byte and so
catches truncation, at about 2.4x the speed of a full-size decode.

Details are fixed wording chosen here, never a decoder's message: those can quote the file's bytes,
and no byte of an image may reach a finding or a report.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

from PIL import Image, UnidentifiedImageError

from audit.loaders.imageroots import DAMAGE_REASONS, DamagedMemberError, Source, read_source

LEVELS: tuple[str, ...] = ("exists", "header", "decode")

#: What each extension promises; MPO is how Pillow names multi-picture JPEGs from cameras.
EXTENSION_FORMATS: dict[str, frozenset[str]] = {
    ".jpg": frozenset({"JPEG", "MPO"}),
    ".jpeg": frozenset({"JPEG", "MPO"}),
    ".png": frozenset({"PNG"}),
    ".gif": frozenset({"GIF"}),
    ".webp": frozenset({"WEBP"}),
    ".bmp": frozenset({"BMP"}),
    ".tif": frozenset({"TIFF"}),
    ".tiff": frozenset({"TIFF"}),
}

#: (status, format, width, height, detail): small and picklable, so results cross processes cheaply.
Outcome = tuple[str, str | None, int | None, int | None, str]

NOT_AN_IMAGE = "not an image (no image format recognised)"
DOES_NOT_DECODE = "the image data does not decode"
ENDS_EARLY = "the image data ends early"
BOMB = "Pillow refuses it as a decompression bomb"
#: Every detail a corrupt or truncated outcome may carry; anything else (a result cached by an
#: older version, which quoted bytes) is shown as the status's first wording.
WORDING: dict[str, tuple[str, ...]] = {
    "corrupt": (DOES_NOT_DECODE, NOT_AN_IMAGE, *DAMAGE_REASONS),
    "truncated": (ENDS_EARLY,),
}


def probe_batch(level: int, max_pixels: int, items: Sequence[tuple[Source, str]]) -> list[Outcome]:
    """Probe ``(source, extension)`` items at ``level`` (index into :data:`LEVELS`); never raises."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's EXIF/palette/bomb warnings are not findings
        return [probe_one(source, ext, level, max_pixels) for source, ext in items]


def probe_one(source: Source, ext: str, level: int, max_pixels: int) -> Outcome:
    try:
        data = read_source(source)
    except DamagedMemberError as exc:
        return ("corrupt", None, None, None, str(exc))  # fixed wording: DAMAGE_REASONS
    except OSError as exc:
        return ("unreadable", None, None, None, exc.strerror or "cannot be read")
    if not data:
        return ("empty", None, None, None, "0 bytes")
    fmt: str | None = None
    width = height = None
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format
            width, height = im.size
            if width * height > max_pixels:
                return ("too_large", fmt, width, height, _too_large(width, height, max_pixels))
            if level >= LEVELS.index("decode"):
                if fmt == "JPEG":
                    im.draft("RGB", (1, 1))  # smallest DCT scale: every byte still decoded
                im.load()
    except UnidentifiedImageError:
        return ("corrupt", None, None, None, NOT_AN_IMAGE)
    except Image.DecompressionBombError:
        return ("too_large", fmt, width, height, BOMB)
    except EOFError:
        return ("truncated", fmt, width, height, ENDS_EARLY)
    except OSError as exc:  # Pillow's only sign of truncation is its message; never shown
        if "truncated" in str(exc).lower():
            return ("truncated", fmt, width, height, ENDS_EARLY)
        return ("corrupt", fmt, width, height, DOES_NOT_DECODE)
    except Exception:  # any decoder failure is a finding about the file, never a crash
        return ("corrupt", fmt, width, height, DOES_NOT_DECODE)
    expected = EXTENSION_FORMATS.get(ext)
    if expected and fmt not in expected:
        return ("format_mismatch", fmt, width, height, f"content is {fmt}, extension is {ext}")
    return ("ok", fmt, width, height, "")


def _too_large(width: int, height: int, max_pixels: int) -> str:
    return f"{width}x{height} = {width * height:,} pixels, limit {max_pixels:,}"
