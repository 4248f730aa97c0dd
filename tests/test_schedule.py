"""The nightly schedule: crontab meaning, catch-up once, no overlap, clean stop, failure webhook."""

from __future__ import annotations

import http.server
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from httpserver import serving
from lcs_records import lcs_records
from lockholder import lock_held_elsewhere

from audit import config as config_mod
from audit.errors import ConfigError
from audit.models import Progress
from audit.output.model import AuditReport, new_run_id
from audit.runlock import lock_path_for
from audit.schedule import NightlyAudit, cron_trigger, crontab_weekdays, missed_fire_time
from audit.store import Store
from audit.store import runs as history

THURSDAY = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
WAIT = 30.0  # upper bound for anything a test waits on; never an assertion about speed


DATASET_TOML = '[[datasets]]\nname = "lcs"\nkind = "lcs-chat"\nchat = "lcs.json"\n'


def write_dataset(folder: Path) -> dict[str, str]:
    """A tiny clean LCS-558K-shaped chat file: the runner refuses a config without datasets."""
    (folder / "lcs.json").write_text(json.dumps(lcs_records(3)))
    return {"name": "lcs", "kind": "lcs-chat", "chat": "lcs.json"}


def make_config(tmp_path: Path, **schedule: Any) -> config_mod.Config:
    data = {
        "reports_dir": "reports",
        "state": "state/state.sqlite",
        "datasets": [write_dataset(tmp_path)],
        "schedule": {"cron": "0 3 * * *", **schedule},
    }
    return config_mod.parse(data, tmp_path)


def record_run(config: config_mod.Config, started: datetime, status: str = "succeeded") -> None:
    with Store(config.path(config.state)) as store:
        run_id = new_run_id(started)
        history.start_run(store, run_id, started, trigger="schedule")
        history.finish_run(store, run_id, finished=started, status=status)  # type: ignore[arg-type]


# ---- crontab meaning -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "names"),
    [
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("*/2", "sun,tue,thu,sat"),
        ("0-6", "sun,mon,tue,wed,thu,fri,sat"),
        ("6,7", "sat,sun"),
        ("sat,0", "sat,sun"),
        ("mon-fri", "mon-fri"),
        ("*", "*"),
    ],
)
def test_numeric_weekdays_mean_what_they_mean_in_crontab(field: str, names: str) -> None:
    assert crontab_weekdays(field) == names


def test_cron_macros_mean_what_crontab_says() -> None:
    weekly = cron_trigger("@weekly", "UTC").get_next_fire_time(None, THURSDAY)
    assert weekly is not None and weekly.strftime("%A %H:%M") == "Sunday 00:00"


def test_sunday_cron_fires_on_sunday_in_the_configured_time_zone() -> None:
    sunday = cron_trigger("0 3 * * 0", "UTC").get_next_fire_time(None, THURSDAY)
    assert sunday is not None and sunday.strftime("%A %H:%M") == "Sunday 03:00"
    berlin = cron_trigger("30 2 * * *", "Europe/Berlin").get_next_fire_time(None, THURSDAY)
    assert berlin is not None and berlin.astimezone(UTC).strftime("%H:%M") == "01:30"


@pytest.mark.parametrize(
    ("cron", "timezone", "message"),
    [
        ("0 3 * *", "UTC", "needs 5 fields"),
        ("0 3 1 * 1", "UTC", "not both"),
        ("0 3 * * 8", "UTC", "out of range"),
        ("0 3 * * x-y", "UTC", "x-y"),
        ("61 3 * * *", "UTC", "61"),
        ("0 3 * * *", "Mars/Olympus", "unknown time zone"),
    ],
)
def test_bad_schedule_is_a_config_error(cron: str, timezone: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cron_trigger(cron, timezone)


# ---- catch-up --------------------------------------------------------------------------------


def test_missed_fire_time_is_the_first_one_after_the_last_success() -> None:
    daily = cron_trigger("0 3 * * *", "UTC")
    assert missed_fire_time(daily, None, THURSDAY) is None, "fresh install: nothing missed"
    today = THURSDAY.replace(hour=3, minute=5)
    assert missed_fire_time(daily, today, THURSDAY) is None
    five_days = THURSDAY - timedelta(days=5)
    missed = missed_fire_time(daily, five_days, THURSDAY)
    assert missed == five_days.replace(hour=3, minute=0) + timedelta(days=1)


class FakeAudit:
    """Stands in for run_audit: records the run in the history like the runner does."""

    def __init__(self, config: config_mod.Config, *, fail: Exception | None = None) -> None:
        self.config = config
        self.fail = fail
        self.calls = 0
        self.ran = threading.Event()

    def __call__(self, progress: Progress) -> AuditReport:
        self.calls += 1
        self.ran.set()
        if self.fail is not None:
            raise self.fail
        now = datetime.now(UTC)
        record_run(self.config, now)
        return AuditReport(run_id=new_run_id(now), started=now, status="succeeded")


def serve_in_thread(nightly: NightlyAudit) -> threading.Thread:
    thread = threading.Thread(target=nightly.serve, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    return thread


def test_a_missed_run_is_caught_up_once_on_start_and_not_again(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    record_run(config, datetime.now(UTC) - timedelta(days=3))  # three nightly runs missed
    fake = FakeAudit(config)
    nightly = NightlyAudit(config, run=fake)
    assert nightly.catch_up_due() is not None
    thread = serve_in_thread(nightly)
    assert fake.ran.wait(WAIT), "the catch-up run did not start"
    nightly.stop()
    thread.join(WAIT)
    assert not thread.is_alive() and fake.calls == 1
    assert NightlyAudit(config, run=fake).catch_up_due() is None, "caught up: nothing missed now"


def test_no_catch_up_without_history_or_when_disabled(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    assert NightlyAudit(config).catch_up_due() is None
    record_run(config, datetime.now(UTC) - timedelta(days=3))
    assert NightlyAudit(make_config(tmp_path, catch_up=False)).catch_up_due() is None


# ---- overlap, stop, webhook ------------------------------------------------------------------


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as base:
        yield f"{base}/hook", received


def test_a_failed_run_posts_to_the_webhook(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    config = make_config(tmp_path, webhook=url)
    nightly = NightlyAudit(config, run=FakeAudit(config, fail=RuntimeError("disk full")))
    assert nightly.run_once() == "failed"
    (body,) = received
    assert body["event"] == "audit.failed" and "disk full" in body["message"]


def test_an_unreachable_webhook_is_logged_and_never_crashes_the_job(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path, webhook="http://127.0.0.1:9/hook", webhook_timeout_seconds=2)
    nightly = NightlyAudit(config, run=FakeAudit(config, fail=RuntimeError("boom")))
    with caplog.at_level(logging.WARNING, logger="audit.schedule"):
        assert nightly.run_once() == "failed"
    assert "webhook http://127.0.0.1:9/hook failed" in caplog.text


def test_an_audit_running_in_another_process_makes_the_scheduled_run_skip(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    config = make_config(tmp_path, webhook=url)
    lock = lock_path_for(config.path(config.state))
    with lock_held_elsewhere(lock, wait=WAIT) as holder:
        assert NightlyAudit(config).run_once() == "skipped"  # the real run_audit, refused
    with Store(config.path(config.state)) as store:
        (run,) = history.list_runs(store)
    assert run.status == "failed" and run.trigger == "schedule"
    assert run.message is not None and f"pid {holder.pid}" in run.message
    assert [b["event"] for b in received] == ["audit.skipped"]
    assert NightlyAudit(config).run_once() == "succeeded", "lock released: the next run goes"


def test_stop_during_a_run_stops_the_audit_at_its_next_progress_step(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    record_run(config, datetime.now(UTC) - timedelta(days=2))
    started, outcome = threading.Event(), []

    def endless_audit(progress: Progress) -> AuditReport:
        started.set()
        for _ in range(int(WAIT * 100)):  # bounded: 30 s at most
            progress.advance()
            time.sleep(0.01)
        raise AssertionError("the audit was not stopped")

    nightly = NightlyAudit(config, run=endless_audit)
    original = nightly.run_once
    nightly.run_once = lambda: outcome.append(original()) or outcome[-1]  # type: ignore[method-assign]
    thread = serve_in_thread(nightly)
    assert started.wait(WAIT)
    nightly.stop()
    thread.join(WAIT)
    assert not thread.is_alive() and outcome == ["stopped"]


def test_sigterm_stops_the_scheduler_process_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "audit.toml"
    config.write_text('state = "s/state.sqlite"\n[schedule]\ncron = "0 3 1 1 *"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "audit", "schedule", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    watchdog = threading.Timer(WAIT, proc.kill)  # a hung scheduler ends the read loop below
    watchdog.start()
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "scheduler started" in line:
                break
        assert "next run at" in lines[-1] and "-01-01T03:00:00" in lines[-1]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT) == 0
        lines += proc.stderr.readlines()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)
    text = "".join(lines)
    assert "SIGTERM received: stopping" in text and "scheduler stopped" in text
    assert "Traceback" not in text


def test_schedule_once_runs_one_audit_and_reports_its_outcome(tmp_path: Path) -> None:
    from audit.cli import main

    config = tmp_path / "audit.toml"
    write_dataset(tmp_path)
    config.write_text(f'state = "s/state.sqlite"\n{DATASET_TOML}[schedule]\ncron = "0 3 * * 0"\n')
    assert main(["schedule", "--once", "--config", str(config)]) == 0
    with Store(tmp_path / "s" / "state.sqlite") as store:
        (run,) = history.list_runs(store)
    assert run.trigger == "schedule" and run.status == "succeeded"
    config.write_text('[schedule]\ncron = "0 3 1 * 1"\n')
    assert main(["schedule", "--once", "--config", str(config)]) == 2
