"""The takedown workflow: record a request, find every record it touches, clean, prove, keep it out.

spec/licensing.md §4.6: one image hides in several files under several keys, so ``match`` reads every
configured dataset (conversation and metadata files) and, where image roots are configured, hashes
the image bytes; ``apply`` writes cleaned copies beside the originals (never touching them) and puts
the keys on the blocklist that every later audit checks (:func:`blocklist_findings`). Each step
appends one ledger event after its work is done, so a crash loses nothing: run the step again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from audit.atomic import write_atomic
from audit.checks.takedown import (
    BlockKey,
    Blocklist,
    Match,
    expand,
    find_matches,
    parse_key,
    present_findings,
)
from audit.config import Config
from audit.errors import InputError, TakedownError
from audit.findings import Code
from audit.models import NoProgress, Progress
from audit.output.render.checklist import build as build_checklist
from audit.output.render.checklist import render as render_checklist
from audit.results import TakedownResult
from audit.store import Store
from audit.store.ledger import Event, Ledger, Request
from audit.takedown_search import DatasetFile, LoadedFile, dataset_files, hash_images, load_file


def parse_identifiers(pairs: Iterable[tuple[str, str]]) -> list[BlockKey]:
    """Validate the claimed identifiers; the first malformed one is a bad request (exit 2)."""
    keys = []
    for kind, raw in pairs:
        try:
            keys.append(parse_key(kind, raw))
        except ValueError as exc:
            raise TakedownError(f"bad identifier: {exc}") from None
    return keys


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
) -> Request:
    """Intake (§4.6 step 1): validate everything, then write the request in one transaction."""
    named = list(datasets)
    dataset_files(config, named)  # unknown dataset names fail here, before anything is written
    return Ledger(store).add_request(
        ground=ground,
        requester_contact=requester_contact,
        keys=parse_identifiers(identifiers),
        received=received or dt.datetime.now(dt.UTC).date(),
        deadline=deadline,
        datasets=named,
        notes=notes,
    )


class Located(msgspec.Struct, kw_only=True):
    """What a search found: the matches, the keys followed, and what could not be searched."""

    request_id: str
    matches: list[Match]
    keys: list[BlockKey]
    files: list[dict[str, Any]]
    images: dict[str, int]
    image_files: list[str]  # where the matched records' images are: a file or zip!member


def _locate_request(
    config: Config, store: Store, request: Request, progress: Progress, applying: bool
) -> tuple[Located, list[LoadedFile]]:
    sources = dataset_files(config)
    if not sources:
        raise TakedownError("no dataset files configured: add [[datasets]] with chat or metadata")
    loaded = [load_file(f, raw=applying) for f in sources]
    images = hash_images(config, store, loaded, progress)
    candidates = [c for f in loaded for c in f.candidates]
    grown = expand(Blocklist((k, request.request_id) for k in request.keys), candidates)
    if applying:  # apply also removes what earlier takedowns put on the blocklist
        for key, rid in Ledger(store).blocklist():
            grown.add(key, rid)
    matches = find_matches(grown, candidates)
    where = {(f.source.dataset, str(f.source.path)): f.image_locations for f in loaded}
    image_files = {
        loc
        for m in matches
        if m.request_id == request.request_id
        and (loc := where[(m.dataset, m.file)].get(m.index)) is not None
    }
    located = Located(
        request_id=request.request_id,
        matches=matches,
        image_files=sorted(image_files),
        keys=[k for k, rid in grown.entries() if rid == request.request_id],
        files=[
            {
                "dataset": f.source.dataset,
                "role": f.source.role,
                "file": str(f.source.path),
                "records": len(f.candidates),
            }
            for f in loaded
        ],
        images=images,
    )
    return located, loaded


def match(
    config: Config, store: Store, request_id: str, *, progress: Progress | None = None
) -> Located:
    """§4.6 step 3: every record the request touches, in every configured dataset."""
    request = Ledger(store).get(request_id)
    located, _ = _locate_request(config, store, request, progress or NoProgress(), applying=False)
    mine = [m for m in located.matches if m.request_id == request_id]
    Ledger(store).record(
        request_id,
        "located",
        summary=f"{len(mine)} record(s) in {len({(m.dataset, m.file) for m in mine})} file(s)",
        detail=msgspec.to_builtins(located),
    )
    return located


def checklist(store: Store, request_id: str, fmt: str = "md", today: dt.date | None = None) -> str:
    """The response checklist (Markdown or HTML), derived from the ledger as it stands now."""
    return render_checklist(build_checklist(Ledger(store), request_id, today), fmt)


def takedown_dir(config: Config, request_id: str) -> Path:
    """Where a request's manifest and checklists go: beside the state store, with the ledger."""
    return config.path(config.state).parent / "takedowns" / request_id


def cleaned_path(original: Path, request_id: str) -> Path:
    """`chat.json` -> `chat.TD-0001.cleaned.json`: beside the original, named after the request."""
    return original.with_name(f"{original.stem}.{request_id}.cleaned{original.suffix}")


class Applied(msgspec.Struct, kw_only=True):
    """What ``apply`` wrote: one cleaned copy per affected file, and the removal manifest."""

    request_id: str
    manifest: str
    files: list[dict[str, Any]]
    removed: int
    blocklist: list[BlockKey]


def apply(
    config: Config, store: Store, request_id: str, *, progress: Progress | None = None
) -> Applied:
    """§4.6 steps 4 and 8: cleaned copies without every matched record, then the blocklist.

    Records matching keys that earlier takedowns blocklisted are removed too, so a cleaned copy is
    clean of everything taken down so far; the manifest names the request behind each removal.
    """
    ledger = Ledger(store)
    request = ledger.get(request_id)
    if ledger.state(request_id)["rejected"] is not None:
        raise TakedownError(f"{request_id} was rejected; record a new request to act on it")
    located, loaded = _locate_request(config, store, request, progress or NoProgress(), True)
    _record_located_if_changed(ledger, located)
    files: list[dict[str, Any]] = []
    for f in loaded:
        removed = [m for m in located.matches if (m.dataset, m.file) == _ident(f)]
        if not removed:
            continue
        drop = {m.index for m in removed}
        kept = [raw for i, raw in enumerate(f.elements) if i not in drop]
        target = cleaned_path(f.source.path, request_id)
        write_atomic(target, _serialise(kept, f.jsonl))
        files.append(
            {
                "dataset": f.source.dataset,
                "role": f.source.role,
                "original": str(f.source.path),
                "cleaned": str(target),
                "records_before": len(f.elements),
                "records_after": len(kept),
                "removed": [
                    {
                        "index": m.index,
                        "record_id": m.record_id,
                        "image": m.image,
                        "url": m.url,
                        "matched_key": str(m.key),
                        "request_id": m.request_id,
                        "image_file": f.image_locations.get(m.index),
                    }
                    for m in sorted(removed, key=lambda m: m.index)
                ],
            }
        )
    manifest = takedown_dir(config, request_id) / "manifest.json"
    applied = Applied(
        request_id=request_id,
        manifest=str(manifest),
        files=files,
        removed=sum(len(f["removed"]) for f in files),
        blocklist=located.keys,
    )
    body = {
        "request_id": request_id,
        "written_at": dt.datetime.now(dt.UTC).isoformat(),
        "files": files,
        "blocklist": [str(k) for k in located.keys],
    }
    write_atomic(manifest, msgspec.json.format(msgspec.json.encode(body), indent=2) + b"\n")
    summary = {k: v for k, v in msgspec.to_builtins(applied).items() if k != "files"}
    summary["files"] = [{k: v for k, v in f.items() if k != "removed"} for f in files]
    ledger.record(
        request_id,
        "removed",
        summary=f"{applied.removed} record(s) removed in {len(files)} cleaned cop(ies)",
        detail=summary,
    )
    ledger.record(
        request_id,
        "blocklisted",
        summary=f"{len(located.keys)} key(s) on the blocklist",
        detail={"keys": [str(k) for k in located.keys]},
        blocklist=located.keys,
    )
    return applied


def _ident(f: LoadedFile) -> tuple[str, str]:
    return f.source.dataset, str(f.source.path)


def _serialise(elements: list[bytes], jsonl: bool) -> bytes:
    """Kept records byte for byte, in the file's own container (a JSON array or JSON Lines)."""
    if jsonl:
        return b"".join(e.rstrip(b"\r") + b"\n" for e in elements)
    return b"[\n" + b",\n".join(elements) + b"\n]\n" if elements else b"[]\n"


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


class Verified(msgspec.Struct, kw_only=True):
    """The re-audit: cleaned copies hold none of the keys, configured datasets none either."""

    request_id: str
    ok: bool
    cleaned: list[dict[str, Any]]
    present: list[Match]


def verify(
    config: Config, store: Store, request_id: str, *, progress: Progress | None = None
) -> Verified:
    """§4.6 step 8: check the cleaned copies, and every configured dataset for reappearance.

    A cleaned copy that no longer exists was moved into place; the configured datasets then decide.
    """
    ledger = Ledger(store)
    entries = [(k, r) for k, r in ledger.blocklist() if r == request_id]
    if not entries:
        ledger.get(request_id)  # unknown ids fail with their own message
        raise TakedownError(
            f"{request_id} is not applied yet: run `llava-audit takedown apply {request_id}` first"
        )
    blocklist = Blocklist(entries)
    progress = progress or NoProgress()
    removed = ledger.state(request_id)["removed"]
    cleaned: list[dict[str, Any]] = []
    for entry in removed.detail.get("files", []) if removed else []:
        path = Path(entry["cleaned"])
        row = {"cleaned": str(path), "original": entry["original"], "exists": path.is_file()}
        if row["exists"]:
            copy = load_file(DatasetFile(entry["dataset"], entry["role"], path))
            row["leftovers"] = len(_search(config, store, [copy], blocklist, progress))
        cleaned.append(row)
    loaded = [load_file(f) for f in dataset_files(config)]
    present = _search(config, store, loaded, blocklist, progress)
    ok = not present and not any(row.get("leftovers") for row in cleaned)
    files = sorted({m.file for m in present})
    ledger.record(
        request_id,
        "reaudited",
        ok=ok,
        summary="no blocklisted item in the cleaned copies or the configured datasets"
        if ok
        else f"{len(present)} blocklisted record(s) still in {len(files)} configured file(s)",
        detail={"cleaned": cleaned, "present": msgspec.to_builtins(present)},
    )
    return Verified(request_id=request_id, ok=ok, cleaned=cleaned, present=present)


def _search(
    config: Config,
    store: Store,
    loaded: list[LoadedFile],
    blocklist: Blocklist,
    progress: Progress,
) -> list[Match]:
    if blocklist.hash_kinds():
        hash_images(config, store, loaded, progress)
    return find_matches(blocklist, [c for f in loaded for c in f.candidates])


def notify(store: Store, request_id: str, *, when: dt.date | None = None, note: str = "") -> Event:
    """§4.6 step 6: the requester was told what was done (and which recipients were told)."""
    return Ledger(store).record(
        request_id,
        "notified",
        summary=note or "requester notified",
        happened_at=when.isoformat() if when else None,
    )


def reject(store: Store, request_id: str, *, reason: str) -> Event:
    """§8.6 action `rejected` (e.g. not verifiable): nothing is removed and no warning remains."""
    ledger = Ledger(store)
    if ledger.state(request_id)["blocklisted"] is not None:
        raise TakedownError(f"{request_id} is already applied; its keys stay on the blocklist")
    if not reason.strip():
        raise TakedownError("say why the request is rejected (--reason)")
    return ledger.record(request_id, "rejected", summary=reason.strip())


def blocklist_findings(
    config: Config,
    store: Store,
    *,
    datasets: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> TakedownResult:
    """The audit's takedown stage: `takedown.present` for every blocklisted item in a dataset.

    Records named by requests that are recorded but not applied yet give `takedown.pending`
    warnings. With no request in the ledger nothing is read at all.
    """
    ledger = Ledger(store)
    entries = ledger.blocklist()
    applied = {rid for _, rid in entries}
    pending = [
        (k, r.request_id)
        for r in ledger.requests()
        if r.request_id not in applied and ledger.state(r.request_id)["rejected"] is None
        for k in r.keys
    ]
    counts = TakedownResult(
        blocklist_keys=len(entries), pending_requests=len({r for _, r in pending})
    )
    if not entries and not pending:
        return counts
    loaded = []
    unreadable = []
    for source in dataset_files(config, datasets):
        try:
            loaded.append(load_file(source))
        except InputError as exc:
            unreadable.append(exc.message)  # the structure stage reports it in full
    blocklist = Blocklist([*entries, *pending])
    matches = _search(config, store, loaded, blocklist, progress or NoProgress())
    found = present_findings(matches, {rid: rid in applied for _, rid in blocklist.entries()})
    present = sum(f.code == Code.TAKEDOWN_PRESENT for f in found)
    return msgspec.structs.replace(
        counts,
        findings=found,
        records=sum(len(f.candidates) for f in loaded),
        unreadable=unreadable,
        present=present,
        pending=len(found) - present,
    )
