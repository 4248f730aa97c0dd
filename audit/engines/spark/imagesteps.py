"""Executor side of the image stage on Spark: top-level functions over Arrow batches (pickled by
reference), each a thin wrapper of the local engine's own function for the same step."""

from __future__ import annotations

import os
import pickle
import posixpath
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import msgspec
import pyarrow as pa

from audit.engines.spark.caches import arrow_schema
from audit.engines.spark.findingtable import to_batch
from audit.errors import AuditError
from audit.licensing.inputs import load_unit
from audit.loaders.imageroots import Location, Root, open_roots
from audit.loaders.records import refs_of
from audit.models import ImageRef, NoProgress
from audit.probes.imagedecode import Outcome, probe_batch
from audit.probes.images import locate_all, record_finding, settled, still_valid
from audit.probes.imagestats import tally_key

#: An outcome's columns (audit.probes.imagedecode.Outcome).
OUTCOME = "status string, format string, width int, height int, detail string"
#: A distinct image string: where it is (root null: nowhere), and its outcome when known already.
LOCATED = (
    f"image string, n long, root string, name string, signature string, source binary, "
    f"offset long, {OUTCOME}"
)
#: A place's outcome, ``cached`` when the cache still held it.
PLACED = f"root string, name string, signature string, {OUTCOME}, cached boolean"
#: A record's image reference, or (``error`` set) why its unit of the chat file could not be read.
UNIT_REFS = (
    "index long, record_id string, image string, file string, unit int, error string, code int"
)
_UNIT_REFS = arrow_schema(UNIT_REFS)
_REF_ROWS = 50_000  # references per Arrow batch
_LOCATED = arrow_schema(LOCATED)
_PLACED = arrow_schema(PLACED)
_STEP = 256  # images per probe_batch call, as the local engine's in-process chunks
#: Each executor process opens a root list once (a zip's central directory is read once, then
#: kept by audit.loaders.imageroots); a root changed on disk is opened again.
_OPENED: dict[tuple[tuple[str, int, int], ...], list[Root]] = {}


def opened(roots: Sequence[str]) -> list[Root]:
    stamps = []
    for root in roots:
        st = os.stat(root)  # noqa: PTH116 - str paths, as audit.loaders.imageroots keeps them
        stamps.append((root, st.st_size, st.st_mtime_ns))
    key = tuple(stamps)
    if key not in _OPENED:
        _OPENED[key] = open_roots(list(roots))
    return _OPENED[key]


def locate(
    roots: Sequence[str], depth: int, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """image, n -> where each image is (the local engine's :func:`locate_all`) and its outcome
    when no bytes need reading (:func:`settled`)."""
    found = opened(roots)
    for batch in batches:
        images = batch.column("image").to_pylist()
        places = locate_all(images, found, NoProgress())
        rows = []
        for image, n in zip(images, batch.column("n").to_pylist(), strict=True):
            place = places[image]
            row: dict[str, object] = {"image": image, "n": n}
            if isinstance(place, Location):
                source = place.source
                offset = source[3] if source[0] == "zip" else 0
                row |= {
                    "root": place.root,
                    "name": place.name,
                    "signature": place.signature,
                    "source": msgspec.msgpack.encode(source),
                    "offset": offset if isinstance(offset, int) else 0,
                }
                outcome = settled(place, depth)
            else:
                outcome = place
            if outcome is not None:
                row |= _outcome(outcome)
            rows.append(row)
        yield pa.RecordBatch.from_pylist(rows, schema=_LOCATED)


def unit_refs(cwd: str, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Descriptors (unit, payload: a pickled :class:`audit.licensing.inputs.RecordSource`) ->
    each unit's image references, read here by the licence stage's reader (a shard names itself
    and the index in it, as the local engine's references do)."""
    if Path(cwd).is_dir() and str(Path.cwd()) != cwd:  # relative paths as on the driver
        os.chdir(cwd)
    for batch in batches:
        payloads = batch.column("payload").to_pylist()
        for number, payload in zip(batch.column("unit").to_pylist(), payloads, strict=True):
            try:
                refs = refs_of(load_unit(pickle.loads(payload)))
            except AuditError as exc:  # the driver raises it: one line, its exit code
                failed = {"unit": number, "error": exc.message, "code": exc.exit_code}
                yield pa.RecordBatch.from_pylist([failed], schema=_UNIT_REFS)
                continue
            for start in range(0, len(refs), _REF_ROWS):
                yield pa.RecordBatch.from_pylist(
                    [
                        {"index": r.index, "record_id": r.record_id, "image": r.image}
                        | {"file": r.file, "unit": number}
                        for r in refs[start : start + _REF_ROWS]
                    ],
                    schema=_UNIT_REFS,
                )


def _outcome(outcome: Outcome | Sequence[object]) -> dict[str, object]:
    status, fmt, width, height, detail = outcome
    return {"status": status, "format": fmt, "width": width, "height": height, "detail": detail}


def reuse(
    depth: int, max_pixels: int, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """A place joined to its cache row (columns ``c_*``) -> its outcome when the cached one still
    stands (:func:`still_valid`), else a row without status (to probe)."""
    for batch in batches:
        rows = []
        for row in batch.to_pylist():
            out: dict[str, object] = {k: row[k] for k in ("root", "name", "signature")}
            cached = (
                row["name"],
                row["c_signature"],
                row["c_level"],
                row["c_status"],
                row["c_format"],
                row["c_width"],
                row["c_height"],
                row["c_detail"],
            )
            if row["c_status"] is not None and still_valid(
                cached,
                row["signature"],
                depth,
                max_pixels,
            ):
                out |= _outcome(cached[3:]) | {"cached": True}
            rows.append(out)
        yield pa.RecordBatch.from_pylist(rows, schema=_PLACED)


def probe(
    depth: int, max_pixels: int, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Places to read (sorted by root and offset) -> their outcomes, by the local engine's
    :func:`audit.probes.imagedecode.probe_batch`."""
    for batch in batches:
        rows = batch.to_pylist()
        for start in range(0, len(rows), _STEP):
            chunk = rows[start : start + _STEP]
            items = [
                (
                    tuple(msgspec.msgpack.decode(r["source"])),
                    posixpath.splitext(r["name"])[1].lower(),
                )
                for r in chunk
            ]
            outcomes = probe_batch(depth, max_pixels, items)
            yield pa.RecordBatch.from_pylist(
                [
                    {"root": r["root"], "name": r["name"], "signature": r["signature"]}
                    | _outcome(o)
                    | {"cached": False}
                    for r, o in zip(chunk, outcomes, strict=True)
                ],
                schema=_PLACED,
            )


def tallies(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """image, n, status -> the local engine's (status, folder) tally key, weighted."""
    for batch in batches:
        keys = [
            tally_key(image, status)
            for image, status in zip(
                batch.column("image").to_pylist(), batch.column("status").to_pylist(), strict=True
            )
        ]
        yield pa.RecordBatch.from_arrays(
            [
                pa.array([k[0] for k in keys], pa.string()),
                pa.array([k[1] for k in keys], pa.string()),
                batch.column("n"),
            ],
            names=["status", "folder", "n"],
        )


def record_rows(
    dataset: str, file: str, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Each record with its image's outcome -> the local engine's finding."""
    for batch in batches:
        yield to_batch(
            record_finding(
                ImageRef(r["index"], r["record_id"], r["image"], r["file"]),
                (r["status"], r["format"], r["width"], r["height"], r["detail"] or ""),
                dataset,
                file,
            )
            for r in batch.to_pylist()
        )
