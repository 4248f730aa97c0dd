"""``takedown apply``'s cleaned copies: each affected file, or every shard of an affected set,
written beside the original without the records a request (or an earlier one) matched.

A file's copy keeps every other record byte for byte in the file's own container. A shard set's
copy is a set of the same format, shard names and count (``data/`` -> ``data.TD-0001.cleaned/``
with each shard at its path under the folder or glob base; a set of one shard file: a file
named like a file's copy), each shard streamed from the original through
:func:`audit.loaders.shardcopy.copy_shard`, one after another; a shard left with no record is
still written, empty. Indexes are a record's position in its own file or shard, as the findings
and the manifest give them. Originals are never modified, and a copy that would land on an
input is refused.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from audit.atomic import write_atomic
from audit.checks.takedown import Match
from audit.errors import InputError, OutputError
from audit.loaders.shardcopy import copy_shard
from audit.loaders.shards import expand, set_base
from audit.takedown_locate import Located
from audit.takedown_search import LoadedFile, Place


def cleaned_path(original: Path, request_id: str) -> Path:
    """`chat.json` -> `chat.TD-0001.cleaned.json`: beside the original, named after the request
    (`train.jsonl.gz` -> `train.TD-0001.cleaned.jsonl.gz`; a shard set's folder -> `data.TD-0001
    .cleaned`)."""
    name = original.name
    suffix = ".jsonl.gz" if name.lower().endswith(".jsonl.gz") else original.suffix
    stem = name[: len(name) - len(suffix)] if suffix else name
    return original.with_name(f"{stem}.{request_id}.cleaned{suffix}")


def cleaned_set_path(source: Path, request_id: str) -> Path:
    """A set's cleaned copy: its folder's (a glob: its base folder's) sibling `data.TD-0001.cleaned`,
    which the set's own folder walk or glob never reaches; a single shard: :func:`cleaned_path`."""
    base = set_base(source)
    if base is None:
        return cleaned_path(source, request_id)
    base = base.resolve()
    if not base.name:
        raise OutputError(
            f"{source}: a set at the file system's root has no folder to write beside"
        )
    return base.with_name(f"{base.name}.{request_id}.cleaned")


class RemovedRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One record left out of a cleaned copy, and the request (maybe an earlier one) behind it."""

    index: int  # in its file, or in its shard
    record_id: str | None
    image: str | None
    url: str | None
    matched_key: str
    request_id: str
    image_file: str | None  # the image's file, or zip!member


class CleanedFile(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One cleaned copy ``apply`` wrote beside its original (the manifest's ``files`` rows): a
    file, or one shard of a set (``original`` and ``cleaned`` are then shards, ``set`` and
    ``cleaned_set`` the set as configured and its copy)."""

    dataset: str
    role: str
    original: str
    cleaned: str
    records_before: int
    records_after: int
    removed_for_request: int
    removed: list[RemovedRecord]
    set: str | None = None
    cleaned_set: str | None = None


def clean_copies(loaded: list[LoadedFile], located: Located, request_id: str) -> list[CleanedFile]:
    """Write the cleaned copy of every file or set holding a match; their manifest rows. Every
    target is checked before anything is written: none may replace an input."""
    by_file: dict[tuple[str, str], list[Match]] = {}
    for m in located.matches:
        by_file.setdefault((m.dataset, m.file), []).append(m)
    inputs = {f.source.path.resolve() for f in loaded}
    files = [f for f in loaded if f.shard_of is None and _ident(f) in by_file]
    sets: dict[tuple[str, Path], list[LoadedFile]] = {}
    for f in loaded:
        if f.shard_of is not None:
            sets.setdefault((f.source.dataset, f.shard_of), []).append(f)
    affected = [(source, shards) for (_, source), shards in sets.items()
                if any(_ident(s) in by_file for s in shards)]  # fmt: skip
    for target in [cleaned_path(f.source.path, request_id) for f in files] + [
        cleaned_set_path(source, request_id) for source, _ in affected
    ]:
        _outside(target, inputs)
    plans = [(source, shards, _shard_targets(source, shards, request_id))
             for source, shards in affected]  # fmt: skip
    planned = {p.resolve() for _, _, paths in plans for p in paths}
    for target in {cleaned_set_path(s, request_id) for s, _ in affected if set_base(s)}:
        _no_strangers(target, planned)
    rows: list[CleanedFile] = []
    for f in files:
        removed = by_file[_ident(f)]
        target = cleaned_path(f.source.path, request_id)
        drop = {m.index for m in removed}
        kept = [raw for i, raw in enumerate(f.elements) if i not in drop]
        try:
            write_atomic(target, _serialise(kept, f.jsonl))
        except OSError as exc:
            raise OutputError(
                f"{target}: cannot write the cleaned copy: {exc.strerror or exc}"
            ) from None
        rows.append(_row(f, target, removed, request_id, (len(f.elements), len(kept))))
    for source, shards, paths in plans:
        rows += _clean_set(source, shards, paths, by_file, request_id)
    return rows


def _shard_targets(source: Path, shards: list[LoadedFile], request_id: str) -> list[Path]:
    """Where each shard's cleaned copy goes (its path under the set's folder or glob base)."""
    base = set_base(source)
    target = cleaned_set_path(source, request_id)
    return [target / s.source.path.relative_to(base) if base else target for s in shards]


def _clean_set(
    source: Path,
    shards: list[LoadedFile],
    paths: list[Path],
    by_file: dict[tuple[str, str], list[Match]],
    request_id: str,
) -> list[CleanedFile]:
    """Every shard of one set copied without its matched records, shard after shard."""
    target = cleaned_set_path(source, request_id)
    rows = []
    for shard, path in zip(shards, paths, strict=True):
        removed = by_file.get(_ident(shard), [])
        drop = {m.index for m in removed}
        counts = copy_shard(shard.source.path, path, drop, dataset=shard.source.dataset)
        row = _row(shard, path, removed, request_id, counts)
        rows.append(msgspec.structs.replace(row, set=str(source), cleaned_set=str(target)))
    return rows


def _outside(target: Path, inputs: set[Path]) -> None:
    """Refuse ``target`` when writing there would replace an input (a file or a shard of a set)."""
    resolved = target.resolve()
    for path in inputs:
        if path == resolved or resolved in path.parents:
            raise OutputError(
                f"{target}: the cleaned copy would overwrite the input {path}; "
                "move one of them away"
            )


def _no_strangers(target: Path, planned: set[Path]) -> None:
    """A cleaned set's folder, written again, holds no shard this apply does not write (a reader
    of the copy would take it for part of the set)."""
    if not target.exists():
        return
    try:
        present = expand(target)
    except InputError:  # no shard there (or not a folder): the writes judge it
        return
    strangers = sorted({p.resolve() for p in present} - planned)
    if strangers:
        raise OutputError(
            f"{target}: holds {len(strangers)} shard(s) that are not in the set, such as "
            f"{strangers[0]}; move the folder away and apply again"
        )


def _row(
    f: LoadedFile, target: Path, removed: list[Match], request_id: str, counts: tuple[int, int]
) -> CleanedFile:
    return CleanedFile(
        dataset=f.source.dataset,
        role=f.source.role,
        original=str(f.source.path),
        cleaned=str(target),
        records_before=counts[0],
        records_after=counts[1],
        removed_for_request=len({m.index for m in removed if m.request_id == request_id}),
        removed=[
            RemovedRecord(
                index=m.index,
                record_id=m.record_id,
                image=m.image,
                url=m.url,
                matched_key=str(m.key),
                request_id=m.request_id,
                image_file=_place(f.image_locations.get(m.index)),
            )
            for m in sorted(removed, key=lambda m: m.index)
        ],
    )


def _place(place: Place | None) -> str | None:
    """The image's file, or ``zip!member`` with the member's real name in the zip."""
    return None if place is None else str(place)


def _ident(f: LoadedFile) -> tuple[str, str]:
    return f.source.dataset, str(f.source.path)


def _serialise(elements: list[bytes], jsonl: bool) -> bytes:
    """Kept records byte for byte, in the file's own container (a JSON array or JSON Lines)."""
    if jsonl:
        return b"".join(e.rstrip(b"\r") + b"\n" for e in elements)
    return b"[\n" + b",\n".join(elements) + b"\n]\n" if elements else b"[]\n"
