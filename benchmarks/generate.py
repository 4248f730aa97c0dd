"""Generate full-scale synthetic LLaVA data in the real layouts into ``benchmarks/data/``.

Why synthetic: the real files are 1 GB of downloads with licence strings attached; the structure
audit's cost depends only on the layout (record counts, ``json.dump(indent=2)`` whitespace with
``ensure_ascii`` escapes, string lengths, turn counts), which this reproduces (spec/llava-data.md §1):

- ``LLaVA-Instruct-150K/llava_instruct_150k.json``: 157,712 records, ~229 MB;
- ``LLaVA-CC3M-Pretrain-595K/chat.json`` (~211 MB) and ``metadata.json`` (~199 MB): 595,375 each;
- ``LLaVA-Pretrain/blip_laion_cc_sbu_558k.json`` (~181 MB) and ``_meta.json`` (~147 MB): 558,128.

Deterministic for a given ``--seed`` and ``--scale``. ``--defects N`` injects N known defects per
file and lists them (index, id, expected codes) in ``defects.json`` beside the data.

    python -m benchmarks.generate [--out benchmarks/data] [--scale 1.0] [--defects 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from pathlib import Path

from benchmarks.synth import TextSynth

DEFAULT_OUT = Path(__file__).resolve().parent / "data"
INSTRUCT = "LLaVA-Instruct-150K/llava_instruct_150k.json"
CC3M_CHAT = "LLaVA-CC3M-Pretrain-595K/chat.json"
CC3M_META = "LLaVA-CC3M-Pretrain-595K/metadata.json"
LCS_CHAT = "LLaVA-Pretrain/blip_laion_cc_sbu_558k.json"
LCS_META = "LLaVA-Pretrain/blip_laion_cc_sbu_558k_meta.json"
FULL_COUNTS = {"instruct": 157_712, "cc3m": 595_375, "lcs": 558_128}
COCO_IMAGES = 82_783  # distinct train2014 images behind the instruct ids (ids repeat)

TABLE11 = (  # Paper-1 Table 11 with the ASCII apostrophe the data uses (CC-3M chat)
    "Describe the image concisely.",
    "Provide a brief description of the given image.",
    "Offer a succinct explanation of the picture presented.",
    "Summarize the visual content of the image.",
    "Give a short and clear explanation of the subsequent image.",
    "Share a concise interpretation of the image provided.",
    "Present a compact description of the photo's key features.",
    "Relay a brief, clear account of the picture shown.",
    "Render a clear and concise summary of the photo.",
    "Write a terse but informative summary of the picture.",
    "Create a compact narrative representing the image presented.",
)
LCS_PROMPTS: tuple[str, ...] = (*TABLE11[:2], *TABLE11[3:7], *TABLE11[8:10])
LCS_PROMPTS += ("Give a brief description of the image.", "What is in the photo?", "What is this?")
DETAIL_PROMPTS = (
    "Describe the following image.",
    "Can you elaborate on the elements of the picture provided?",
    "Explain the visual content of the image in great detail.",
    "What is this photo about'?",
    "Write a detailed description of the given image.",
    "Can you describe the main features of this image for me?",
    "What do you see happening in this image?",
    "What do you think is going on in this snapshot?",
    "What are the key elements in this picture?",
    "Analyze the image in a comprehensive and detailed manner.",
    "What's happening in the scene?",
)

Turns = list[list[str | None]]  # [from, value] pairs; None encodes JSON null (a defect)


@dataclass
class Chat:
    """One conversation record before encoding; defects edit it in place."""

    id: str
    image: str
    turns: Turns


@dataclass
class Defect:
    """A known injected defect: where it is and which finding codes must report it."""

    file: str
    index: int
    record_id: str
    defect: str
    codes: list[str] = field(default_factory=list)


def _enc(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def encode_chat(rec: Chat) -> str:
    """One record exactly as ``json.dump(records, f, indent=2)`` writes it inside the array."""
    turns = ",\n".join(
        f'      {{\n        "from": {_enc(f)},\n        "value": {_enc(v)}\n      }}'
        for f, v in rec.turns
    )
    return (
        f'  {{\n    "id": {_enc(rec.id)},\n    "image": {_enc(rec.image)},\n'
        f'    "conversations": [\n{turns}\n    ]\n  }}'
    )


def encode_meta(fields: dict[str, str]) -> str:
    """A flat metadata record in the same ``indent=2`` layout."""
    body = ",\n".join(f"    {_enc(k)}: {_enc(v)}" for k, v in fields.items())
    return f"  {{\n{body}\n  }}"


def _with_image_token(rng_value: float, prompt: str) -> str:
    """``<image>`` at the start or the end of turn 0, about half each, as in the real files."""
    return f"<image>\n{prompt}" if rng_value < 0.5 else f"{prompt}\n<image>"


def _write(path: Path, records: Iterator[str]) -> int:
    """Write ``[\\n rec,\\n rec\\n]`` (no trailing newline, like json.dump) and return the count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="ascii", newline="\n") as out:
        out.write("[\n")
        batch: list[str] = []
        for text in records:
            batch.append(text)
            if len(batch) == 20_000:
                out.write((",\n" if count else "") + ",\n".join(batch))
                count += len(batch)
                batch = []
        if batch:
            out.write((",\n" if count else "") + ",\n".join(batch))
            count += len(batch)
        out.write("\n]")
    if count == 0:
        path.write_text("[]", encoding="ascii")
    return count


# ---- defects --------------------------------------------------------------------------------------
def _chat_defect(kind: str, rec: Chat, file: str) -> list[str]:
    """Break ``rec`` in one way and return the error codes a correct audit must report for it."""
    human, gpt = rec.turns[0], rec.turns[-1]
    pretrain = file != INSTRUCT
    if kind == "role":
        human[0] = "Human"
        return ["turn.role"]
    if kind == "empty_value":
        gpt[1] = ""
        return ["turn.empty_value"]
    if kind == "no_image_token":
        human[1] = (human[1] or "").replace("<image>\n", "").replace("\n<image>", "")
        return ["image_token.count"]
    if kind == "null_value":
        gpt[1] = None
        return ["turn.keys"]
    if kind == "eos_token":
        gpt[1] = f"{gpt[1]} </s>"
        return ["turn.eos_token"]
    if kind == "image_pattern":
        if file == INSTRUCT:
            rec.image = f"COCO_train2014_{rec.id}.jpg"
            return ["image.path_pattern"]
        rec.image = f"{rec.id}.png" if file == CC3M_CHAT else f"{rec.id}.jpg"
        return ["image.path_pattern", "xfile.image_mismatch"]
    if pretrain:  # "turn_count": a second human/gpt pair; preprocess_plain asserts 2 turns
        rec.turns += [["human", "And what else?"], ["gpt", gpt[1]]]
        return ["turn.count"]
    rec.turns.pop()  # odd count: the last round has no answer, the sample is masked
    return ["turn.order"]


CHAT_DEFECTS = (
    "role",
    "empty_value",
    "no_image_token",
    "eos_token",
    "image_pattern",
    "turn_count",
    "null_value",  # not a string: the typed fast path fails and the loader must salvage the file
)


def _defect_plan(n_records: int, n_defects: int, kinds: tuple[str, ...]) -> dict[int, str]:
    """Spread ``n_defects`` evenly over the file, cycling through ``kinds``."""
    n_defects = min(n_defects, n_records)
    return {(k + 1) * n_records // (n_defects + 1): kinds[k % len(kinds)] for k in range(n_defects)}


# ---- files ----------------------------------------------------------------------------------------
def instruct_records(
    n: int, seed: int, defects: dict[int, str], log: list[Defect]
) -> Iterator[str]:
    """Merged conversation_58k / detail_23k / complex_reasoning_77k records in random order."""
    synth = TextSynth(seed)
    rng = synth.rng
    pool = [f"{i:012d}" for i in sorted(rng.sample(range(1, 581_930), min(COCO_IMAGES, 581_929)))]
    for index in range(n):
        rec_id = rng.choice(pool)
        kind = rng.random()
        if kind < 0.36:  # conversation: several human/gpt pairs
            pairs = rng.choice((2, 3, 3, 4, 4, 5, 6))
            turns: Turns = []
            for p in range(pairs):
                question = synth.question()
                turns.append(
                    ["human", _with_image_token(rng.random(), question) if p == 0 else question]
                )
                turns.append(["gpt", synth.answer(rng.randint(1, 6))])
        elif kind < 0.51:  # detail: one instruction, a multi-paragraph description
            prompt = _with_image_token(rng.random(), rng.choice(DETAIL_PROMPTS))
            turns = [
                ["human", prompt],
                ["gpt", synth.answer(rng.randint(5, 11), rng.randint(1, 3))],
            ]
        else:  # complex reasoning: one question, a long reasoning answer
            question = _with_image_token(rng.random(), synth.question())
            turns = [["human", question], ["gpt", synth.answer(rng.randint(4, 11))]]
        rec = Chat(rec_id, rec_id + ".jpg", turns)
        if index in defects:
            codes = _chat_defect(defects[index], rec, INSTRUCT)
            log.append(Defect(INSTRUCT, index, rec_id, defects[index], codes))
        yield encode_chat(rec)


def _pretrain_pairs(
    n: int, seed: int, id_space: int, caption: Callable[[TextSynth], str]
) -> Iterator[tuple[str, str, str, TextSynth]]:
    """Distinct 9-digit source indices in random order, each with a caption and a source URL."""
    synth = TextSynth(seed)
    for number in synth.rng.sample(range(id_space), n):
        yield f"{number:09d}", caption(synth), synth.url(), synth


def pretrain_files(
    which: str, out: Path, n: int, seed: int, n_defects: int, log: list[Defect]
) -> dict[str, int]:
    """CC-3M chat + metadata, or LCS-558K chat + _meta, written side by side in one pass."""
    cc3m = which == "cc3m"
    chat_name, meta_name = (CC3M_CHAT, CC3M_META) if cc3m else (LCS_CHAT, LCS_META)
    chat_defects = _defect_plan(n, n_defects, CHAT_DEFECTS)
    meta_defects = _defect_plan(n, n_defects, ("missing_url",))
    metas: list[str] = []
    caption = TextSynth.cc3m_caption if cc3m else TextSynth.blip_caption

    def chats() -> Iterator[str]:
        for index, (number, text, url, synth) in enumerate(
            _pretrain_pairs(n, seed, 3_318_333 if cc3m else 6_000_000, caption)
        ):
            rng = synth.rng
            rec_id = f"GCC_train_{number}" if cc3m else number
            image = f"{rec_id}.jpg" if cc3m else f"{number[:5]}/{number}.jpg"
            prompt = rng.choice(TABLE11 if cc3m else LCS_PROMPTS)
            meta = {"id": rec_id, "image": image}
            if cc3m:
                meta["caption"] = text
                if rng.random() < 0.9:  # ~10% have no BLIP caption yet (dataset card)
                    meta["blip_caption"] = synth.blip_caption(short=True)
            else:
                meta["blip_caption"] = text
            meta["url"] = url
            if index in meta_defects:
                del meta["url"]
                log.append(Defect(meta_name, index, rec_id, "missing_url", ["metadata.field"]))
            metas.append(encode_meta(meta))
            rec = Chat(
                rec_id, image, [["human", _with_image_token(rng.random(), prompt)], ["gpt", text]]
            )
            if index in chat_defects:
                codes = _chat_defect(chat_defects[index], rec, chat_name)
                log.append(Defect(chat_name, index, rec_id, chat_defects[index], codes))
            yield encode_chat(rec)

    counts = {chat_name: _write(out / chat_name, chats())}
    counts[meta_name] = _write(out / meta_name, iter(metas))
    return counts


def generate(out: Path, scale: float = 1.0, seed: int = 0, defects: int = 0) -> dict[str, int]:
    """Write all five files under ``out`` and ``defects.json``; return record counts per file."""
    sizes = {k: max(1, round(v * scale)) for k, v in FULL_COUNTS.items()}
    log: list[Defect] = []
    salt = {k: zlib.crc32(k.encode()) for k in FULL_COUNTS}
    plan = _defect_plan(sizes["instruct"], defects, CHAT_DEFECTS)
    counts = {
        INSTRUCT: _write(
            out / INSTRUCT, instruct_records(sizes["instruct"], seed ^ salt["instruct"], plan, log)
        )
    }
    for which in ("cc3m", "lcs"):
        counts.update(pretrain_files(which, out, sizes[which], seed ^ salt[which], defects, log))
    manifest = [d.__dict__ for d in sorted(log, key=lambda d: (d.file, d.index))]
    (out / "defects.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (default benchmarks/data)"
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="fraction of the real record counts"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--defects", type=int, default=0, help="known defects injected per file")
    args = parser.parse_args(argv)
    if args.scale <= 0 or args.defects < 0:
        parser.error("--scale must be > 0 and --defects >= 0")
    started = time.perf_counter()
    counts = generate(args.out, args.scale, args.seed, args.defects)
    for name, count in counts.items():
        size = (args.out / name).stat().st_size
        print(f"{args.out / name}  {count:,} records  {size / 1e6:,.1f} MB")
    print(
        f"defects: {args.out / 'defects.json'}  ({time.perf_counter() - started:.1f} s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
