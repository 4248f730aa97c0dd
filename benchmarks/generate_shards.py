"""Generate a sharded LLaVA conversation set (JSON Lines and Parquet) with planted defects.

The scale-out inputs of issue 13: LCS-558K-style conversation records (9-digit ids,
``image = id[:5]/id.jpg``, two turns, the observed prompts, BLIP/LAION captions; see
benchmarks/generate.py) split into shards named as Hugging Face datasets name them, the same
records twice:

- ``jsonl/train-00000-of-00020.jsonl`` ...: one record per line;
- ``parquet/train-00000-of-00020.parquet`` ...: columns ``id``, ``image``,
  ``conversations: list<struct<from, value>>`` (the layout ``datasets`` writes).

``--defects N`` breaks N records per shard (the defects of generate.py: wrong role, empty value,
no ``<image>``, ``</s>``, image name pattern, turn count, a ``null`` value) and, in every shard
after the first, plants an exact copy of a record of the shard before it (``record.duplicate``:
a cross-shard rule). ``defects.json`` lists them as ``{shard, index, record_id, defect, codes}``
(``shard``: the file name without its suffix; ``codes``: what a correct audit must report at that
index). Deterministic for a given ``--seed``, ``--records`` and ``--shards``.

    python -m benchmarks.generate_shards [--out benchmarks/data/shards] [--records 1000000]
        [--shards 20] [--defects 8] [--formats jsonl,parquet]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.generate import (
    CHAT_DEFECTS,
    LCS_CHAT,
    LCS_PROMPTS,
    Chat,
    _chat_defect,
    _defect_plan,
    _with_image_token,
)
from benchmarks.synth import TextSynth

DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "shards"
FORMATS = ("jsonl", "parquet")
DUPLICATE = "duplicate"  # the cross-shard defect: an exact copy of a record of the shard before
TURN = pa.struct([("from", pa.string()), ("value", pa.string())])
SCHEMA = pa.schema([("id", pa.string()), ("image", pa.string()), ("conversations", pa.list_(TURN))])


@dataclass(frozen=True)
class Planted:
    """A known defect: the shard (file name without suffix), the record's index and the codes."""

    shard: str
    index: int
    record_id: str
    defect: str
    codes: list[str]


def shard_name(number: int, shards: int) -> str:
    return f"train-{number:05d}-of-{shards:05d}"


def shard_records(synth: TextSynth, number: int, size: int, shards: int) -> list[Chat]:
    """One shard's clean records: ids distinct across the set (each shard has its own range)."""
    rng = synth.rng
    space = 1_000_000_000 // shards
    records = []
    for value in rng.sample(range(number * space, (number + 1) * space), size):
        rid = f"{value:09d}"
        prompt = _with_image_token(rng.random(), rng.choice(LCS_PROMPTS))
        records.append(
            Chat(rid, f"{rid[:5]}/{rid}.jpg", [["human", prompt], ["gpt", synth.blip_caption()]])
        )
    return records


def plant(
    records: list[Chat], previous: list[Chat] | None, name: str, n_defects: int
) -> list[Planted]:
    """Break records in place as planned; return what a correct audit must report."""
    log = []
    plan = _defect_plan(len(records), n_defects, CHAT_DEFECTS)
    for index, kind in plan.items():
        rec = records[index]
        # a set of chat shards has no metadata: an image name off the pattern is all there is
        codes = [c for c in _chat_defect(kind, rec, LCS_CHAT) if not c.startswith("xfile.")]
        log.append(Planted(name, index, rec.id, kind, codes))
    if previous and n_defects:
        index = len(records) // (2 * n_defects + 2) or len(records) - 1
        source = (index + 1) % len(previous)  # not a planted position there (no copy of a defect)
        if index not in plan and source not in plan:
            copy = previous[source]
            records[index] = Chat(copy.id, copy.image, [list(t) for t in copy.turns])
            log.append(Planted(name, index, copy.id, DUPLICATE, ["record.duplicate"]))
    return log


def _enc(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def jsonl_lines(records: list[Chat]) -> Iterator[str]:
    """One compact JSON object per line (``ensure_ascii`` escapes, as json.dumps writes)."""
    for rec in records:
        turns = ", ".join(f'{{"from": {_enc(f)}, "value": {_enc(v)}}}' for f, v in rec.turns)
        yield f'{{"id": {_enc(rec.id)}, "image": {_enc(rec.image)}, "conversations": [{turns}]}}\n'


def arrow_table(records: list[Chat]) -> pa.Table:
    """The records as the Hugging Face layout: list<struct<from, value>> conversations."""
    offsets, roles, values = [0], [], []
    for rec in records:
        for role, value in rec.turns:
            roles.append(role)
            values.append(value)
        offsets.append(len(roles))
    turns = pa.StructArray.from_arrays(
        [pa.array(roles, pa.string()), pa.array(values, pa.string())], fields=list(TURN)
    )
    conversations = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), turns)
    columns = [pa.array([r.id for r in records]), pa.array([r.image for r in records])]
    return pa.Table.from_arrays([*columns, conversations], schema=SCHEMA)


def generate(
    out: Path,
    records: int = 1_000_000,
    shards: int = 20,
    seed: int = 0,
    defects: int = 8,
    formats: tuple[str, ...] = FORMATS,
) -> list[Path]:
    """Write the shards under ``out/<format>/`` and ``out/defects.json``; return the shards."""
    written: list[Path] = []
    log: list[Planted] = []
    previous: list[Chat] | None = None
    synth = TextSynth(seed ^ zlib.crc32(b"shards"))  # one stream, shard after shard
    for fmt in formats:
        (out / fmt).mkdir(parents=True, exist_ok=True)
    for number in range(shards):
        size = records // shards + (1 if number < records % shards else 0)
        name = shard_name(number, shards)
        chunk = shard_records(synth, number, size, shards)
        log += plant(chunk, previous, name, defects)
        previous = chunk
        if "jsonl" in formats:
            path = out / "jsonl" / f"{name}.jsonl"
            with path.open("w", encoding="ascii", newline="\n") as handle:
                handle.writelines(jsonl_lines(chunk))
            written.append(path)
        if "parquet" in formats:
            path = out / "parquet" / f"{name}.parquet"
            pq.write_table(arrow_table(chunk), path, row_group_size=16_384)
            written.append(path)
    manifest = [p.__dict__ for p in sorted(log, key=lambda p: (p.shard, p.index))]
    (out / "defects.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--records", type=int, default=1_000_000, help="records in the whole set")
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--defects", type=int, default=8, help="planted defects per shard")
    parser.add_argument("--formats", default=",".join(FORMATS), help="jsonl, parquet or both")
    args = parser.parse_args(argv)
    formats = tuple(f for f in args.formats.split(",") if f)
    if args.records < args.shards or args.shards < 1 or args.defects < 0:
        parser.error("need --records >= --shards >= 1 and --defects >= 0")
    if not formats or set(formats) - set(FORMATS):
        parser.error(f"--formats takes {', '.join(FORMATS)}")
    started = time.perf_counter()
    written = generate(args.out, args.records, args.shards, args.seed, args.defects, formats)
    size = sum(p.stat().st_size for p in written)
    print(
        f"{args.out}: {args.records:,} records x {len(formats)} format(s) in {args.shards} shards, "
        f"{size / 1e6:,.1f} MB, defects in {args.out / 'defects.json'} "
        f"({time.perf_counter() - started:.1f} s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
