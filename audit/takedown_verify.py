"""``takedown verify``: the re-audit that says whether a takedown is done, bytes included.

Records are not the data: a request is verified only when no configured dataset and no cleaned
copy holds a blocklisted record, and no configured image folder or zip still holds the image bytes
(spec/licensing.md §4.6 steps 4 and 8). ``--purge`` then deletes what ``apply --images`` kept for
undoing (the quarantine, the old zips).
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from audit.checks.takedown import Blocklist, Match
from audit.config import Config
from audit.errors import TakedownError
from audit.models import NoProgress, Progress
from audit.store import Store
from audit.store.ledgerfile import opened_ledger
from audit.takedown_images import held, present, purge, request_images
from audit.takedown_search import DatasetFile, Place, dataset_files, search
from audit.takedown_units import load_shard, loaded_units


class CleanedCheck(msgspec.Struct, frozen=True, omit_defaults=True):
    """One cleaned copy re-read: gone (moved into place or deleted), or how many blocked records
    it still holds (``leftovers`` only when it exists)."""

    cleaned: str
    original: str
    exists: bool
    leftovers: int | None = None


class Verified(msgspec.Struct, kw_only=True):
    """The re-audit: cleaned copies hold none of the keys, configured datasets none either, and
    no image folder or zip still holds the image bytes."""

    request_id: str
    ok: bool
    cleaned: list[CleanedCheck]
    present: list[Match]
    images: list[Place] = msgspec.field(default_factory=list)  # bytes still there
    held: list[str] = msgspec.field(default_factory=list)  # quarantine, kept zips: for --purge
    purged: list[str] = msgspec.field(default_factory=list)


def verify(
    config: Config,
    store: Store,
    request_id: str,
    *,
    progress: Progress | None = None,
    purge_held: bool = False,
) -> Verified:
    """§4.6 steps 4 and 8: check the cleaned copies, every configured dataset for reappearance,
    and every configured image folder and zip for the bytes themselves.

    Opening the ledger checks its hash chain first. A cleaned copy that no longer exists was moved
    into place; the configured datasets then decide. ``purge_held`` deletes the quarantine and
    the kept zips once everything else is clean.
    """
    with opened_ledger(config, store) as ledger:
        ledger.get(request_id)  # unknown ids fail with their own message
        if ledger.state(request_id)["blocklisted"] is None:
            raise TakedownError(
                f"{request_id} is not applied yet: run `llava-audit takedown apply {request_id}`"
                " first"
            )
        blocklist = Blocklist(
            [(k, r) for k, r in ledger.blocklist() if r == request_id],
            phash_distance=config.takedown.phash_distance,
        )
        progress = progress or NoProgress()
        removed = ledger.state(request_id)["removed"]
        cleaned: list[CleanedCheck] = []
        for entry in removed.detail.get("files", []) if removed else []:
            path = Path(entry["cleaned"])
            leftovers = None
            if path.is_file():  # a cleaned file, or one shard of a cleaned set
                copied = DatasetFile(entry["dataset"], entry["role"], path)
                copy = [load_shard(copied)] if "set" in entry else loaded_units([copied])
                leftovers = sum(len(search(config, store, [c], blocklist, progress)) for c in copy)
            cleaned.append(
                CleanedCheck(
                    cleaned=str(path),
                    original=entry["original"],
                    exists=leftovers is not None,
                    leftovers=leftovers,
                )
            )
        found = [
            match
            for unit in (loaded_units(dataset_files(config)) if len(blocklist) else ())
            for match in search(config, store, [unit], blocklist, progress)
        ]  # a file at a time, a set shard by shard
        images = present(config, *request_images(ledger, request_id))
        ok = not found and not images and not any(row.leftovers for row in cleaned)
        kept = held(config, ledger, request_id)
        ledger.record(
            request_id,
            "reaudited",
            ok=ok,
            summary=_verify_summary(found, images),
            detail={
                "cleaned": msgspec.to_builtins(cleaned),
                "present": msgspec.to_builtins(found),
                "images": [str(p) for p in images],
                "held": kept,
            },
        )
        gone: list[str] = []
        if purge_held and ok and kept:
            gone = purge(config, ledger, request_id)
            ledger.record(request_id, "purged", summary=f"deleted {'; '.join(gone)}",
                          detail={"deleted": gone})  # fmt: skip
    return Verified(
        request_id=request_id,
        ok=ok,
        cleaned=cleaned,
        present=found,
        images=images,
        held=[] if gone else kept,
        purged=gone,
    )


def _verify_summary(found: list[Match], images: list[Place]) -> str:
    if not found and not images:
        return "no blocklisted item in the cleaned copies or the configured datasets, no image bytes left"
    parts = []
    if found:
        parts.append(
            f"{len(found)} blocklisted record(s) still in {len({m.file for m in found})} "
            "configured file(s)"
        )
    if images:
        parts.append(f"{len(images)} image(s) still present: {', '.join(map(str, images[:5]))}")
    return "; ".join(parts)
