"""Run history: one row per audit run, plus per-dataset figures for the trend charts.

The scheduler reads it to catch up a missed run; ``reports/index.html`` reads it for trends. A run
is recorded as ``running`` before any work starts and only becomes ``succeeded`` after its report is
published, so a kill at any point leaves it ``running`` (shown as interrupted, and marked failed by
the next run).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Literal

import msgspec

from audit.store import Store, register_migration, register_schema

RunStatus = Literal["running", "succeeded", "failed"]

register_schema(
    "runs",
    """
    CREATE TABLE IF NOT EXISTS runs (
        run_id    TEXT PRIMARY KEY,
        started   TEXT NOT NULL,
        finished  TEXT,
        status    TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
        trigger   TEXT NOT NULL DEFAULT 'manual',
        errors    INTEGER,
        warnings  INTEGER,
        records   INTEGER,
        report    TEXT,
        message   TEXT
    );
    CREATE INDEX IF NOT EXISTS runs_started ON runs (started);
    CREATE TABLE IF NOT EXISTS run_datasets (
        run_id       TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        dataset      TEXT NOT NULL,
        records      INTEGER,
        errors       INTEGER NOT NULL,
        warnings     INTEGER NOT NULL,
        missing_rate REAL,
        url_missing_rate REAL,
        PRIMARY KEY (run_id, dataset)
    );
    """,
)


#: What a run came to, as the run index shows it: the audit's own result (``passed``, ``errors``
#: found, ``incomplete`` when a stage could not run), overridden by a failed gate on it, or
#: ``failed``/``interrupted`` when it did not finish, ``running`` while it runs.
RunResult = Literal[
    "running", "passed", "errors", "incomplete", "gate failed", "failed", "interrupted"
]
AuditResult = Literal["passed", "errors", "incomplete"]

#: The audit's result and the gate's verdict per run. Created on first write rather than in the
#: versioned schema: an older llava-audit reading the file ignores it, and a file without it (an
#: older run) falls back to the errors count.
_OUTCOME_DDL = (
    "CREATE TABLE IF NOT EXISTS run_outcome ("
    " run_id TEXT PRIMARY KEY REFERENCES runs (run_id) ON DELETE CASCADE,"
    " audit TEXT, gate TEXT)"
)


class DatasetFigures(msgspec.Struct, frozen=True, kw_only=True):
    """One dataset's figures in one run (a point on the trend charts).

    The rates are :class:`audit.figures.Availability` ``unavailable_rate`` (missing + broken);
    the columns keep their first names (``missing_rate``, ``url_missing_rate``).
    """

    dataset: str
    records: int | None
    errors: int
    warnings: int
    unavailable_rate: float | None  # local images
    url_unavailable_rate: float | None = None  # source URLs


class RunRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the run history."""

    run_id: str
    started: datetime
    finished: datetime | None
    status: RunStatus
    trigger: str
    errors: int | None
    warnings: int | None
    records: int | None
    report: str | None  # published folder, relative to the reports dir
    message: str | None
    datasets: tuple[DatasetFigures, ...] = ()
    audit: AuditResult | None = None  # None: failed, running, or recorded by an older version
    gate: Literal["passed", "failed"] | None = None  # None: not gated

    @property
    def result(self) -> RunResult:
        """The one word the run index shows for this run."""
        if self.status == "running":
            return "running"
        if self.status == "failed":
            interrupted = (self.message or "").startswith(INTERRUPTED)
            return "interrupted" if interrupted else "failed"
        if self.gate == "failed":
            return "gate failed"
        return self.audit or ("errors" if self.errors else "passed")


def start_run(store: Store, run_id: str, started: datetime, *, trigger: str = "manual") -> None:
    """Record a run as ``running`` before it does any work."""
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO runs (run_id, started, status, trigger) VALUES (?, ?, 'running', ?)",
            (run_id, started.isoformat(), trigger),
        )


def finish_run(
    store: Store,
    run_id: str,
    *,
    finished: datetime,
    status: Literal["succeeded", "failed"],
    errors: int | None = None,
    warnings: int | None = None,
    records: int | None = None,
    report: str | None = None,
    message: str | None = None,
    datasets: list[DatasetFigures] | tuple[DatasetFigures, ...] = (),
    audit: AuditResult | None = None,
) -> None:
    """Close a run with its outcome and figures, in one transaction."""
    with store.transaction() as conn:
        if audit is not None:
            conn.execute(_OUTCOME_DDL)
            conn.execute(
                "INSERT INTO run_outcome (run_id, audit) VALUES (?, ?)"
                " ON CONFLICT (run_id) DO UPDATE SET audit = excluded.audit",
                (run_id, audit),
            )
        conn.execute(
            "UPDATE runs SET finished = ?, status = ?, errors = ?, warnings = ?, records = ?,"
            " report = ?, message = ? WHERE run_id = ?",
            (finished.isoformat(), status, errors, warnings, records, report, message, run_id),
        )
        conn.executemany(
            "INSERT OR REPLACE INTO run_datasets (run_id, dataset, records, errors, warnings,"
            " missing_rate, url_missing_rate) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run_id,
                    d.dataset,
                    d.records,
                    d.errors,
                    d.warnings,
                    d.unavailable_rate,
                    d.url_unavailable_rate,
                )
                for d in datasets
            ],
        )


#: The start of the message of a run a killed process left ``running``.
INTERRUPTED = "interrupted"


def record_gate(store: Store, run_id: str, *, passed: bool) -> None:
    """The gate's verdict on a run (the run index shows "gate failed" for it)."""
    with store.transaction() as conn:
        conn.execute(_OUTCOME_DDL)
        conn.execute(
            "INSERT INTO run_outcome (run_id, gate) VALUES (?, ?)"
            " ON CONFLICT (run_id) DO UPDATE SET gate = excluded.gate",
            (run_id, "passed" if passed else "failed"),
        )


def _outcomes(store: Store, ids: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """run_id -> (audit, gate) for those runs that have a row (none when the table is absent)."""
    exists = store.conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'run_outcome'"
    ).fetchone()
    if not exists or not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = store.conn.execute(
        f"SELECT run_id, audit, gate FROM run_outcome WHERE run_id IN ({marks})", ids
    )
    return {run_id: (audit, gate) for run_id, audit, gate in rows}


def fail_interrupted(store: Store, *, now: datetime, except_run: str | None = None) -> int:
    """Mark runs left ``running`` by a killed process as failed (call while holding the run lock)."""
    with store.transaction() as conn:
        cur = conn.execute(
            "UPDATE runs SET status = 'failed', finished = COALESCE(finished, ?),"
            " message = COALESCE(message, ?)"
            " WHERE status = 'running' AND run_id IS NOT ?",
            (
                now.isoformat(),
                f"{INTERRUPTED}: the process ended before the run finished",
                except_run,
            ),
        )
        return cur.rowcount


#: The note the run index shows for a run whose report folder retention deleted.
PRUNED_NOTE = "report deleted by retention (keep_runs, keep_mb)"


def mark_pruned(store: Store, run_ids: list[str]) -> None:
    """Forget the report folders retention is about to delete; the figures stay for the trends.

    Called before the folders go, so the index never links to a missing report.
    """
    if not run_ids:
        return
    marks = ",".join("?" * len(run_ids))
    with store.transaction() as conn:
        conn.execute(
            f"UPDATE runs SET report = NULL, message = COALESCE(message, ?) WHERE run_id IN ({marks})",
            (PRUNED_NOTE, *run_ids),
        )


def list_runs(store: Store, *, limit: int = 100) -> list[RunRecord]:
    """The newest ``limit`` runs, oldest first (the order trend charts draw them in)."""
    rows = store.conn.execute(
        "SELECT run_id, started, finished, status, trigger, errors, warnings, records, report,"
        " message FROM runs ORDER BY started DESC, run_id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    figures: dict[str, list[DatasetFigures]] = {}
    ids = [r[0] for r in rows]
    if ids:
        marks = ",".join("?" * len(ids))
        for run_id, *rest in store.conn.execute(
            "SELECT run_id, dataset, records, errors, warnings, missing_rate, url_missing_rate"
            " FROM run_datasets"
            f" WHERE run_id IN ({marks}) ORDER BY dataset",
            ids,
        ):
            figures.setdefault(run_id, []).append(
                DatasetFigures(
                    dataset=rest[0],
                    records=rest[1],
                    errors=rest[2],
                    warnings=rest[3],
                    unavailable_rate=rest[4],
                    url_unavailable_rate=rest[5],
                )
            )
    outcomes = _outcomes(store, ids)
    return [
        _record(row, figures.get(row[0], []), outcomes.get(str(row[0]), (None, None)))
        for row in reversed(rows)
    ]


def last_run(store: Store, *, status: RunStatus | None = None) -> RunRecord | None:
    """The most recently started run (optionally only with ``status``), for the scheduler."""
    sql = (
        "SELECT run_id, started, finished, status, trigger, errors, warnings, records, report,"
        " message FROM runs"
    )
    params: tuple[str, ...] = ()
    if status is not None:
        sql += " WHERE status = ?"
        params = (status,)
    row = store.conn.execute(sql + " ORDER BY started DESC, run_id DESC LIMIT 1", params).fetchone()
    if row is None:
        return None
    return _record(row, [], _outcomes(store, [row[0]]).get(row[0], (None, None)))


def _add_url_missing_rate(conn: sqlite3.Connection) -> None:
    """Schema 1: state files from before ``url_missing_rate`` existed get the column."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(run_datasets)")}
    if "url_missing_rate" not in columns:
        conn.execute("ALTER TABLE run_datasets ADD COLUMN url_missing_rate REAL")


register_migration(1, _add_url_missing_rate)


def _record(
    row: tuple[object, ...],
    datasets: list[DatasetFigures],
    outcome: tuple[str | None, str | None] = (None, None),
) -> RunRecord:
    return RunRecord(
        run_id=str(row[0]),
        started=datetime.fromisoformat(str(row[1])),
        finished=None if row[2] is None else datetime.fromisoformat(str(row[2])),
        status=row[3],  # type: ignore[arg-type]
        trigger=str(row[4]),
        errors=row[5],  # type: ignore[arg-type]
        warnings=row[6],  # type: ignore[arg-type]
        records=row[7],  # type: ignore[arg-type]
        report=row[8],  # type: ignore[arg-type]
        message=row[9],  # type: ignore[arg-type]
        datasets=tuple(datasets),
        audit=outcome[0],  # type: ignore[arg-type]
        gate=outcome[1],  # type: ignore[arg-type]
    )
