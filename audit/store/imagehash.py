"""Content hashes of dataset images, cached in the state store for takedown matching.

A cache, not the ledger: deleting it costs a re-read of the images, never a takedown. Keyed by the
image's signature (size, mtime; zip members: size and CRC), so only changed images are read again.
Perceptual hashes (which decode the image, the costly part) have their own table: they are
computed only once a request or the blocklist holds one.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from audit.store import Store, register_schema

register_schema(
    "takedown_hashes",
    """
CREATE TABLE IF NOT EXISTS takedown_image_hash (
    root TEXT NOT NULL,
    name TEXT NOT NULL,
    signature TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    md5 TEXT NOT NULL,
    PRIMARY KEY (root, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS takedown_image_phash (
    root TEXT NOT NULL,
    name TEXT NOT NULL,
    signature TEXT NOT NULL,
    phash TEXT NOT NULL,
    PRIMARY KEY (root, name)
) WITHOUT ROWID;
""",
)


class ImageHashes(msgspec.Struct, frozen=True):
    sha256: str
    md5: str


def cached_hashes(store: Store, root: str) -> dict[str, tuple[str, ImageHashes]]:
    """Content hashes of a root's images seen before: name -> (signature, hashes), one query."""
    rows = store.conn.execute(
        "SELECT name, signature, sha256, md5 FROM takedown_image_hash WHERE root = ?", (root,)
    )
    return {name: (sig, ImageHashes(sha, md5)) for name, sig, sha, md5 in rows}


def cache_hashes(store: Store, rows: Iterable[tuple[str, str, str, ImageHashes]]) -> None:
    """Remember hashes so nightly audits re-read only images that changed."""
    with store.transaction() as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO takedown_image_hash VALUES (?, ?, ?, ?, ?)",
            [(root, name, sig, h.sha256, h.md5) for root, name, sig, h in rows],
        )


def cached_phashes(store: Store, root: str) -> dict[str, tuple[str, str]]:
    """Perceptual hashes of a root's images seen before: name -> (signature, phash); "" is an
    image that could not be decoded (not tried again until it changes)."""
    rows = store.conn.execute(
        "SELECT name, signature, phash FROM takedown_image_phash WHERE root = ?", (root,)
    )
    return {name: (sig, phash) for name, sig, phash in rows}


def cache_phashes(store: Store, rows: Iterable[tuple[str, str, str, str]]) -> None:
    """Remember perceptual hashes as (root, name, signature, phash)."""
    with store.transaction() as conn:
        conn.executemany("INSERT OR REPLACE INTO takedown_image_phash VALUES (?, ?, ?, ?)", rows)
