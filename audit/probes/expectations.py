"""Stage 5: the user-editable expectation suites, run with Great Expectations 1.x.

The suites in ``expectations/<kind>.json`` are GX's own suite JSON, so users edit them with GX's
documentation at hand; this module loads one, runs it on the per-record table
(:func:`audit.probes.record_table.record_table`) and turns every failed expectation into one finding
that names the rule, the column, how many rows broke it and example record indexes.

This is the only module that imports great_expectations, and only inside functions: the import costs
3-4 s (spec/field-anchors.md §1.1) and must not slow down `llava-audit --help` or `check`.

On the Spark engine the table is a Spark DataFrame (:class:`FrameTable`) and the suite runs
through GX's Spark datasource, so GX computes its metrics in Spark; the record index is a column
there (``index``), named to GX as the unexpected-index column, so the findings name the same
example records as the local engine's.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from audit import findings
from audit.engines import without_pyspark
from audit.errors import ConfigError, ProbeError
from audit.findings import Code, Finding, Severity
from audit.probes import expectation_cache
from audit.probes.expectation_rules import (
    INDEX_COLUMN,
    FrameTable,
    as_local,
    example_ids,
    failure_message,
    first_line,
    is_pandas,
    label,
    regex_for_spark,
    rule_result,
)
from audit.results import ExpectationsResult

if TYPE_CHECKING:
    import pandas

FALLBACK_KIND = "generic"
DOCS_SITE = "llava_audit"
_EXAMPLES = 5
_SEVERITY = {"critical": Severity.ERROR, "warning": Severity.WARNING, "info": Severity.INFO}
#: Table columns whose values come from our own vocabulary, never from the dataset's text.
_OUR_VOCABULARY = frozenset(
    {"id_type", "n_turns", "image_token_count", "fingerprint", "image_status", "image_available"}
    | {"url_status", "url_alive", "license_verdict"}
)

#: Whether pyspark was imported when GX was: GX wires its Spark datasource only then.
_GX_SAW_SPARK: list[bool] = []

#: One GX context per Data Docs folder, reused for every dataset of a run, so the site's index
#: lists them all; only the latest folder is kept (a long-running scheduler must not accumulate).
_CONTEXT: dict[str, Any] = {}


def markup_safe(column: str, value: Any) -> Any:
    """One cell as :func:`_markup_safe` leaves it (the Spark engine makes its table a row at a
    time): text of a column not of our vocabulary HTML-escaped, which leaves clean text as is."""
    if column in _OUR_VOCABULARY or not isinstance(value, str):
        return value
    return html.escape(value)


def default_suites_dir(base_dir: str | Path | None = None) -> Path:
    """The suites a run uses: ``<config folder>/expectations`` if the user has one, else ours."""
    if base_dir is not None and (own := Path(base_dir) / "expectations").is_dir():
        return own
    return Path(__file__).resolve().parents[2] / "expectations"


def load_suite(suites_dir: str | Path, kind: str) -> tuple[Path, dict[str, Any]]:
    """The suite JSON for ``kind`` (``generic.json`` when the kind has none), checked for shape."""
    folder = Path(suites_dir)
    path = folder / f"{kind}.json"
    if not path.is_file():
        path = folder / f"{FALLBACK_KIND}.json"
    try:
        suite = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no expectation suite for kind {kind!r}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read expectation suite: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}:{exc.lineno}:{exc.colno}: invalid JSON in expectation suite: {exc.msg}"
        ) from None
    if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list):
        raise ConfigError(f"{path}: a suite is an object with an 'expectations' list")
    for number, item in enumerate(suite["expectations"], 1):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise ConfigError(f"{path}: expectation #{number} needs a 'type' string")
        if item.get("severity", "critical") not in _SEVERITY:
            raise ConfigError(
                f"{path}: expectation #{number} ({item['type']}): severity must be one of "
                f"{', '.join(_SEVERITY)}"
            )
    return path, suite


def run_expectations(
    table: pandas.DataFrame | FrameTable,
    kind: str,
    *,
    suites_dir: str | Path,
    docs_dir: str | Path | None,
    dataset: str,
    file: str = "",
    cache_dir: str | Path | None = None,
    assets_dir: str | Path | None = None,
) -> ExpectationsResult:
    """Validate one dataset's table against its kind's suite; build Data Docs into ``docs_dir``.

    Failed expectations become ``expectation.failed`` findings with the suite's severity
    (critical = error, warning, info); an expectation GX could not evaluate (a column the table
    lacks, a bad argument) becomes ``expectation.invalid``, so a typo in an edited suite is loud.
    With ``cache_dir`` (a folder beside the state store) an unchanged table under an unchanged
    suite reuses the previous result and Data Docs pages without importing GX. With
    ``assets_dir`` (the reports folder's shared copy of the pages' scripts and styles,
    :mod:`audit.webassets`) the pages link there instead of CDNs. A Spark table
    (:class:`FrameTable`) is validated in Spark and never cached (hashing it would read it all).
    """
    suite_path, suite_json = load_suite(suites_dir, kind)
    docs = Path(docs_dir) if docs_dir is not None else None
    assets = Path(assets_dir) if assets_dir is not None and docs is not None else None
    if cache_dir is None or not is_pandas(table):
        return _validate(table, kind, suite_path, suite_json, (docs, assets), dataset, file)
    cache, name = Path(cache_dir), gx_name(dataset)
    suite_bytes = json.dumps(suite_json, sort_keys=True).encode("utf-8")
    link = os.path.relpath(assets, docs) if assets is not None and docs is not None else ""
    key = expectation_cache.cache_key(
        table, suite_bytes, kind=kind, dataset=dataset, file=file, assets=link
    )
    cached = expectation_cache.load(cache, name, key)
    if cached is not None:
        restored = docs is not None and expectation_cache.restore_docs(cache, name, docs)
        return msgspec.structs.replace(
            cached, cached=True, data_docs=str(docs / "index.html") if docs and restored else None
        )
    result = _validate(table, kind, suite_path, suite_json, (docs, assets), dataset, file)
    expectation_cache.save(cache, name, key, result, docs)
    return result


def _validate(
    table: pandas.DataFrame | FrameTable,
    kind: str,
    suite_path: Path,
    suite_json: dict[str, Any],
    folders: tuple[Path | None, Path | None],
    dataset: str,
    file: str,
) -> ExpectationsResult:
    docs_dir, assets_dir = folders  # the Data Docs folder; the shared assets its pages link
    spark = not is_pandas(table)
    frame = table.validated() if not is_pandas(table) else _markup_safe(table)
    gx_result = _run_checkpoint(
        frame, suite_path, suite_json, dataset=dataset, docs_dir=docs_dir, spark=spark
    )
    if docs_dir is not None and assets_dir is not None:
        expectation_cache.offline_pages(docs_dir, assets_dir)
    produced: list[Finding] = []
    rules = [rule_result(result) for result in gx_result]
    if not is_pandas(table):
        rules = [as_local(rule, table) for rule in rules]
    ids = example_ids(table, [i for rule in rules if not rule.success for i in rule.examples])
    for rule in rules:
        if rule.success:
            continue
        if rule.invalid:
            message = f"{label(rule)} could not be evaluated: {rule.invalid}"
            produced.append(
                findings.make(Code.EXPECTATION_INVALID, message, dataset=dataset, file=file)
            )
            continue
        produced.append(
            findings.make(
                Code.EXPECTATION_FAILED,
                failure_message(rule, ids),
                dataset=dataset,
                file=file,
                severity=_SEVERITY[rule.severity],
            )
        )
    docs_index = docs_dir / "index.html" if docs_dir is not None else None
    return ExpectationsResult(
        findings=produced,
        suite=str(suite_path),
        kind=kind,
        rows=len(table) if is_pandas(table) else table.rows,
        evaluated=len(rules),
        failed=sum(not r.success for r in rules),
        success=all(r.success for r in rules),
        data_docs=str(docs_index) if docs_index and docs_index.is_file() else None,
        rules=rules,
    )


def _markup_safe(table: pandas.DataFrame) -> pandas.DataFrame:
    """The table with HTML-escaped text, because Data Docs insert example values unescaped.

    GX writes unexpected values into its HTML pages as they are, so a dataset id like
    ``<script>...`` would run in the reader's browser. Escaping leaves every well-formed LLaVA
    id, path and role unchanged (no ``<>&'"`` in them) and is one-to-one, so patterns, sets and
    uniqueness judge the same rows; example values are unescaped again for the findings.
    """
    escaped = {}
    for name in table.columns:
        if name in _OUR_VOCABULARY:
            continue
        column = table[name]
        try:
            needs = column.str.contains(r"[<>&'\"]", regex=True, na=False)
        except AttributeError:  # not a text column
            continue
        if needs.any():
            escaped[name] = column.mask(needs, column[needs].map(html.escape))
    return table.assign(**escaped) if escaped else table


def _run_checkpoint(
    table: Any,
    suite_path: Path,
    suite_json: dict[str, Any],
    *,
    dataset: str,
    docs_dir: str | Path | None,
    spark: bool,
) -> list[Any]:
    """Run the suite through a GX 1.x Checkpoint on a pandas or (``spark``) a Spark DataFrame;
    returns GX's per-expectation results."""
    gx = _gx()
    if spark and not _GX_SAW_SPARK[0]:
        raise ProbeError(
            f"expectations for {dataset}: Great Expectations was loaded before Spark in this "
            "process, so it cannot validate on Spark; run the audit in a new process"
        )
    context = _context(docs_dir)
    name = gx_name(dataset)
    try:
        suite = gx.ExpectationSuite(
            name=name,
            expectations=(regex_for_spark if spark else list)(suite_json["expectations"]),
            meta={**suite_json.get("meta", {}), "suite_file": str(suite_path)},
        )
    except Exception as exc:  # GX raises pydantic and its own errors for a bad suite
        raise ConfigError(f"{suite_path}: invalid expectation suite: {first_line(exc)}") from None
    try:
        suite = context.suites.add_or_update(suite)
        sources = context.data_sources
        add = sources.add_or_update_spark if spark else sources.add_or_update_pandas
        source = add(name=f"source_{name}")
        batch = source.add_dataframe_asset(name="records").add_batch_definition_whole_dataframe(
            "whole"
        )
        validation = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
        actions: list[Any] = []
        if docs_dir is not None:
            actions.append(
                gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE])
            )
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=f"audit_{name}",
                validation_definitions=[validation],
                actions=actions,
                result_format=_result_format(spark),
            )
        )
        outcome = checkpoint.run(batch_parameters={"dataframe": table})
    except Exception as exc:  # anything GX throws here means the stage could not run at all
        raise ProbeError(f"expectations for {dataset}: {first_line(exc)}") from None
    finally:  # the kept context must not hold a big table until the next run
        with contextlib.suppress(Exception):
            context.data_sources.delete(f"source_{name}")
    return [r for run in outcome.run_results.values() for r in run.results]


def _gx() -> Any:
    """great_expectations, imported once; notes whether it could see pyspark then."""
    with without_pyspark():
        import great_expectations as gx
    if not _GX_SAW_SPARK:
        _GX_SAW_SPARK.append("pyspark" in sys.modules)
    return gx


def _result_format(spark: bool) -> dict[str, Any]:
    """GX's SUMMARY with our number of examples; on Spark (no row index) the examples are
    named by the table's :data:`INDEX_COLUMN`."""
    summary: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": _EXAMPLES}
    if spark:
        summary["unexpected_index_column_names"] = [INDEX_COLUMN]
    return summary


def gx_name(dataset: str) -> str:
    """The dataset's name as GX uses it in suite names and Data Docs paths."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset).strip(".") or "dataset"


def cached_docs(cache_dir: Path, dataset: str, docs_dir: Path) -> expectation_cache.DataDocs:
    """The dataset's Data Docs pages as the expectations cache keeps them (a reused result's)."""
    return expectation_cache.DataDocs(cache_dir, gx_name(dataset), docs_dir)


def gx_version() -> str:
    """The installed Great Expectations version, without importing it (part of cache keys)."""
    return expectation_cache.gx_version()


def _context(docs_dir: str | Path | None) -> Any:
    """An ephemeral GX context, quiet (no progress bars, no log noise), with our Data Docs site."""
    key = str(Path(docs_dir).resolve()) if docs_dir is not None else ""
    if key in _CONTEXT:
        return _CONTEXT[key]
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.CRITICAL)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if docs_dir is not None:
        Path(key).mkdir(parents=True, exist_ok=True)
        context.add_data_docs_site(
            site_name=DOCS_SITE,
            site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": key + "/",
                },
            },
        )
    _CONTEXT.clear()
    _CONTEXT[key] = context
    return context
