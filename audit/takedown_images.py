"""The image bytes of a takedown: where they still are, taking them out, purging what was kept.

Removing the records is not erasure while the photo itself is still in ``images.zip`` or an image
folder. So ``verify`` looks for the bytes (every place a located record's image was found, and
every image the request names, under every configured root), and ``apply --images`` takes them
out: a zip is rewritten without the members (the old zip kept as ``<zip>.<ID>.orig``), folder
images are moved to ``takedowns/<ID>/quarantine/`` beside the ledger. Both stay until ``verify
--purge`` has seen the data clean, so a mistaken takedown can still be undone until then.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import msgspec

from audit.config import Config
from audit.errors import InputError, OutputError, TakedownError
from audit.loaders import imageroots
from audit.loaders.zipwrite import rewrite_without
from audit.store.ledger import Ledger
from audit.store.ledgerfile import ledger_path
from audit.takedown_search import Place, place_of

#: ``apply --images``: which image bytes to take out (``none``: the records only, as before).
IMAGE_MODES = ("none", "zip", "folder", "all")


class ZipRewrite(msgspec.Struct, frozen=True):
    """One zip rewritten without the request's members; the old zip kept until ``--purge``."""

    zip: str
    kept_as: str
    members: list[str]


class Quarantined(msgspec.Struct, frozen=True):
    """One image file moved out of its root into the request's quarantine."""

    from_: str = msgspec.field(name="from")
    to: str


class ImageRemoval(msgspec.Struct, frozen=True):
    """What ``apply --images`` did: the manifest's ``images`` and the ledger event's detail."""

    mode: str
    zips: list[ZipRewrite] = msgspec.field(default_factory=list)
    quarantined: list[Quarantined] = msgspec.field(default_factory=list)


def takedown_dir(config: Config, request_id: str) -> Path:
    """Where a request's manifest and quarantine go: beside the ledger (evidence, not cache)."""
    return ledger_path(config).parent / "takedowns" / request_id


def quarantine_dir(config: Config, request_id: str) -> Path:
    return takedown_dir(config, request_id) / "quarantine"


def kept_zip(zip_path: str | Path, request_id: str) -> Path:
    """``images.zip`` -> ``images.zip.TD-0001.orig``: the zip as it was before the rewrite."""
    p = Path(zip_path)
    return p.with_name(f"{p.name}.{request_id}.orig")


def request_images(ledger: Ledger, request_id: str) -> tuple[set[Place], set[str]]:
    """Every place a located record's image was found (the records may be gone by now), and
    every image path the request names or put on the blocklist."""
    places: set[Place] = set()
    for event in ledger.events(request_id):
        if event.step == "located":
            places.update(msgspec.convert(p, Place) for p in event.detail.get("places", []))
    names = {k.value for k in ledger.get(request_id).keys if k.kind == "image"}
    names |= {k.value for k, rid in ledger.blocklist() if rid == request_id and k.kind == "image"}
    return places, names


def present(config: Config, places: Iterable[Place], names: Iterable[str]) -> list[Place]:
    """Where the request's image bytes still are: the places that still hold them, and each
    named image under every configured root (not only the first root that has it)."""
    found = {p for p in places if _holds(p)}
    roots = _roots(config)
    for name in names:
        for root in roots:
            try:
                loc = imageroots.locate([root], name)
            except imageroots.UnsafePathError:
                continue
            if loc is not None:
                found.add(place_of(loc))
    return sorted(found, key=str)


def _roots(config: Config) -> list[imageroots.Root]:
    paths = dict.fromkeys(config.path(r) for ds in config.datasets for r in ds.images)
    roots = []
    for path in paths:
        try:
            roots.extend(imageroots.open_roots([path]))
        except InputError:
            continue  # a missing or unreadable root holds nothing to find
    return roots


def _holds(place: Place) -> bool:
    if place.kind == "file":
        return os.path.lexists(place.path)
    try:
        (root,) = imageroots.open_roots([place.root])
    except InputError:
        return False  # the zip is gone
    return isinstance(root, imageroots.ZipRoot) and place.name in root


def remove(config: Config, request_id: str, places: list[Place], mode: str) -> ImageRemoval:
    """Take the bytes out: ``zip`` rewrites zips without the members, ``folder`` moves files to
    the quarantine, ``all`` does both. Returns what was done, for the ledger and the manifest."""
    if mode not in IMAGE_MODES:
        raise TakedownError(f"unknown --images {mode!r} (one of {', '.join(IMAGE_MODES)})")
    zips: list[ZipRewrite] = []
    quarantined: list[Quarantined] = []
    if mode in ("zip", "all"):
        by_zip: dict[str, set[str]] = {}
        for p in places:
            if p.kind == "zip":
                by_zip.setdefault(p.root, set()).add(p.name)
        for zip_path, members in sorted(by_zip.items()):
            keep = kept_zip(zip_path, request_id)
            removed = rewrite_without(Path(zip_path), members, keep)
            if removed:
                zips.append(ZipRewrite(zip=zip_path, kept_as=str(keep), members=removed))
    if mode in ("folder", "all"):
        target = quarantine_dir(config, request_id)
        for p in places:
            if p.kind == "file" and os.path.lexists(p.path):
                moved = target / _slot(p.root) / p.name
                _move(Path(p.path), moved)
                quarantined.append(Quarantined(from_=p.path, to=str(moved)))
    return ImageRemoval(mode=mode, zips=zips, quarantined=quarantined)


def _slot(root: str) -> str:
    """One quarantine folder per image root: its name and a short hash of its path."""
    return f"{Path(root).name}-{hashlib.sha256(root.encode()).hexdigest()[:8]}"


def _move(source: Path, target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)  # a rename; a copy and delete across file systems
    except OSError as exc:
        raise OutputError(
            f"{source}: cannot move it to the quarantine {target}: {exc.strerror or exc}"
        ) from None


def held(config: Config, ledger: Ledger, request_id: str) -> list[str]:
    """What ``verify --purge`` would delete: the quarantine and the kept copies of zips."""
    out = []
    quarantine = quarantine_dir(config, request_id)
    if quarantine.is_dir():
        files = sum(len(names) for _, _, names in os.walk(quarantine))
        out.append(f"{quarantine} ({files} file(s))")
    return out + [str(z) for z in _kept_zips(config, ledger, request_id) if z.is_file()]


def _kept_zips(config: Config, ledger: Ledger, request_id: str) -> set[Path]:
    """Kept zips by name beside every configured zip root, and as recorded by the ledger."""
    kept = {kept_zip(config.path(r), request_id) for ds in config.datasets for r in ds.images}
    for event in ledger.events(request_id):
        if event.step == "images_removed":
            kept.update(Path(z["kept_as"]) for z in event.detail.get("zips", []))
    return kept


def purge(config: Config, ledger: Ledger, request_id: str) -> list[str]:
    """Delete the quarantine and the kept zips (after a clean verify); returns what went."""
    gone = held(config, ledger, request_id)
    quarantine = quarantine_dir(config, request_id)
    try:
        if quarantine.is_dir():
            shutil.rmtree(quarantine)
        for kept in _kept_zips(config, ledger, request_id):
            if kept.is_file():
                kept.unlink()
    except OSError as exc:
        raise OutputError(f"cannot purge {exc.filename}: {exc.strerror or exc}") from None
    return gone


def removal_hint(request_id: str, places: list[Place]) -> str:
    """The command that takes the remaining bytes out."""
    kinds = {p.kind for p in places}
    mode = "all" if kinds == {"zip", "file"} else ("zip" if kinds == {"zip"} else "folder")
    return f"llava-audit takedown apply {request_id} --images {mode}"
