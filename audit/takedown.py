"""The takedown workflow: record a request, find every record it touches, clean, prove, keep it out.

spec/licensing.md §4.6: one image hides in several files under several keys, so ``match`` reads every
configured dataset (conversation and metadata files) and, where image roots are configured, hashes
the image bytes; ``apply`` writes cleaned copies beside the originals (never touching them) and puts
the keys on the blocklist that every later audit checks (:func:`blocklist_findings`); with
``images`` it also takes the image bytes out (:mod:`audit.takedown_images`), and ``verify`` fails
while they are still there. Each step appends one ledger event after its work is done, so a crash
loses nothing: run the step again.

The ledger is its own file (``[takedown] ledger``), opened and checked whole by :func:`opened_ledger`
every time; the state store keeps only caches and the ledger's anchor.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import msgspec

from audit.atomic import write_atomic
from audit.checks.takedown import BlockKey, Blocklist, parse_key
from audit.config import Config
from audit.errors import TakedownError
from audit.findings import Code
from audit.models import NoProgress, Progress
from audit.results import TakedownResult
from audit.store import Store
from audit.store.ledger import Ledger, Request
from audit.store.ledgerfile import opened_ledger
from audit.takedown_clean import CleanedFile, clean_copies
from audit.takedown_clean import RemovedRecord as RemovedRecord
from audit.takedown_clean import cleaned_path as cleaned_path
from audit.takedown_images import ImageRemoval, present, remove, request_images, takedown_dir
from audit.takedown_locate import Located, locate_request
from audit.takedown_search import dataset_files
from audit.takedown_units import MatchJob, MatchRecords, match_here, record_units
from audit.takedown_verify import Verified as Verified
from audit.takedown_verify import verify as verify


def parse_identifiers(pairs: Iterable[tuple[str, str]]) -> list[BlockKey]:
    """Validate the claimed identifiers; the first malformed one is a bad request (exit 2)."""
    keys = []
    for kind, raw in pairs:
        try:
            keys.append(parse_key(kind, raw))
        except ValueError as exc:
            raise TakedownError(f"bad identifier: {exc}") from None
    return keys


def check_ledger(config: Config, store: Store) -> None:
    """`run` and `gate` call this before any work: a tampered ledger stops the audit."""
    with opened_ledger(config, store):
        pass


def ledger_position(config: Config, store: Store) -> tuple[int, str, int]:
    """(events, head hash, content-hash keys): what the takedown stage's cache key needs."""
    with opened_ledger(config, store) as ledger:
        kinds = ("sha256", "md5", "phash")
        hashes = {k for r in ledger.requests() for k in r.keys if k.kind in kinds}
        hashes |= {k for k, _ in ledger.blocklist() if k.kind in kinds}
        return (*ledger.head(), len(hashes))


def new_request(
    config: Config,
    store: Store,
    *,
    ground: str,
    requester_contact: str,
    identifiers: Iterable[tuple[str, str]],
    received: dt.date | None = None,
    deadline: dt.date | None = None,
    datasets: Iterable[str] = (),
    notes: str = "",
    image_files: Iterable[str | Path] = (),
) -> Request:
    """Intake (§4.6 step 1): validate everything, then write the request in one transaction.

    ``image_files`` are images the requester sent: their SHA-256, MD5 and perceptual hash become
    identifiers (the image itself is not kept).
    """
    named = list(datasets)
    dataset_files(config, named)  # unknown dataset names fail here, before anything is written
    pairs = list(identifiers)
    if image_files:
        from audit.takedown_phash import request_image_keys

        pairs += [pair for f in image_files for pair in request_image_keys(f)]
    keys = parse_identifiers(pairs)
    with opened_ledger(config, store) as ledger:
        return ledger.add_request(
            ground=ground,
            requester_contact=requester_contact,
            keys=keys,
            received=received or dt.datetime.now(dt.UTC).date(),
            deadline=deadline,
            datasets=named,
            notes=notes,
        )


def match(
    config: Config, store: Store, request_id: str, *, progress: Progress | None = None
) -> Located:
    """§4.6 step 3: every record the request touches, in every configured dataset."""
    with opened_ledger(config, store) as ledger:
        request = ledger.get(request_id)
        located, _ = locate_request(
            config, store, ledger, request, progress or NoProgress(), applying=False
        )
        mine = [m for m in located.matches if m.request_id == request_id]
        ledger.record(
            request_id,
            "located",
            summary=f"{len(mine)} record(s) in {len({(m.dataset, m.file) for m in mine})} file(s)",
            detail=msgspec.to_builtins(located),
        )
    return located


class Applied(msgspec.Struct, kw_only=True):
    """What ``apply`` wrote: one cleaned copy per affected file, the removal manifest, and what
    happened to the image bytes."""

    request_id: str
    manifest: str
    files: list[CleanedFile]
    removed: int  # records of this request
    also_removed: int  # records of earlier takedowns, kept out of the cleaned copies too
    blocklist: list[BlockKey]
    already_applied: bool = False  # the records were gone already: only the images were handled
    images: ImageRemoval | None = None  # what --images did (zips rewritten, files quarantined)
    images_left: list[str] = msgspec.field(default_factory=list)  # bytes still in the roots


def apply(
    config: Config,
    store: Store,
    request_id: str,
    *,
    progress: Progress | None = None,
    images: str = "none",
) -> Applied:
    """§4.6 steps 4 and 8: cleaned copies without every matched record, then the blocklist.

    Records matching keys that earlier takedowns blocklisted are removed too, so a cleaned copy is
    clean of everything taken down so far; the manifest names the request behind each removal and
    the count reported is this request's own. ``images`` (zip, folder, all) also takes the
    image bytes out. Run again once the cleaned copies are in place, it finds no record and only
    handles the images.
    """
    with opened_ledger(config, store) as ledger:
        request = ledger.get(request_id)
        if ledger.closed(request_id):
            raise TakedownError(
                f"{request_id} was rejected or exempted; record a new request to act on it"
            )
        located, loaded = locate_request(
            config, store, ledger, request, progress or NoProgress(), True
        )
        state = ledger.state(request_id)
        mine = [m for m in located.matches if m.request_id == request_id]
        done = not mine and state["removed"] is not None and state["blocklisted"] is not None
        if not done:
            _record_located_if_changed(ledger, located)
        files = [] if done else clean_copies(loaded, located, request_id)
        places, names = request_images(ledger, request_id)
        where = present(config, places | set(located.places), names | _image_keys(located))
        removal = remove(config, request_id, where, images) if images != "none" else None
        manifest = takedown_dir(config, request_id) / "manifest.json"
        own = sum(f.removed_for_request for f in files)
        applied = Applied(
            request_id=request_id,
            manifest=str(manifest),
            files=files,
            removed=own,
            also_removed=sum(len(f.removed) for f in files) - own,
            blocklist=located.keys,
            already_applied=done,
            images=removal,
        )
        if not done:
            _write_manifest(manifest, applied, located)
            _record_removal(ledger, applied)
        if removal and (removal.zips or removal.quarantined):
            ledger.record(request_id, "images_removed", summary=_removal_summary(removal),
                          detail=msgspec.to_builtins(removal))  # fmt: skip
        left = present(config, places | set(located.places), names | _image_keys(located))
    return msgspec.structs.replace(applied, images_left=[str(p) for p in left])


def _image_keys(located: Located) -> set[str]:
    return {k.value for k in located.keys if k.kind == "image"}


def _removal_summary(removal: ImageRemoval) -> str:
    members = sum(len(z.members) for z in removal.zips)
    return (
        f"{members} member(s) removed from {len(removal.zips)} zip(s) (old zip kept until "
        f"purged), {len(removal.quarantined)} file(s) moved to the quarantine"
    )


def _write_manifest(manifest: Path, applied: Applied, located: Located) -> None:
    body = {
        "request_id": applied.request_id,
        "written_at": dt.datetime.now(dt.UTC).isoformat(),
        "files": applied.files,
        "blocklist": [str(k) for k in located.keys],
        "images": applied.images,
    }
    write_atomic(manifest, msgspec.json.format(msgspec.json.encode(body), indent=2) + b"\n")


def _record_removal(ledger: Ledger, applied: Applied) -> None:
    summary = {
        k: v for k, v in msgspec.to_builtins(applied).items() if k not in ("files", "images")
    }
    summary["files"] = [
        {k: v for k, v in msgspec.to_builtins(f).items() if k != "removed"} for f in applied.files
    ]
    also = f" (+{applied.also_removed} of earlier takedowns)" if applied.also_removed else ""
    ledger.record(
        applied.request_id,
        "removed",
        summary=f"{applied.removed} record(s){also} removed in {len(applied.files)} cleaned "
        "cop(ies)",
        detail=summary,
    )
    ledger.record(
        applied.request_id,
        "blocklisted",
        summary=f"{len(applied.blocklist)} key(s) on the blocklist",
        blocklist=applied.blocklist,
    )


def _record_located_if_changed(ledger: Ledger, located: Located) -> None:
    """Apply searches again; a new `located` event is written only if the answer changed."""
    mine = sorted(
        (m.dataset, m.file, m.index) for m in located.matches if m.request_id == located.request_id
    )
    last = ledger.state(located.request_id)["located"]
    before = sorted(
        (m["dataset"], m["file"], m["index"])
        for m in (last.detail.get("matches", []) if last else [])
        if m["request_id"] == located.request_id
    )
    if last is None or before != mine:
        ledger.record(
            located.request_id,
            "located",
            summary=f"{len(mine)} record(s) in {len({m[:2] for m in mine})} file(s)",
            detail=msgspec.to_builtins(located),
        )


def blocklist_findings(
    config: Config,
    store: Store,
    *,
    datasets: Iterable[str] | None = None,
    progress: Progress | None = None,
    match_records: MatchRecords = match_here,
) -> TakedownResult:
    """The audit's takedown stage: `takedown.present` for every blocklisted item in a dataset.

    Records named by a request that is received but neither applied nor rejected or exempted are
    `takedown.pending` errors: GDPR Art. 18 restricts processing from the day the request arrives.
    With no request in the ledger nothing is read at all. ``match_records`` matches the records
    elsewhere (the Spark engine's executors).
    """
    with opened_ledger(config, store) as ledger:
        entries = ledger.blocklist()
        open_requests = [
            r
            for r in ledger.requests()
            if ledger.state(r.request_id)["blocklisted"] is None and not ledger.closed(r.request_id)
        ]
    pending = [(k, r.request_id) for r in open_requests for k in r.keys]
    counts = TakedownResult(blocklist_keys=len(entries), pending_requests=len(open_requests))
    if not entries and not pending:
        return counts
    blocklist = Blocklist([*entries, *pending], phash_distance=config.takedown.phash_distance)
    open_ids = {r.request_id for r in open_requests}
    applied = {rid: rid not in open_ids for _, rid in blocklist.entries()}
    units = record_units(dataset_files(config, datasets))
    matched = match_records(
        MatchJob(config, blocklist, applied), units, store, progress or NoProgress()
    )
    result = msgspec.structs.replace(
        counts,
        findings=matched.findings,
        finding_totals=matched.totals,
        records=matched.records,
        unreadable=matched.unreadable,
    )
    by_code = result.finding_counts()
    present = sum(n for (code, _), n in by_code.items() if code == Code.TAKEDOWN_PRESENT)
    return msgspec.structs.replace(result, present=present, pending=sum(by_code.values()) - present)
