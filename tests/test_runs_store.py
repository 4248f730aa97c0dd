"""Run history: what the scheduler and the trend charts rely on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from audit.store import Store, runs

T0 = datetime(2026, 11, 20, 2, 30, tzinfo=UTC)


def test_run_lifecycle_and_trend_order(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        for day in range(3):
            run_id = f"r{day}"
            runs.start_run(store, run_id, T0 + timedelta(days=day), trigger="schedule")
            runs.finish_run(
                store,
                run_id,
                finished=T0 + timedelta(days=day, minutes=5),
                status="succeeded",
                errors=10 - day,
                warnings=1,
                records=100,
                report=run_id,
                datasets=[
                    runs.DatasetFigures(
                        dataset="cc3m",
                        records=100,
                        errors=10 - day,
                        warnings=1,
                        unavailable_rate=0.1,
                    )
                ],
            )
        history = runs.list_runs(store, limit=2)
    assert [r.run_id for r in history] == ["r1", "r2"]  # newest two, oldest first
    assert history[-1].errors == 8 and history[-1].status == "succeeded"
    assert history[-1].datasets[0].unavailable_rate == 0.1


def test_killed_run_stays_running_then_is_failed_by_the_next(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        runs.start_run(store, "killed", T0)
        assert runs.last_run(store).status == "running"  # type: ignore[union-attr]
        assert runs.last_run(store, status="succeeded") is None
        runs.start_run(store, "next", T0 + timedelta(days=1))
        assert runs.fail_interrupted(store, now=T0 + timedelta(days=1), except_run="next") == 1
        by_id = {r.run_id: r for r in runs.list_runs(store)}
    assert by_id["killed"].status == "failed"
    assert "interrupted" in (by_id["killed"].message or "")
    assert by_id["next"].status == "running"


def test_state_files_from_before_url_rates_are_upgraded(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE run_datasets (run_id TEXT NOT NULL, dataset TEXT NOT NULL,"
            " records INTEGER, errors INTEGER NOT NULL, warnings INTEGER NOT NULL,"
            " missing_rate REAL, PRIMARY KEY (run_id, dataset))"
        )
    with Store(path) as store:
        runs.start_run(store, "r", T0)
        figures = runs.DatasetFigures(
            dataset="cc3m",
            records=1,
            errors=0,
            warnings=0,
            unavailable_rate=None,
            url_unavailable_rate=0.3,
        )
        runs.finish_run(store, "r", finished=T0, status="succeeded", datasets=[figures])
        (run,) = runs.list_runs(store)
    assert run.datasets[0].url_unavailable_rate == 0.3


def test_pruned_runs_lose_their_link_but_keep_their_figures(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        for day in range(3):
            run_id = f"r{day}"
            runs.start_run(store, run_id, T0 + timedelta(days=day))
            runs.finish_run(
                store,
                run_id,
                finished=T0 + timedelta(days=day, minutes=5),
                status="succeeded",
                errors=day,
                report=run_id,
                datasets=[
                    runs.DatasetFigures(
                        dataset="cc3m", records=1, errors=day, warnings=0, unavailable_rate=0.1
                    )
                ],
            )
        runs.mark_pruned(store, ["r0", "r1"])
        runs.mark_pruned(store, [])
        history = runs.list_runs(store)
    assert [(r.report, r.message) for r in history] == [
        (None, runs.PRUNED_NOTE),
        (None, runs.PRUNED_NOTE),
        ("r2", None),
    ]
    assert [r.errors for r in history] == [0, 1, 2]
    assert all(r.status == "succeeded" and r.datasets for r in history)
