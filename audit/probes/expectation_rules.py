"""Great Expectations' results as our data: one :class:`RuleResult` per expectation, the
failure message of a finding, and what makes the Spark engine's results read as the local
engine's (examples named by the table's index column, missing values as pandas holds them).

It reads GX's result objects by their documented fields and never imports GX itself.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

import msgspec

from audit.probes.record_table import NUMBER_COLUMNS, RECORD_COLUMNS
from audit.results import RuleResult

if TYPE_CHECKING:
    import pandas

#: The Spark table's record-index column (GX's ``unexpected_index_column_names``).
INDEX_COLUMN = "index"
#: Java regex flags that make a pattern mean on Spark what it means to Python's ``re`` (GX's
#: pandas backend): UNIX_LINES (``$`` and ``.`` know only ``\n`` as a line end, not ``\r``,
#: ``\u0085``, ``\u2028``) and UNICODE_CHARACTER_CLASS (``\d``, ``\w``, ``\s`` and ``\b``
#: take any script's digits and letters, as for a Python text pattern).
JAVA_AS_PYTHON = "(?dU)"
_UNIQUE = "expect_column_values_to_be_unique"


class FrameTable(Protocol):
    """The per-record table as a Spark DataFrame (audit.engines.spark.expectation_table)."""

    rows: int

    def validated(self) -> Any:
        """The DataFrame GX validates: the table's columns and :data:`INDEX_COLUMN`."""
        ...

    def ids_at(self, indexes: Sequence[int]) -> dict[int, str | None]:
        """The raw record ids of a few rows."""
        ...

    def has_values(self, column: str) -> bool:
        """Whether any row holds a value in ``column``."""
        ...

    def first_repeated(self, column: str, count: int) -> list[tuple[int, Any]]:
        """The first rows by index (index, value) whose value another row holds too."""
        ...


def is_pandas(table: object) -> TypeGuard[pandas.DataFrame]:
    """A pandas table (the local engine's), not a :class:`FrameTable`."""
    return not hasattr(table, "validated")


def rule_result(result: Any) -> RuleResult:
    """One GX result as typed, JSON-able data (kept in the stage result for the report)."""
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    detail = result.result or {}
    severity = getattr(config.severity, "value", config.severity) or "critical"
    plain = _jsonable(
        {
            "type": config.type,
            "column": kwargs.get("column"),
            "kwargs": kwargs,
            "severity": severity,
            "success": bool(result.success),
            "observed": detail.get("observed_value"),
            "element_count": detail.get("element_count"),
            "unexpected_count": detail.get("unexpected_count"),
            "unexpected_percent": detail.get("unexpected_percent"),
            "examples": [
                _example_index(i) for i in detail.get("partial_unexpected_index_list") or []
            ],
            "example_values": [
                html.unescape(v) if isinstance(v, str) else v
                for v in detail.get("partial_unexpected_list") or []
            ],
            "invalid": None if result.success else _exception(result.exception_info),
        }
    )
    return msgspec.convert(plain, RuleResult)


def _example_index(entry: Any) -> Any:
    """A row index as pandas gives it, or on Spark the ``{"index": ..., <column>: ...}`` GX
    gives for an unexpected-index column."""
    return entry[INDEX_COLUMN] if isinstance(entry, dict) else entry


def _exception(info: Any) -> str | None:
    """GX reports a failed metric either flat or keyed by metric id; find the first message."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return first_line(info.get("exception_message") or "exception")
    for value in info.values():
        if isinstance(value, dict) and (found := _exception(value)):
            return found
    return None


def label(rule: RuleResult) -> str:
    column = f" on column {rule.column!r}" if rule.column else ""
    return f"{rule.type}{column}"


def failure_message(rule: RuleResult, ids: Mapping[int, str | None]) -> str:
    expected = ", ".join(f"{k}={v!r}" for k, v in rule.kwargs.items() if k not in ("column",))
    parts = [f"{label(rule)} failed ({expected})"]
    if rule.unexpected_count is not None:
        percent = rule.unexpected_percent
        share = f", {percent:.1f}% of non-null values" if percent is not None else ""
        parts.append(f"{rule.unexpected_count} of {rule.element_count} rows unexpected{share}")
    elif rule.observed is not None:
        parts.append(f"observed {rule.observed!r}")
    if rule.examples:
        shown = []
        for index, value in zip(rule.examples, rule.example_values, strict=False):
            record_id = ids.get(index)
            named = isinstance(record_id, str) and rule.column != "id"
            row = f"#{index}" + (f" (id {record_id})" if named else "")
            shown.append(f"{row}: {value!r}")
        parts.append("e.g. " + "; ".join(shown))
    return "; ".join(parts)


def _jsonable(value: Any) -> Any:
    """numpy scalars and sets out of GX results, so the stats survive report.json."""
    return json.loads(json.dumps(value, default=_plain))


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, set | frozenset | tuple):
        return sorted(value, key=repr)
    return str(value)


def first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def regex_for_spark(expectations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The suite's expectations with each pattern (``regex``, ``regex_list``) prefixed by
    :data:`JAVA_AS_PYTHON`, so Spark's Java regexes judge as pandas' Python ones."""
    out = []
    for item in expectations:
        kwargs = item.get("kwargs")
        if isinstance(kwargs, dict) and "regex" in str(item.get("type")):
            kwargs = dict(kwargs)
            if isinstance(kwargs.get("regex"), str):
                kwargs["regex"] = JAVA_AS_PYTHON + kwargs["regex"]
            if isinstance(kwargs.get("regex_list"), list):
                kwargs["regex_list"] = [
                    JAVA_AS_PYTHON + r if isinstance(r, str) else r for r in kwargs["regex_list"]
                ]
            item = {**item, "kwargs": kwargs}
        out.append(item)
    return out


def as_local(rule: RuleResult, table: FrameTable) -> RuleResult:
    """A Spark rule as the local engine's: the suite's own patterns (without
    :data:`JAVA_AS_PYTHON`) and the missing example values as the local engine's pandas table
    holds them (in a text column with any text pandas' own missing value, NaN on pandas 3)."""
    kwargs = {key: _unprefixed(value) for key, value in rule.kwargs.items()}
    if kwargs != rule.kwargs:
        rule = msgspec.structs.replace(rule, kwargs=kwargs)
    if rule.type == _UNIQUE and rule.examples and rule.column:
        # GX's Spark check counts over a window partitioned by the value, so its first
        # unexpected rows are in the window's order: taken again in record order
        first = table.first_repeated(rule.column, len(rule.examples))
        values = [html.unescape(v) if isinstance(v, str) else v for _, v in first]
        rule = msgspec.structs.replace(rule, examples=[i for i, _ in first], example_values=values)
    if None not in rule.example_values or rule.column not in RECORD_COLUMNS - NUMBER_COLUMNS:
        return rule
    import pandas

    missing = pandas.Series(["text", None]).iloc[1]
    if missing is None or not table.has_values(rule.column):
        return rule
    values = [missing if v is None else v for v in rule.example_values]
    return msgspec.structs.replace(rule, example_values=values)


def _unprefixed(value: Any) -> Any:
    if isinstance(value, list):
        return [_unprefixed(v) for v in value]
    return value.removeprefix(JAVA_AS_PYTHON) if isinstance(value, str) else value


def example_ids(
    table: pandas.DataFrame | FrameTable, indexes: Sequence[int]
) -> dict[int, str | None]:
    """The raw id of each example row the findings name."""
    if not is_pandas(table):
        return table.ids_at(sorted(set(indexes)))
    if "id" not in table.columns:
        return {}
    ids = table["id"]
    return {i: ids.iloc[i] for i in indexes if 0 <= i < len(ids)}
