"""Read a gate baseline: the findings of an earlier run, from whatever the user kept of it.

A CI job usually archives either the published run folder, its ``report.json`` (with
``findings.jsonl.gz``, or an older run's ``findings.jsonl``, beside it) or just a ``--findings``
JSON Lines file (plain or gzip-compressed); all of them work.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from audit.errors import ConfigError
from audit.findings import Finding, from_jsonl
from audit.output.model import (
    FINDINGS_FILE,
    AuditReport,
    findings_bytes,
    findings_path,
    from_files,
    read_report,
)


def load_baseline(path: str | Path) -> list[Finding]:
    """Findings of a run folder, a ``report.json`` (findings beside it) or a findings JSONL."""
    p = Path(path)
    try:
        if p.is_dir():
            return _all_findings(read_report(p), p)
        if p.name.endswith((".jsonl", ".jsonl.gz")):
            return from_jsonl(findings_bytes(p.read_bytes()))
        findings = findings_path(p.parent)
        if p.is_file() and not findings.is_file():
            raise ConfigError(
                f"{p}: a baseline report needs its {FINDINGS_FILE} beside it "
                f"(or pass the findings JSONL itself)"
            )
        return _all_findings(from_files(p.read_bytes(), findings.read_bytes()), p)
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc.filename or p}: baseline not found") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read baseline: {exc.strerror}") from None
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, EOFError) as exc:
        raise ConfigError(f"{p}: not a report or findings file: {exc}") from None


def _all_findings(report: AuditReport, path: Path) -> list[Finding]:
    """Every finding of a published run; a run audited on Spark kept only examples beside it."""
    if report.finding_tables():
        raise ConfigError(
            f"{path}: this run was audited with the spark engine, so its findings file holds only "
            f"examples (all are in Parquet tables): a baseline needs a run with --engine local"
        )
    return list(report.findings())
