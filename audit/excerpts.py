"""The records behind a run's example findings, as short JSON excerpts for the report's page.

Only the wanted records are read. A single file comes from the run's one shared load (read here
when every stage was reused from the cache). A shard set is read a shard at a time and a batch
at a time, keeping only the records at wanted positions and stopping once all are found, so
it is never loaded whole: its findings name a shard and the index in it (the structure, image
and licence stages), or the set and a position over the whole set (the URL stage's COCO
references).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from audit.errors import InputError
from audit.findings import Finding
from audit.stages import StageContext

#: Characters of a record shown beside an example finding.
EXCERPT_CHARS = 240


@dataclass
class Excerpts:
    """The excerpts of one dataset's conversation file, by the file and index findings name."""

    file: str | None = None  # the conversation file (or shard set), as findings name it
    examples: dict[int, str] = field(default_factory=dict)  # its records', by position
    shards: dict[str, dict[int, str]] = field(default_factory=dict)  # a set's, by shard


def record_examples(
    ctx: StageContext, findings: Iterable[Finding], per_code: int, name: Callable[[Path], str]
) -> Excerpts:
    """The records behind the first ``per_code`` findings of each code with a record index in the
    dataset's conversation file; ``name`` spells a path as findings do (relative to the config)."""
    from audit.loaders.shards import expand, is_shard_set

    if ctx.dataset.chat is None:
        return Excerpts()
    path = ctx.path(ctx.dataset.chat)
    file = name(path)
    out = Excerpts(file=file)
    try:
        shards = {name(p): p for p in expand(path)} if is_shard_set(path) else {}
    except InputError:  # no shard left to read: the structure stage says why
        return Excerpts()
    wanted: dict[str, set[int]] = {}
    counts: dict[str, int] = {}
    for f in findings:
        named = f.file == file or f.file in shards
        if named and f.index is not None and counts.get(f.code, 0) < per_code:
            counts[f.code] = counts.get(f.code, 0) + 1
            wanted.setdefault(f.file, set()).add(f.index)
    if not wanted:
        return out
    try:
        if shards:
            _from_shards(ctx, list(shards.items()), wanted, out)
        else:  # when every stage was reused from the cache, the file is first read here
            keep = wanted[file]
            out.examples = {p: excerpt(r) for p, r in ctx.chat_file().items() if p in keep}
    except InputError:  # the structure stage reports an unreadable file or shard
        return out if shards else Excerpts()  # a set: what the shards before it gave
    return out


def _from_shards(
    ctx: StageContext, shards: list[tuple[str, Path]], wanted: dict[str, set[int]], out: Excerpts
) -> None:
    """Shard by shard in set order: each shard's wanted indexes and the set's wanted positions
    that fall in it (the shard's first element is at ``offset``); done once none is left."""
    from audit.loaders.shardread import open_shard, shard_kind

    dataset = ctx.dataset.name
    kind = ctx.kind or (None if ctx.dataset.kind == "auto" else ctx.dataset.kind)
    kind = kind or shard_kind(shards[0][1], dataset).kind
    in_set = wanted.pop(out.file or "", set())
    offset = 0
    for shard_name, path in shards:
        own = wanted.pop(shard_name, set())
        if not own and not in_set:  # nothing here (a set position needs the shard's count)
            if not wanted:
                return
            continue
        stream = open_shard(path, kind, dataset=dataset)
        for index, record in _positioned(stream):
            if index in own:
                own.discard(index)
                out.shards.setdefault(shard_name, {})[index] = excerpt(record)
            if offset + index in in_set:
                in_set.discard(offset + index)
                out.examples[offset + index] = excerpt(record)
            if not own and not in_set:
                break  # the rest of this shard is not needed (nor its count)
        offset += stream.elements


def _positioned(stream: Any) -> Iterator[tuple[int, Any]]:
    """A shard stream's records with their index in the shard, a batch at a time (after each
    batch its ``positions()`` cover the records read so far; None: each element was one)."""
    done = 0
    for batch in stream:
        kept = stream.positions()
        for ordinal, record in enumerate(batch, done):
            yield (ordinal if kept is None else kept[ordinal]), record
        done += len(batch)


def excerpt(record: Any) -> str:
    """A record as compact JSON, ``id`` and ``image`` first, cut at :data:`EXCERPT_CHARS`."""
    fields = msgspec.to_builtins(record)
    first = {k: fields.pop(k) for k in ("id", "image") if k in fields}
    text = msgspec.json.encode({**first, **fields}).decode("utf-8", "replace")
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"
