"""The takedown workflow: record a request, find every record it touches, clean, prove, keep it out.

spec/licensing.md §4.6: one image hides in several files under several keys, so ``match`` reads every
configured dataset (conversation and metadata files) and, where image roots are configured, hashes
the image bytes; ``apply`` writes cleaned copies beside the originals (never touching them) and puts
the keys on the blocklist that every later audit checks (:func:`blocklist_findings`). Each step
appends one ledger event after its work is done, so a crash loses nothing: run the step again.

The ledger is its own file (``[takedown] ledger``), opened and checked whole by :func:`opened_ledger`
every time; the state store keeps only caches and the ledger's anchor.
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
    find_matches,
    parse_key,
    present_findings,
)
from audit.config import Config
from audit.errors import InputError, TakedownError
from audit.findings import Code
from audit.models import NoProgress, Progress
from audit.results import TakedownResult
from audit.store import Store
from audit.store.ledger import Ledger, Request
from audit.store.ledgerfile import ledger_path, opened_ledger
from audit.takedown_search import (
    DatasetFile,
    LoadedFile,
    Located,
    dataset_files,
    hash_images,
    load_file,
    locate_request,
)


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
        hashes = {k for r in ledger.requests() for k in r.keys if k.kind in ("sha256", "md5")}
        hashes |= {k for k, _ in ledger.blocklist() if k.kind in ("sha256", "md5")}
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
) -> Request:
    """Intake (§4.6 step 1): validate everything, then write the request in one transaction."""
    named = list(datasets)
    dataset_files(config, named)  # unknown dataset names fail here, before anything is written
    keys = parse_identifiers(identifiers)
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


def takedown_dir(config: Config, request_id: str) -> Path:
    """Where a request's manifest goes: beside the ledger (evidence, not cache)."""
    return ledger_path(config).parent / "takedowns" / request_id


def cleaned_path(original: Path, request_id: str) -> Path:
    """`chat.json` -> `chat.TD-0001.cleaned.json`: beside the original, named after the request."""
    return original.with_name(f"{original.stem}.{request_id}.cleaned{original.suffix}")


class Applied(msgspec.Struct, kw_only=True):
    """What ``apply`` wrote: one cleaned copy per affected file, and the removal manifest."""

    request_id: str
    manifest: str
    files: list[dict[str, Any]]
    removed: int  # records of this request
    also_removed: int  # records of earlier takedowns, kept out of the cleaned copies too
    blocklist: list[BlockKey]


def apply(
    config: Config, store: Store, request_id: str, *, progress: Progress | None = None
) -> Applied:
    """§4.6 steps 4 and 8: cleaned copies without every matched record, then the blocklist.

    Records matching keys that earlier takedowns blocklisted are removed too, so a cleaned copy is
    clean of everything taken down so far; the manifest names the request behind each removal and
    the count reported is this request's own.
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
        _record_located_if_changed(ledger, located)
        files = [row for f in loaded if (row := _clean_copy(f, located, request_id))]
        manifest = takedown_dir(config, request_id) / "manifest.json"
        mine = sum(f["removed_for_request"] for f in files)
        applied = Applied(
            request_id=request_id,
            manifest=str(manifest),
            files=files,
            removed=mine,
            also_removed=sum(len(f["removed"]) for f in files) - mine,
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
        also = f" (+{applied.also_removed} of earlier takedowns)" if applied.also_removed else ""
        ledger.record(
            request_id,
            "removed",
            summary=f"{applied.removed} record(s){also} removed in {len(files)} cleaned cop(ies)",
            detail=summary,
        )
        ledger.record(
            request_id,
            "blocklisted",
            summary=f"{len(located.keys)} key(s) on the blocklist",
            blocklist=located.keys,
        )
    return applied


def _clean_copy(f: LoadedFile, located: Located, request_id: str) -> dict[str, Any] | None:
    """Write one file's cleaned copy (if it has matches) and describe it for the manifest."""
    removed = [m for m in located.matches if (m.dataset, m.file) == _ident(f)]
    if not removed:
        return None
    drop = {m.index for m in removed}
    kept = [raw for i, raw in enumerate(f.elements) if i not in drop]
    target = cleaned_path(f.source.path, request_id)
    write_atomic(target, _serialise(kept, f.jsonl))
    return {
        "dataset": f.source.dataset,
        "role": f.source.role,
        "original": str(f.source.path),
        "cleaned": str(target),
        "records_before": len(f.elements),
        "records_after": len(kept),
        "removed_for_request": len({m.index for m in removed if m.request_id == request_id}),
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

    Opening the ledger checks its hash chain first. A cleaned copy that no longer exists was moved
    into place; the configured datasets then decide.
    """
    with opened_ledger(config, store) as ledger:
        ledger.get(request_id)  # unknown ids fail with their own message
        if ledger.state(request_id)["blocklisted"] is None:
            raise TakedownError(
                f"{request_id} is not applied yet: run `llava-audit takedown apply {request_id}`"
                " first"
            )
        blocklist = Blocklist([(k, r) for k, r in ledger.blocklist() if r == request_id])
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
        present = _search(config, store, loaded, blocklist, progress) if len(blocklist) else []
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


def blocklist_findings(
    config: Config,
    store: Store,
    *,
    datasets: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> TakedownResult:
    """The audit's takedown stage: `takedown.present` for every blocklisted item in a dataset.

    Records named by a request that is received but neither applied nor rejected or exempted are
    `takedown.pending` errors: GDPR Art. 18 restricts processing from the day the request arrives.
    With no request in the ledger nothing is read at all.
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
    loaded = []
    unreadable = []
    for source in dataset_files(config, datasets):
        try:
            loaded.append(load_file(source))
        except InputError as exc:
            unreadable.append(exc.message)  # the structure stage reports it in full
    blocklist = Blocklist([*entries, *pending])
    open_ids = {r.request_id for r in open_requests}
    matches = _search(config, store, loaded, blocklist, progress or NoProgress())
    found = present_findings(matches, {rid: rid not in open_ids for _, rid in blocklist.entries()})
    present = sum(f.code == Code.TAKEDOWN_PRESENT for f in found)
    return msgspec.structs.replace(
        counts,
        findings=found,
        records=sum(len(f.candidates) for f in loaded),
        unreadable=unreadable,
        present=present,
        pending=len(found) - present,
    )
