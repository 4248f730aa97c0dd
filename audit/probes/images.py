"""Local image probe: which of a file's images exist, and would LLaVA's trainer be able to open them?

Records are resolved against the image roots in order (folders and zips, read in place); each
distinct image is checked once however many records name it. Checks run in a process pool (decoding
is CPU-bound and holds the GIL; :mod:`audit.workers` starts it) in chunks, so both cores work and
results stay small. Results are cached in the state store by path + size + mtime (zip member: size +
CRC), so a nightly re-run decodes only what changed; each finished batch is committed, so a killed
run resumes where it stopped.
"""

from __future__ import annotations

import gc
import math
import posixpath
import signal
import time
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import Future, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import msgspec

from audit import findings as fnd
from audit import workers as processes
from audit.config import Config, DatasetConfig
from audit.errors import ProbeError, UsageError
from audit.findings import Code, Finding
from audit.loaders.imageroots import (
    Location,
    Root,
    UnfollowablePathError,
    UnsafePathError,
    locator,
    open_roots,
)
from audit.loaders.records import image_refs
from audit.models import ImageRef, NoProgress, Progress
from audit.probes.imagedecode import LEVELS, WORDING, Outcome, probe_batch
from audit.probes.imagestats import image_stats, summary
from audit.results import ImagesResult
from audit.store import Store
from audit.store import images as cache

DEFAULT_MAX_PIXELS = 178_956_970  # Pillow raises DecompressionBombError above this by default
#: No training image comes near this (an 89M-pixel JPEG is ~50 MB); bigger is not read into memory.
MAX_FILE_BYTES = 256 * 1024 * 1024
_IN_PROCESS_BELOW = 64  # fewer images than this are not worth starting worker processes for
_SAVE_EVERY = 2_000  # results per store transaction

#: Status -> finding code; "ok" has none. Bad paths reuse the structure stage's code: "bad_path"
#: is what the structure stage sees in the text too, "unsafe_path" only the file system shows (a
#: NUL byte, a symlink out of the root), so a full run reports it here.
STATUS_CODES: dict[str, Code] = {
    "bad_path": Code.IMAGE_PATH,
    "unsafe_path": Code.IMAGE_PATH,
    "missing": Code.IMAGE_MISSING,
    "empty": Code.IMAGE_EMPTY,
    "unreadable": Code.IMAGE_UNREADABLE,
    "corrupt": Code.IMAGE_CORRUPT,
    "truncated": Code.IMAGE_TRUNCATED,
    "too_large": Code.IMAGE_TOO_LARGE,
    "format_mismatch": Code.IMAGE_FORMAT_MISMATCH,
}
_NOT_CACHED = frozenset({"unreadable"})  # may be a passing I/O or permission problem
_NO_ROWS: dict[str, Any] = {}


def probe_images(
    refs: Sequence[ImageRef],
    roots: Sequence[str | Path],
    *,
    level: str = "header",
    store: Store | None = None,
    dataset: str = "",
    file: str = "",
    workers: int = 2,
    progress: Progress | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    report_paths: bool = True,
) -> ImagesResult:
    """Check every record's image under ``roots`` at ``level`` (exists, header or decode).

    Unsafe paths (absolute, ``..``) are never opened; they are ``image.path`` findings unless
    ``report_paths`` is off because the structure stage of the same run reports them already.
    """
    if level not in LEVELS:
        raise UsageError(f"unknown image check level {level!r} (choose from {', '.join(LEVELS)})")
    started = time.perf_counter()
    with gc_paused():  # its end comes after _check's objects are freed: nothing left to walk
        found, stats = _check(
            refs,
            open_roots(roots),
            level,
            store,
            workers,
            progress or NoProgress(),
            max_pixels,
            reported=set(STATUS_CODES) - (set() if report_paths else {"bad_path"}),
            dataset=dataset,
            file=file,
        )
    stats = msgspec.structs.replace(
        stats, dataset=dataset, file=file, seconds=round(time.perf_counter() - started, 3)
    )
    found.append(fnd.make(Code.STATS_IMAGES, summary(stats), dataset=dataset, file=file))
    return msgspec.structs.replace(stats, findings=found)


def _check(
    refs: Sequence[ImageRef],
    opened: list[Root],
    level: str,
    store: Store | None,
    workers: int,
    progress: Progress,
    max_pixels: int,
    *,
    reported: set[str],
    dataset: str,
    file: str,
) -> tuple[list[Finding], ImagesResult]:
    """Findings for problem records and the stage's stats (without its timing)."""
    uses = Counter(ref.image for ref in refs)  # also the distinct images, in first-seen order
    places = locate_all(uses, opened, progress)
    depth = LEVELS.index(level)
    located = [p for p in places.values() if isinstance(p, Location)]
    rows_of = _cached_rows(store, located) if store is not None and depth else {}
    outcomes: dict[tuple[str, str], Outcome] = {}  # per distinct root and name
    status_of: dict[str, Outcome] = {}  # per distinct image string
    todo: list[Location] = []
    queued: set[tuple[str, str]] = set()  # in todo (two image strings can name one place)
    waiting: dict[str, tuple[str, str]] = {}  # image -> its queued place
    cached = 0
    for image, place in places.items():  # one pass: a cache hit is settled here
        if not isinstance(place, Location):
            status_of[image] = place
            continue
        key = (place.root, place.name)
        outcome = outcomes.get(key)
        if outcome is None and key not in queued:
            outcome = settled(place, depth)
            if outcome is None:
                row = rows_of.get(place.root, _NO_ROWS).get(place.name)
                if row is not None and still_valid(row, place.signature, depth, max_pixels):
                    outcome = row[3:]
                    cached += 1
                else:
                    queued.add(key)
                    todo.append(place)
            if outcome is not None:
                outcomes[key] = outcome
        if outcome is None:
            waiting[image] = key
        else:
            status_of[image] = outcome
    _probe(todo, outcomes, depth, store, workers, progress, max_pixels, cached)
    for image, key in waiting.items():
        status_of[image] = outcomes[key]
    found = [
        record_finding(ref, status_of[ref.image], dataset, file)
        for ref in refs
        if status_of[ref.image][0] in reported
    ]
    stats = image_stats(uses, status_of, outcomes, level, [r.key for r in opened])
    return found, msgspec.structs.replace(stats, probed=len(todo), cached=cached)


def probe_dataset(
    ds: DatasetConfig,
    config: Config,
    *,
    store: Store | None,
    progress: Progress | None = None,
    report_paths: bool = False,
    refs: Sequence[ImageRef] | None = None,
) -> ImagesResult:
    """The images stage of one configured dataset: its chat file's images under its roots.

    In a full run the structure stage reports bad paths, so by default they are not repeated here;
    ``refs`` saves re-reading the chat file when the caller has its records loaded already.
    """
    if not ds.chat or not ds.images:
        raise UsageError(f"dataset {ds.name!r} needs both `chat` and `images` for the image probe")
    if refs is None:
        with gc_paused():
            refs = image_refs(config.path(ds.chat), None if ds.kind == "auto" else ds.kind)
    return probe_images(
        refs,
        [config.path(root) for root in ds.images],
        level=config.images.level,
        store=store,
        dataset=ds.name,
        file=str(ds.chat),
        workers=config.images.workers,
        progress=progress,
        max_pixels=config.images.max_pixels,
        report_paths=report_paths,
    )


def locate_all(
    images: Collection[str], roots: Sequence[Any], progress: Progress
) -> dict[str, Location | Outcome]:
    """Each distinct image string -> where it is, or the outcome when it is nowhere (or unsafe)."""
    places: dict[str, Location | Outcome] = {}
    missing: Outcome = ("missing", None, None, None, "")
    locate = locator(roots)
    progress.start("locating images", len(images))
    for done, image in enumerate(images, 1):
        if done % 10_000 == 0:
            progress.advance(10_000)  # a folder root costs a stat per image: seconds at 600K
        try:
            places[image] = locate(image) or missing
        except UnfollowablePathError as exc:
            places[image] = ("unsafe_path", None, None, None, str(exc))
        except UnsafePathError as exc:
            places[image] = ("bad_path", None, None, None, str(exc))
    progress.finish()
    return places


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building many small acyclic objects (records, locations, rows).

    Otherwise each burst of allocations sets off full collections that walk every loaded record
    again: a fifth of a cached run. Never held while probing: decoding in this process makes garbage.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def _gc_running() -> Iterator[None]:
    """Probing in this process decodes with Pillow, whose objects form cycles: collect."""
    paused = not gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        if paused:
            gc.disable()


def settled(place: Location, depth: int) -> Outcome | None:
    """The outcome of a located image when no bytes need reading, else None (probe or cache)."""
    if place.problem or place.size == 0 or place.size > MAX_FILE_BYTES or not depth:
        return _by_size(place)
    return None


def still_valid(row: cache.Cached, signature: str, depth: int, max_pixels: int) -> bool:
    """A cached result still stands: same signature, as deep, same verdict on the pixel limit."""
    return (
        row[1] == signature
        and row[2] >= depth
        and (row[3] == "too_large") == ((row[5] or 0) * (row[6] or 0) > max_pixels)
    )


def _by_size(loc: Location) -> Outcome:
    """The outcome when no bytes need reading: unreadable, empty, too big, or only `exists` asked."""
    if loc.problem:
        return ("unreadable", None, None, None, loc.problem)
    if loc.size == 0:
        return ("empty", None, None, None, "0 bytes")
    if loc.size > MAX_FILE_BYTES:
        detail = f"{loc.size:,} bytes, not read (limit {MAX_FILE_BYTES:,})"
        return ("too_large", None, None, None, detail)
    return ("ok", None, None, None, "")  # level `exists`: being there is the whole check


def _cached_rows(store: Store, located: list[Location]) -> dict[str, dict[str, cache.Cached]]:
    """Cached results per root for the located images (one query per root for big runs)."""
    roots = {loc.root for loc in located}
    if len(roots) == 1:  # the usual case: no regrouping
        names = {roots.pop(): [loc.name for loc in located]}
    else:
        names = {}
        for loc in located:
            names.setdefault(loc.root, []).append(loc.name)
    return {root: cache.lookup(store, root, wanted) for root, wanted in names.items()}


def _probe(
    todo: list[Location],
    outcomes: dict[tuple[str, str], Outcome],
    level: int,
    store: Store | None,
    workers: int,
    progress: Progress,
    max_pixels: int,
    cached: int,
) -> None:
    """Probe what is left into ``outcomes``, committing results to the cache as batches finish."""
    todo.sort(key=_read_order)
    progress.start(f"images ({cached:,} cached)", len(todo))
    rows: list[cache.ImageResult] = []
    with _gc_running() if todo else nullcontext():
        try:
            for batch, results in _run(todo, level, max_pixels, workers):
                for loc, outcome in zip(batch, results, strict=True):
                    outcomes[(loc.root, loc.name)] = outcome
                    if store is not None and outcome[0] not in _NOT_CACHED and loc.signature:
                        rows.append(
                            cache.ImageResult(loc.root, loc.name, loc.signature, level, *outcome)
                        )
                if store is not None and len(rows) >= _SAVE_EVERY:
                    cache.save(store, rows)
                    rows = []
                progress.advance(len(batch))
        finally:
            if store is not None and rows:  # also when interrupted: keep what was checked
                cache.save(store, rows)
            progress.finish()


def _read_order(loc: Location) -> tuple[str, int, str]:
    """Zip members in file order (sequential reads), files by name (directory locality)."""
    offset = loc.source[3] if loc.source[0] == "zip" else 0
    return (loc.root, offset if isinstance(offset, int) else 0, loc.name)


def _run(
    todo: list[Location], level: int, max_pixels: int, workers: int
) -> Iterator[tuple[list[Location], list[Outcome]]]:
    """Probe in chunks: in this process for small jobs, else in a pool of ``workers`` processes."""
    items = [(loc.source, posixpath.splitext(loc.name)[1].lower()) for loc in todo]
    if workers <= 1 or len(todo) < _IN_PROCESS_BELOW or not processes.can_start():
        step = 256
        for start in range(0, len(todo), step):
            yield (
                todo[start : start + step],
                probe_batch(level, max_pixels, items[start : start + step]),
            )
        return
    step = max(8, min(256, math.ceil(len(todo) / (workers * 8))))
    pool = processes.pool(workers, _init_worker)
    try:
        futures: dict[Future[list[Outcome]], int] = {
            pool.submit(probe_batch, level, max_pixels, items[start : start + step]): start
            for start in range(0, len(todo), step)
        }
        processes.watch_all(pool)
        for future in as_completed(futures):
            start = futures[future]
            yield todo[start : start + step], future.result()
    except BrokenProcessPool:
        raise ProbeError(
            "an image worker process died (out of memory?); results so far are cached, "
            "run again to resume"
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _init_worker() -> None:
    """Ctrl-C is the parent's to handle (it cancels the rest); workers finish their small batch.
    Pillow loads its plugins as images need them (all of them at once costs a worker 0.1-0.3 s)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def record_finding(ref: ImageRef, outcome: Outcome, dataset: str, file: str) -> Finding:
    status, detail = outcome[0], outcome[4]
    code = STATUS_CODES[status]
    wording = WORDING.get(status)
    if wording and detail not in wording:  # cached by an older version: it may quote file bytes
        detail = wording[0]
    message = {
        "missing": f"{ref.image} is not in any image root",
        "empty": f"{ref.image} has 0 bytes",
        "format_mismatch": f"{ref.image}: {detail} (PIL sniffs the content, so it still trains)",
        "unsafe_path": f"image {ref.image!r} {detail}",
    }.get(status, f"{ref.image}: {detail}")
    return fnd.make(
        code,
        message,
        dataset=dataset,
        file=ref.file or file,  # a shard set's records name their shard
        index=ref.index,
        record_id=ref.record_id,
    )
