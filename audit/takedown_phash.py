"""Perceptual hashes for takedown matching: the same picture re-encoded, resized, renamed.

A SHA-256 finds only the exact bytes; a rights holder's photo comes back as a JPEG of another
quality or size under a new id. ``imagehash``'s pHash (64-bit, DCT of a 32x32 grey thumbnail)
changes by a few bits for such a copy and by about half of them for another picture, so takedown
matching compares it within ``[takedown] phash_distance`` bits. ``imagehash`` and Pillow are
imported on first use: commands that never hash images do not pay for numpy and scipy.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

from audit.errors import TakedownError
from audit.loaders import read_input

#: A request's image is read whole; far above any photo a requester would send.
REQUEST_IMAGE_MAX_BYTES = 256 * 2**20
#: Decoded at least this size: JPEGs are decoded at 1/2-1/8 scale (draft mode), 5-20x faster, and
#: the hash looks at 32x32 anyway. The same for the request's image and the datasets' images.
_DRAFT = (128, 128)
#: Part of the cache key of a perceptual hash: bump it when the computation changes, and cached
#: hashes are computed again.
PHASH_VERSION = "1"
#: pHash sets the bits of the 64 low DCT frequencies above their median: 32 for a picture. An
#: image without structure (one colour, a smooth gradient) has most of them equal at zero, so
#: fewer bits set, and every such image hashes alike: it gets no perceptual hash at all.
_MIN_BITS = 24


def perceptual_hash(data: bytes) -> str | None:
    """The image's pHash as 16 hex digits, or None when it cannot be decoded or has no
    structure to compare (one colour, a smooth gradient).

    Undecodable images are the image stage's findings; here they simply cannot match by picture.
    """
    import imagehash
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                im.draft("RGB", _DRAFT)
                thumb = im.convert("L").resize((32, 32), Image.Resampling.LANCZOS)
    except Exception:  # Pillow raises many types for hostile bytes; any of them: no picture
        return None
    value = str(imagehash.phash(thumb))
    return value if int(value, 16).bit_count() >= _MIN_BITS else None


def request_image_keys(path: str | Path) -> list[tuple[str, str]]:
    """The identifiers of an image the requester sent: its SHA-256, MD5 and perceptual hash.

    The image itself is not kept (it may be the illegal content): only its hashes go on record.
    """
    data = read_input(path, "request image", REQUEST_IMAGE_MAX_BYTES)
    phash = perceptual_hash(data)
    if phash is None:
        raise TakedownError(f"{path}: not an image that can be decoded (--image-file)")
    return [
        ("sha256", hashlib.sha256(data).hexdigest()),
        ("md5", hashlib.md5(data).hexdigest()),
        ("phash", phash),
    ]
