"""Read a gate baseline: the findings of an earlier run, from whatever the user kept of it.

A CI job usually archives either the published run folder, its ``report.json`` (with
``findings.jsonl.gz``, or an older run's ``findings.jsonl``, beside it) or just a ``--findings``
JSON Lines file (plain or gzip-compressed); all of them work. A run audited on Spark kept only
examples beside its report: its findings are its Parquet tables, which the baseline names and
reads as keys and counts only (:meth:`Baseline.keys`), or a Spark gate joins on Spark.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import msgspec

from audit.errors import ConfigError, ProbeError
from audit.findings import Finding, from_jsonl
from audit.gate import FindingKey, finding_key
from audit.output.model import (
    FINDINGS_FILE,
    AuditReport,
    findings_bytes,
    findings_path,
    from_files,
    ordered_stages,
    read_report,
)


@dataclass(frozen=True)
class BaselineTable:
    """One stage's findings table of a baseline run audited on Spark, and its row count."""

    dataset: str
    location: Path
    total: int


@dataclass(frozen=True)
class Baseline:
    """An earlier run's findings: those held here, and the tables that hold the rest."""

    findings: list[Finding]
    tables: list[BaselineTable] = field(default_factory=list)

    def keys(self) -> Counter[FindingKey]:
        """:func:`audit.gate.finding_key` -> how many findings have it, over every finding
        (the tables are read column-wise, never as findings)."""
        counts = Counter(finding_key(f) for f in self.findings)
        for table in self.tables:
            counts.update(table_keys(table))
        return counts


def load_baseline(path: str | Path) -> Baseline:
    """Findings of a run folder, a ``report.json`` (findings beside it) or a findings JSONL."""
    p = Path(path)
    try:
        if p.is_dir():
            return _all_findings(read_report(p), p)
        if p.name.endswith((".jsonl", ".jsonl.gz")):
            return Baseline(from_jsonl(findings_bytes(p.read_bytes())))
        findings = findings_path(p.parent)
        if p.is_file() and not findings.is_file():
            raise ConfigError(
                f"{p}: a baseline report needs its {FINDINGS_FILE} beside it "
                f"(or pass the findings JSONL itself)"
            )
        return _all_findings(from_files(p.read_bytes(), findings.read_bytes()), p.parent)
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc.filename or p}: baseline not found") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read baseline: {exc.strerror}") from None
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, EOFError) as exc:
        raise ConfigError(f"{p}: not a report or findings file: {exc}") from None


def findings_table(location: str, run_dir: Path, dataset: str, stage: str) -> Path:
    """Where a baseline stage run on Spark keeps its findings table (a relative location is
    the run folder's); a table that is gone is refused, never read as no findings."""
    table = Path(location)
    table = table if table.is_absolute() else run_dir / table
    if not table.is_dir():
        raise ConfigError(
            f"{table}: the findings table of the baseline's {dataset} / {stage} is "
            "missing (a run audited on Spark is a baseline through its tables)"
        )
    return table


def _all_findings(report: AuditReport, run_dir: Path) -> Baseline:
    """Every finding of a published run: a stage run on Spark names its table instead (the
    findings beside the report are only its examples)."""
    findings: list[Finding] = []
    tables: list[BaselineTable] = []
    for ds in report.datasets:
        for name in ordered_stages(ds.stages):
            result = ds.stages[name].result
            totals = result.finding_totals if result is not None else None
            if result is None or (totals is not None and not totals.total):
                continue
            if totals is None:
                findings += result.findings
                continue
            table = findings_table(totals.location, run_dir, ds.name, name)
            tables.append(BaselineTable(ds.name, table, totals.total))
    return Baseline(findings, tables)


def table_keys(table: BaselineTable) -> Counter[FindingKey]:
    """The key counts of one findings table, read on this machine with polars: the key's
    columns are made and counted in the scan, only distinct keys come back."""
    import polars as pl

    where = (
        pl.when(pl.col("record_id").is_not_null())
        .then(pl.lit("id:") + pl.col("record_id"))
        .when(pl.col("index").is_not_null())
        .then(pl.lit("#") + pl.col("index").cast(pl.String))
        .otherwise(pl.col("message").str.split(";").list.first())
    )
    try:
        scan = pl.scan_parquet(
            table.location / "**" / "*.parquet",
            hive_partitioning=True,
            hive_schema={"dataset": pl.String, "code": pl.String},
        ).filter(pl.col("dataset") == table.dataset)
        grouped = (
            scan.group_by("file", "code", where.alias("where")).len().collect(engine="streaming")
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise ProbeError(
            f"{table.location}: the baseline's findings table could not be read "
            f"({type(exc).__name__})"
        ) from None
    counts: Counter[FindingKey] = Counter()
    for file, code, place, n in grouped.iter_rows():
        counts[(table.dataset, PurePath(file).name, code, place)] += n
    if counts.total() != table.total:
        raise ProbeError(
            f"{table.location}: the baseline's findings table is not all on this machine's "
            f"disk ({counts.total():,} of {table.total:,} findings); gate on a machine that "
            "sees the whole baseline run folder"
        )
    return counts
