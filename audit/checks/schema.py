"""Column rules of spec §5 as a pandera (polars backend) schema over the one-row-per-record frame.

What is naturally a column rule lives here: id patterns (rules 14-16), image path shapes (12, 14-17),
id types (13), turn counts (5, 14, 15, 18), the mix665k folder prefixes (17), and the metadata fields.
Each check is named after the finding code it produces; pandera's ``failure_cases`` (one row per
failing record, with its row position) are mapped back to findings with the record's file index
and id. Turn-by-turn logic is in :mod:`audit.checks.turns`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import polars as pl

from audit.checks.tables import FileRef
from audit.findings import Code, Finding, Severity
from audit.models import MIX_PREFIXES

ID_PATTERNS = {
    "cc3m-chat": r"^GCC_train_\d{9}$",
    "cc3m-metadata": r"^GCC_train_\d{9}$",
    "lcs-chat": r"^\d{9}$",
    "lcs-metadata": r"^\d{9}$",
    "instruct": r"^\d{12}$",
}
PRETRAINING_KINDS = frozenset({"cc3m-chat", "lcs-chat"})

Message = Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class Rule:
    """One named column rule: a polars expression that is True for good rows."""

    name: str  # the pandera check name; unique within a schema
    code: Code
    ok: pl.Expr
    message: Message
    severity: Severity | None = None  # None: the catalogue's severity


def _expected_image(kind: str) -> pl.Expr | None:
    record_id = pl.col("id")
    if kind in ("cc3m-chat", "cc3m-metadata", "instruct"):
        return record_id + ".jpg"
    if kind in ("lcs-chat", "lcs-metadata"):
        return record_id.str.slice(0, 5) + "/" + record_id + ".jpg"
    return None


def _image_path_ok(present: pl.Expr) -> pl.Expr:
    image = pl.col("image")
    relative = (
        ~image.str.starts_with("/")
        & ~image.str.contains(r"(^|[/\\])\.\.([/\\]|$)")
        & ~image.str.contains(r"^[A-Za-z]:[/\\]|^\\\\")
    )
    return ~present | (image.is_not_null() & (image != "") & relative).fill_null(False)


def _image_problem(row: dict[str, Any]) -> str:
    image = row.get("image")
    if image is None:
        return "image is null"
    if image == "":
        return "image is an empty string (the trainer would open the image folder itself)"
    return f"image {image!r} is not a relative path inside the image folder"


def _id_message(pattern: str) -> Message:
    return lambda row: f"id {row['id']!r} does not match {pattern}"


def _image_message(shape: str) -> Message:
    return lambda row: f"image {row['image']!r} is not {shape} for id {row['id']!r}"


def _field_message(key: str) -> Message:
    return lambda row: f"`{key}` is missing, null or empty"


def chat_rules(kind: str) -> list[Rule]:
    """The column rules for a conversation file of ``kind``."""
    is_mix = kind == "mix"
    rules = [
        Rule(
            "conversations_nonempty",
            Code.RECORD_CONVERSATIONS,
            pl.col("n_turns") > 0,
            lambda r: "conversations is an empty list",
        ),
        Rule(
            "id_is_string",
            Code.RECORD_ID_TYPE,
            pl.col("id").is_not_null() & ~pl.col("id_is_int"),
            lambda r: (
                "id is missing" if r["id"] is None else f"id {r['id']} is a number, not a string"
            ),
            Severity.WARNING if is_mix else Severity.ERROR,
        ),
        Rule("image_path", Code.IMAGE_PATH, _image_path_ok(pl.col("has_image")), _image_problem),
    ]
    rules += _pattern_rules(kind)
    if kind in PRETRAINING_KINDS:
        rules.append(
            Rule(
                "two_turns",
                Code.TURN_COUNT,
                (pl.col("n_turns") == 2) | (pl.col("n_turns") == 0),
                lambda r: f"{r['n_turns']} turns; pretraining records need exactly 2",
            )
        )
    if is_mix:
        rules += _mix_rules()
    return rules


def _pattern_rules(kind: str) -> list[Rule]:
    """Id and image naming of the kind; integer ids (a metadata index) are not held to them."""
    rules = []
    if (pattern := ID_PATTERNS.get(kind)) is not None:
        rules.append(
            Rule(
                "id_pattern",
                Code.ID_PATTERN,
                pl.col("id").str.contains(pattern).fill_null(True) | pl.col("id_is_int"),
                _id_message(pattern),
            )
        )
    if (expected := _expected_image(kind)) is not None:
        shape = "id[:5] + '/' + id + '.jpg'" if kind.startswith("lcs") else "id + '.jpg'"
        rules.append(
            Rule(
                "image_from_id",
                Code.IMAGE_PATH_PATTERN,
                (pl.col("image") == expected).fill_null(True)
                | pl.col("id_is_int")
                | (pl.col("image") == ""),
                _image_message(shape),
            )
        )
    return rules


def _mix_rules() -> list[Rule]:
    image = pl.col("image")
    coco = image.str.starts_with("coco/train2017/").fill_null(False) & ~pl.col("id_is_int")
    return [
        Rule(
            "mix_prefix",
            Code.MIX_PREFIX,
            (image.is_null() | pl.any_horizontal(*(image.str.starts_with(p) for p in MIX_PREFIXES)))
            | (image == ""),
            lambda r: f"image {r['image']!r} is not under a mix665k image folder",
        ),
        Rule(
            "mix_coco_id",
            Code.ID_PATTERN,
            ~coco | pl.col("id").str.contains(r"^\d{12}$").fill_null(False),
            lambda r: f"COCO record id {r['id']!r} is not 12 digits",
            Severity.WARNING,
        ),
        Rule(
            "mix_coco_image",
            Code.IMAGE_PATH_PATTERN,
            ~coco | (image == "coco/train2017/" + pl.col("id") + ".jpg").fill_null(False),
            lambda r: (
                f"image {r['image']!r} is not coco/train2017/ + id + '.jpg' for id {r['id']!r}"
            ),
            Severity.WARNING,
        ),
        Rule(
            "mix_model_key",
            Code.MIX_MODEL_KEY,
            pl.col("has_image") | pl.col("has_model"),
            lambda r: "text-only record without the `model` key of ShareGPT records",
        ),
    ]


def metadata_rules(kind: str, keys: dict[str, str]) -> list[Rule]:
    """Rules for a metadata file; ``keys`` are the fields the file has (standard -> file key)."""
    rules = [
        Rule(
            f"{field}_present",
            Code.METADATA_FIELD,
            # an empty image is image.path's business; an empty id or url is missing here
            pl.col(field).is_not_null() & ((pl.col(field) != "") | (field == "image")),
            _field_message(key),
        )
        for field, key in keys.items()
        if field in ("id", "image", "url")
    ]
    if "image" in keys:
        rules.append(
            Rule(
                "image_path",
                Code.IMAGE_PATH,
                _image_path_ok(pl.col("image").is_not_null()),
                _image_problem,
            )
        )
    return rules + _pattern_rules(kind)


def validate(frame: pl.DataFrame, rules: list[Rule], ref: FileRef) -> list[Finding]:
    """Run ``rules`` through pandera and turn each failure case into a finding.

    The same rule expressions first screen the whole frame in one vectorised pass; pandera then
    validates only the rows that failed some rule, so a clean 600K-record file costs one scan and
    never imports pandera (and pandas, ~0.4 s per process). Failure cases index the screened
    subset, which keeps ``idx`` and ``id`` to map back to the file.
    """
    if frame.height == 0 or not rules:
        return []
    screen = frame.select(
        pl.all_horizontal(*(rule.ok.fill_null(False) for rule in rules)).alias("ok")
    )
    failing_rows = frame.filter(~screen["ok"])
    if failing_rows.height == 0:
        return []
    return _pandera(failing_rows, rules, ref)


def load_pandera() -> ModuleType:
    """pandera's polars API, imported only when some row fails (pandera pulls in pandas) and as
    if pyspark were absent (:func:`audit.engines.without_pyspark`)."""
    from audit.engines import without_pyspark

    with without_pyspark():
        import pandera.polars as pap
    return pap


def _pandera(frame: pl.DataFrame, rules: list[Rule], ref: FileRef) -> list[Finding]:
    pap = load_pandera()

    def check(rule: Rule) -> Any:
        return pap.Check(
            lambda data: data.lazyframe.select(rule.ok.alias(rule.name)), name=rule.name
        )

    schema = pap.DataFrameSchema(checks=[check(rule) for rule in rules])
    try:
        schema.validate(frame, lazy=True)
        return []
    except pap.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    by_name = {rule.name: rule for rule in rules}
    failing = cases.select("check", "index").filter(pl.col("check").is_in(list(by_name)))
    out: list[Finding] = []
    for name, group in failing.group_by("check", maintain_order=True):
        rule = by_name[str(name[0])]
        rows = frame[group["index"].sort().to_list()]
        for row in rows.iter_rows(named=True):
            out.append(
                ref.finding(rule.code, rule.message(row), row["idx"], row["id"], rule.severity)
            )
    unknown = cases.filter(~pl.col("check").is_in(list(by_name)))
    if unknown.height:  # a check that raised: report it rather than pass silently
        raise RuntimeError(f"schema check failed to run: {unknown.row(0, named=True)}")
    return out
