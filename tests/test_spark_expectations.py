"""The expectations stage on Spark: the table made in executors, joined in Spark with the probes'
outcomes and the licence verdict table, validated by GX's Spark datasource, gives the local
engine's findings, rule results and Data Docs."""

from __future__ import annotations

import difflib
import json
import re
import textwrap
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from shardsets import write_jsonl

from audit import config as config_mod
from audit import findings, stages
from audit.config import EngineConfig
from audit.errors import AuditError
from audit.findings import Code, Finding
from audit.models import NoProgress
from audit.probes.expectation_rules import JAVA_AS_PYTHON
from audit.results import ImagesResult, LicenseResult, StructureResult, UrlsResult
from audit.stages.expectations_stage import run_expectations_stage
from audit.store import Store

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.spark

SPARK = EngineConfig(name="spark", master="local[2]")


def _record(n: int, **changes: Any) -> dict[str, Any]:
    record = {
        "id": f"{n:09d}",
        "image": f"{n:05d}/{n:09d}.jpg",
        "conversations": [
            {"from": "human", "value": "<image>\nDescribe the picture."},
            {"from": "gpt", "value": f"Picture {n}."},
        ],
    }
    return {**record, **changes}


def _records() -> list[Any]:
    """LCS-like records with planted defects, each breaking a rule of the lcs-chat suite."""
    records: list[Any] = [_record(n) for n in range(40)]
    records[3] = _record(3, id="<b>3</b>")  # markup in an id: escaped for Data Docs only
    records[4] = _record(4, id=4)  # an int id
    records[6] = _record(6, image="elsewhere/x.jpg")  # off the image pattern
    records[8] = {k: v for k, v in _record(8).items() if k != "image"}  # no image
    first = records[9]["conversations"]
    records[9] = _record(9, conversations=[first[1], first[0]])  # gpt first, human last
    records[12] = _record(12, id="000000011")  # a repeated id
    records[13] = dict(records[14])  # an exact duplicate
    records[20] = "not a record"  # an unusable element keeps its position
    # where Java's regexes differ from Python's unless told otherwise: digits of another script
    # match \d in Python, and a final \r is not a line end there (so "$" fails before it)
    records[15] = _record(15, id="\u0660" * 7 + "\u0661\u0665")
    records[16] = _record(16, image="00016/000000016.jpg\r")
    return records


def _upstream(chat: Path) -> tuple[ImagesResult, StructureResult, UrlsResult, dict[int, str]]:
    def made(
        code: Code, index: int | None, record_id: str | None = None, file: str = ""
    ) -> Finding:
        return findings.make(
            code,
            f"{code} at {index}",
            dataset="lcs",
            file=file or str(chat),
            index=index,
            record_id=record_id,
        )

    images = ImagesResult(
        dataset="lcs",
        file=str(chat),
        findings=[
            made(Code.IMAGE_MISSING, 2),
            made(Code.IMAGE_CORRUPT, 5),
            made(Code.IMAGE_FORMAT_MISMATCH, 5),  # a lesser code on the same record
            made(Code.IMAGE_FORMAT_MISMATCH, 11),  # available, but not ok
            made(Code.IMAGE_MISSING, None),  # a file-level finding names no record
        ],
    )
    structure = StructureResult(
        findings=[made(Code.IMAGE_PATH, 7), made(Code.IMAGE_PATH, 10, file="other.json")]
    )
    meta = "meta.json"
    urls = UrlsResult(
        findings=[
            made(Code.URL_DEAD, 0, "000000001", meta),
            made(Code.URL_OPT_OUT, 1, "000000002", meta),  # answered: alive
            made(Code.URL_TIMEOUT, 2, "000000011", meta),  # the first record with that id
            made(Code.URL_DEAD, 3, "not in the chat", meta),
            *(made(Code.URL_DEAD, n, f"{n:09d}", meta) for n in range(21, 36)),
        ]
    )
    verdicts = {i: "forbidden" if i % 7 == 0 else "allowed" for i in range(40) if i != 20}
    return images, structure, urls, verdicts


def _context(
    folder: Path, chat: Path, store: Store, engine: EngineConfig | None
) -> stages.StageContext:
    (folder / "audit.toml").write_text(
        textwrap.dedent(
            f"""
            [[datasets]]
            name = "lcs"
            kind = "lcs-chat"
            chat = "{chat.name}"
            """
        ),
        encoding="utf-8",
    )
    config = config_mod.load(folder / "audit.toml")
    if engine is not None:
        config = msgspec.structs.replace(config, engine=engine)
    return stages.StageContext(
        config=config,
        dataset=config.datasets[0],
        store=store,
        progress=NoProgress(),
        work_dir=folder / "reports" / "run",
    )


def _docs_text(result_docs: str | None) -> dict[str, str]:
    """Every Data Docs page, with what differs between any two runs (times, run ids) masked."""
    assert result_docs is not None
    root = Path(result_docs).parent
    pages = {}
    for page in sorted(root.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        text = re.sub(r"\d{8}T\d{6}(\.\d+)?Z?", "<time>", text)
        text = re.sub(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?", "<time>", text)
        text = re.sub(
            r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "<id>",
            text,
        )
        text = re.sub(r"\b1\d{9}\.\d+", "<time>", text)  # a run's epoch seconds
        # the batch's own description names the kind of DataFrame GX validated, and on pandas
        # its fingerprint: a validation page's collapsed "Show more info" block about the batch
        text = re.sub(r"\b(Pandas|Spark)DataFrame\b", "<frame>", text)
        # the patterns as Spark ran them: with Java's flags for Python's meaning
        text = text.replace(JAVA_AS_PYTHON, "")
        start = text.find('id="section-1-content-block-3"')
        end = text.find('id="section-2-content-block-1"')
        if page.parent.parent.name == "__none__":  # validations/<suite>/__none__/<run>/
            assert 0 < start < end and "Batch Spec" in text[start:end]
            text = text[:start] + "<the batch>" + text[end:]
        pages[re.sub(r"\d{8}T\d{6}(\.\d+)?Z?", "<time>", page.relative_to(root).as_posix())] = text
    return pages


@pytest.mark.parametrize("layout", ["json", "jsonl-shards"])
def test_the_suite_on_spark_gives_the_local_engines_findings_rules_and_data_docs(
    spark: SparkSession, tmp_path: Path, layout: str
) -> None:
    """A JSON file is one executor task; a shard set one per shard, the rows placed after the
    shards before them."""
    results = {}
    docs: dict[str, dict[str, str]] = {}
    raw: dict[str, str] = {}  # the Spark run's pages as written
    for engine in ("local", "spark"):
        folder = tmp_path / engine
        folder.mkdir()
        if layout == "json":
            chat = folder / "chat.json"
            chat.write_text(json.dumps(_records()), encoding="utf-8")
        else:
            chat = folder / "chat"
            write_jsonl(_records(), chat, 3)
        images, structure, urls, verdicts = _upstream(chat)
        with Store(folder / "state.sqlite") as store:
            ctx = _context(folder, chat, store, SPARK if engine == "spark" else None)
            ctx.upstream.record(structure)
            if engine == "spark":
                table = str(folder / "verdicts")
                rows = sorted(verdicts.items())
                spark.createDataFrame(rows, "index long, verdict string").write.parquet(table)
                licence = LicenseResult(record_verdicts_table=table)
            else:
                licence = LicenseResult(record_verdicts=verdicts)
            result = run_expectations_stage(ctx, images=images, urls=urls, license=licence)
            if engine == "spark":
                assert ctx.chat is None, "the driver never loaded the chat file"
        results[engine] = result
        docs[engine] = _docs_text(result.data_docs)
        if engine == "spark":
            raw = {p.name: p.read_text("utf-8") for p in folder.rglob("data-docs/**/*.html")}

    local, on_spark = results["local"], results["spark"]
    assert not local.success and on_spark.rows == local.rows == 40

    def named(result: Any) -> Counter[tuple[str, str, str]]:
        return Counter((f.code, f.severity, f.message) for f in result.findings)

    assert named(on_spark) == named(local)
    assert len(local.findings) >= 8, "the planted defects break rules"
    assert sorted(map(repr, on_spark.rules)) == sorted(map(repr, local.rules)), "nan as nan"
    broken = {r.column for r in local.rules if not r.success}
    assert {"id", "image", "first_from", "image_available", "url_alive"} <= broken
    assert {"license_verdict", "fingerprint"} <= broken
    assert docs["spark"].keys() == docs["local"].keys()
    assert any(JAVA_AS_PYTHON in page for page in raw.values()), "Spark's pages show the flags"
    for page, text in docs["local"].items():
        diff = difflib.unified_diff(text.splitlines(), docs["spark"][page].splitlines(), n=0)
        assert docs["spark"][page] == text, (page, "\n".join(list(diff)[:40]))


def _table(frame: Any, rows: int) -> Any:
    """The engine's own table over a hand-made frame (with no raw ids beside it)."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    from audit.engines.spark.expectation_table import SparkTable

    return SparkTable(frame.withColumn("_id", F.lit(None).cast("string")), rows, "generic")


def test_gx_on_spark_names_the_first_unexpected_rows_in_the_frames_order(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Contract (GX 1.x, not documented): with ``unexpected_index_column_names`` the Spark
    backend gives each example as a dict holding the index column, and takes the first
    unexpected rows of an ordered frame over many partitions, as pandas takes the first rows."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    from audit.probes.expectations import run_expectations

    suites = tmp_path / "suites"
    suites.mkdir()
    rule = {"column": "n_turns", "min_value": 1, "max_value": 9}
    suite = {"expectations": [{"type": "expect_column_values_to_be_between", "kwargs": rule}]}
    (suites / "generic.json").write_text(json.dumps(suite), encoding="utf-8")
    frame = spark.range(0, 3000, numPartitions=8).select(
        F.col("id").alias("index"), (F.col("id") % 3).alias("n_turns")
    )
    ordered = frame.orderBy(F.desc("index"))  # the first rows are the last indexes
    result = run_expectations(
        _table(ordered, 3000), "generic", suites_dir=suites, docs_dir=None, dataset="d"
    )
    (checked,) = result.rules
    assert checked.unexpected_count == 1000
    assert checked.examples == [2999 - 2 - 3 * n for n in range(5)]
    assert checked.example_values == [0] * 5


def test_sparks_regexes_mean_pythons_only_with_the_flags(spark: SparkSession) -> None:
    """Why the Spark engine prefixes each pattern with :data:`JAVA_AS_PYTHON`: Java judges
    these values otherwise than Python's ``re``, which the local engine's pandas uses."""
    values = ["\u0660" * 7 + "\u0661\u0665", "000000016\r", "000000017"]
    pattern = r"^\d{9}$"
    python = [re.search(pattern, v) is not None for v in values]
    frame = spark.createDataFrame([(v,) for v in values], "v string")

    def judged(regex: str) -> list[bool]:
        rows = frame.selectExpr(f"v rlike '{regex.replace(chr(92), chr(92) * 2)}' as ok").collect()
        return [row["ok"] for row in rows]

    assert python == [True, False, True]
    assert judged(pattern) != python
    assert judged(JAVA_AS_PYTHON + pattern) == python


def test_an_unreadable_chat_file_is_the_local_engines_one_line_and_exit_code(
    spark: SparkSession, tmp_path: Path
) -> None:
    """An executor that cannot read its unit sends the error back; the driver raises it."""
    raised = {}
    for engine in ("local", "spark"):
        folder = tmp_path / engine
        folder.mkdir()
        chat = folder / "chat.json"
        chat.write_text("not JSON at all", encoding="utf-8")
        with Store(folder / "state.sqlite") as store:
            ctx = _context(folder, chat, store, SPARK if engine == "spark" else None)
            with pytest.raises(AuditError) as caught:
                run_expectations_stage(ctx, images=None, urls=None, license=None)
        message = caught.value.message.replace(str(folder), "<folder>")
        raised[engine] = (message, caught.value.exit_code)
    assert raised["spark"] == raised["local"]
    assert "\n" not in raised["local"][0] and raised["local"][1] == 3


def test_repeated_values_on_spark_are_named_by_their_first_rows_as_locally(
    spark: SparkSession, tmp_path: Path
) -> None:
    """GX's Spark uniqueness check counts over a window partitioned by the value, which
    reorders the rows: the examples are taken again in record order, as pandas gives them."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    from audit.probes.expectations import run_expectations

    suites = tmp_path / "suites"
    suites.mkdir()
    rule = {"column": "id"}
    suite = {"expectations": [{"type": "expect_column_values_to_be_unique", "kwargs": rule}]}
    (suites / "generic.json").write_text(json.dumps(suite), encoding="utf-8")
    frame = spark.range(0, 3000, numPartitions=8).select(
        F.col("id").alias("index"), F.concat(F.lit("v"), F.col("id") % 1000).alias("id")
    )
    table = _table(frame.orderBy("index"), 3000)
    result = run_expectations(table, "generic", suites_dir=suites, docs_dir=None, dataset="d")
    (checked,) = result.rules
    assert checked.unexpected_count == 3000
    assert checked.examples == [0, 1, 2, 3, 4]
    assert checked.example_values == ["v0", "v1", "v2", "v3", "v4"]


def test_a_shard_sets_image_findings_land_on_their_own_rows_on_both_engines(
    spark: SparkSession, tmp_path: Path
) -> None:
    """The images stage names a set's shard (as the config gives the set) and the index in it:
    record 0 of each of the three shards is missing on both engines' tables (every shard's
    index 0 was once row 0 alone)."""
    unexpected = {}
    for engine in ("local", "spark"):
        folder = tmp_path / engine
        folder.mkdir()
        chat = folder / "chat"
        firsts = write_jsonl([_record(n) for n in range(30)], chat, 3)
        images = ImagesResult(
            dataset="lcs",
            file=str(chat),
            findings=[
                findings.make(Code.IMAGE_MISSING, "gone", dataset="lcs", file=name, index=0)
                for name in (str(Path(shard).relative_to(folder)) for shard in firsts)
            ],
        )
        with Store(folder / "state.sqlite") as store:
            ctx = _context(folder, chat, store, SPARK if engine == "spark" else None)
            ctx.upstream.record(StructureResult())
            result = run_expectations_stage(ctx, images=images, urls=None, license=None)
        rules = [r for r in result.rules if r.column == "image_available"]
        unexpected[engine] = {r.unexpected_count for r in rules}
    assert unexpected == {"local": {3}, "spark": {3}}
