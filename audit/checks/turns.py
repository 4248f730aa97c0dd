"""Turn rules of spec §5 (5-11, 19) over the one-row-per-turn frame.

Every rule is first a vectorised flag over all turns; only records with a raised flag come back to
Python, where the message is worded (which turn, what was found). So a clean 600K-record file costs
a handful of column scans, and a bad record still gets a precise, single finding per rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import polars as pl

from audit.checks.tables import ChatTables, FileRef
from audit.findings import Code, Finding

IMAGE = "<image>"
IMAGE_TOKENS = 576  # LLaVA-1.5 (CLIP-336): image features inserted per <image>
MAX_TOKENS = 2048  # LLaVA-1.5 model_max_length
BYTES_PER_TOKEN = 4  # rough LLaMA-tokenizer average for English text
ROLE_MARKERS = (" ASSISTANT: ", "USER: ", "###")


def _contains_any(column: pl.Expr, needles: list[str]) -> pl.Expr:
    """Literal substring tests OR-ed: for a handful of needles, memmem scans beat Aho-Corasick
    (`str.contains_any`) about 3x on LLaVA text."""
    return pl.any_horizontal(*(column.str.contains(n, literal=True) for n in needles))


def turn_flags(tables: ChatTables) -> pl.DataFrame:
    """The turn frame plus has_image, size and ``bad`` (some turn rule may fail here).

    One combined mask keeps the scan over all turns cheap; which rule failed is worked out in
    Python for the flagged records only.
    """
    turns = tables.turns
    value, role, pos = pl.col("value"), pl.col("from"), pl.col("pos")
    has_image = tables.records["has_image"].gather(turns["rec"]) if turns.height else None
    expected = pl.when(pos % 2 == 0).then(pl.lit("human")).otherwise(pl.lit("gpt"))
    # One test for every suspicious substring. The one legitimate <image> (turn 0 of an image record)
    # matches too, so turn 0 of image records is judged from the records frame instead.
    hit = _contains_any(value, [IMAGE, "</s>", *ROLE_MARKERS])
    return turns.with_columns(
        has_image=pl.Series("has_image", [], dtype=pl.Boolean) if has_image is None else has_image,
        size=value.str.len_bytes(),
    ).with_columns(
        bad=(role != expected)
        | value.str.contains(r"^\s*$")
        | (hit & ~((pos == 0) & pl.col("has_image"))),
    )


def _first_turn_suspects(records: pl.DataFrame) -> pl.Series:
    """Rows of image records whose turn 0 lacks exactly one <image> or holds a marker/`</s>`."""
    first = pl.col("first")
    odd_first = pl.col("has_image") & (
        (pl.col("first_n_img") != 1) | _contains_any(first, ["</s>", *ROLE_MARKERS])
    ).fill_null(False)
    return records.with_row_index("rec").filter(odd_first)["rec"]


def turn_findings(tables: ChatTables, flags: pl.DataFrame, ref: FileRef) -> list[Finding]:
    """Findings for rules 5-11 and 19; ``flags`` from :func:`turn_flags`."""
    records = tables.records
    out: list[Finding] = []
    odd = records.with_row_index("rec").filter(pl.col("n_turns") % 2 == 1)["rec"]
    odd = pl.concat([odd, _first_turn_suspects(records)])
    suspects = (
        pl.concat([flags.filter("bad")["rec"].cast(pl.Int64), odd.cast(pl.Int64)]).unique().sort()
    )
    if suspects.len():
        detail = flags.filter(pl.col("rec").is_in(suspects.implode()))
        for rec, group in detail.group_by("rec", maintain_order=True):
            row = records.row(int(str(rec[0])), named=True)
            out.extend(_record_turns(row, group.to_dicts(), ref))
    out.extend(_placement(tables, ref))
    out.extend(_too_long(tables, flags, ref))
    return out


def _describe_turns(turns: list[dict[str, Any]]) -> None:
    """Add the per-rule flags to the (few) turns of a flagged record."""
    for turn in turns:
        value = turn["value"]
        turn["role_bad"] = turn["from"] not in ("human", "gpt")
        turn["empty"] = not value.strip()
        turn["eos"] = "</s>" in value
        turn["marker"] = any(marker in value for marker in ROLE_MARKERS)


def _record_turns(
    record: dict[str, Any], turns: list[dict[str, Any]], ref: FileRef
) -> Iterable[Finding]:
    index, record_id = record["idx"], record["id"]
    _describe_turns(turns)

    def finding(code: Code, message: str) -> Finding:
        return ref.finding(code, message, index, record_id)

    roles = [t["from"] for t in turns]
    unknown = [(t["pos"], t["from"]) for t in turns if t["role_bad"]]
    if unknown:
        pos, role = unknown[0]
        more = f" (and {len(unknown) - 1} more turns)" if len(unknown) > 1 else ""
        yield finding(Code.TURN_ROLE, f"turn {pos}: from {role!r} is not 'human' or 'gpt'{more}")
    else:
        order = _order_problem(roles)
        if order is not None:
            yield finding(*order)
    for flag, code, what in (
        ("empty", Code.TURN_EMPTY_VALUE, "is empty or whitespace"),
        ("eos", Code.TURN_EOS_TOKEN, "contains '</s>'"),
        (
            "marker",
            Code.TURN_ROLE_MARKER,
            "contains a role marker (' ASSISTANT: ', 'USER: ' or '###')",
        ),
    ):
        hits = [t for t in turns if t[flag]]
        if hits:
            more = f" (and {len(hits) - 1} more turns)" if len(hits) > 1 else ""
            yield finding(code, f"turn {hits[0]['pos']} ({hits[0]['from']}) {what}{more}")
    yield from _image_tokens(record, turns, finding)


def _order_problem(roles: list[str]) -> tuple[Code, str] | None:
    """turn.order (error), turn.leading_gpt (warning, the trainer drops that turn) or None."""

    def alternates(seq: list[str]) -> bool:
        return all(role == ("human" if i % 2 == 0 else "gpt") for i, role in enumerate(seq))

    if roles and alternates(roles) and len(roles) % 2 == 0:
        return None
    if len(roles) > 2 and roles[0] == "gpt" and alternates(roles[1:]) and len(roles[1:]) % 2 == 0:
        return (
            Code.TURN_LEADING_GPT,
            "turn 0 is from gpt; the trainer drops it and trains on the rest",
        )
    if not roles:
        return None
    if alternates(roles):
        return Code.TURN_ORDER, f"{len(roles)} turns: the last turn is from human, with no answer"
    first = next(i for i, role in enumerate(roles) if role != ("human" if i % 2 == 0 else "gpt"))
    return (
        Code.TURN_ORDER,
        f"turn {first} is from {roles[first]}; roles must alternate human, gpt, ...",
    )


def _image_tokens(
    record: dict[str, Any], turns: list[dict[str, Any]], finding: Any
) -> Iterable[Finding]:
    where = [t["pos"] for t in turns for _ in range(t["value"].count(IMAGE))]
    if not record["has_image"]:
        if where:
            yield finding(
                Code.IMAGE_TOKEN_TEXT_ONLY,
                f"<image> in turn {where[0]} of a record without `image`",
            )
        return
    if len(where) != 1:
        places = f" (turns {', '.join(map(str, where))})" if where else ""
        yield finding(
            Code.IMAGE_TOKEN_COUNT,
            f"{len(where)} <image> tokens{places}; an image record needs exactly 1",
        )
    elif where[0] != _first_human(turns):
        yield finding(
            Code.IMAGE_TOKEN_POSITION, f"<image> is in turn {where[0]}, not in the first human turn"
        )


def _first_human(turns: list[dict[str, Any]]) -> int:
    """Turn 0, or turn 1 after a leading gpt turn that the trainer drops."""
    leading_gpt = len(turns) > 2 and turns[0]["from"] == "gpt" and turns[1]["from"] == "human"
    return 1 if leading_gpt else 0


def _placement(tables: ChatTables, ref: FileRef) -> Iterable[Finding]:
    """Rule 10 warning: one <image> in turn 0 but neither `<image>\\n...` nor `...\\n<image>`."""
    first = pl.col("first")
    odd = tables.records.filter(
        pl.col("has_image")
        & (pl.col("first_n_img") == 1)
        & ~(
            first.str.starts_with(IMAGE + "\n")
            | first.str.ends_with("\n" + IMAGE)
            | (first == IMAGE)
        )
    )
    for index, record_id, text in odd.select("idx", "id", "first").iter_rows():
        yield ref.finding(
            Code.IMAGE_TOKEN_PLACEMENT,
            f"<image> is inside the text of turn 0: {text[:60]!r}",
            index,
            record_id,
        )


def _too_long(tables: ChatTables, flags: pl.DataFrame, ref: FileRef) -> Iterable[Finding]:
    """Rule 19: estimated tokens (bytes / 4, plus 576 per image) above model_max_length."""
    if not flags.height:
        return
    cum = pl.concat([pl.Series([0], dtype=pl.Int64), flags["size"].cast(pl.Int64).cum_sum()])
    records = tables.records
    start = records["start"].cast(pl.Int64)
    total = cum.gather(start + records["n_turns"]) - cum.gather(start)
    tokens = total // BYTES_PER_TOKEN + records["has_image"].cast(pl.Int64) * IMAGE_TOKENS
    for row in (
        records.with_columns(tokens=tokens)
        .filter(pl.col("tokens") > MAX_TOKENS)
        .iter_rows(named=True)
    ):
        yield ref.finding(
            Code.TURN_TOO_LONG,
            f"about {row['tokens']:,} tokens with the image (limit {MAX_TOKENS}); the end is cut",
            row["idx"],
            row["id"],
        )
