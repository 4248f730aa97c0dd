"""The nightly schedule (DESIGN.md stage 7): APScheduler 3.x in the foreground, for systemd or a container.

Traps handled here (spec/field-anchors.md §4.1): APScheduler's default ``misfire_grace_time`` is one
second, so a nightly run whose process was busy for a moment would be skipped silently (we use the
configured hours); ``from_crontab`` reads weekday 0 as Monday, crontab as Sunday (we translate
numeric weekdays to names); a run missed while the scheduler was down is not APScheduler's business
with an in-memory job store, so on start we compare the run history's last success with the last
fire time and run once if one was missed. Overlap is impossible twice over: ``max_instances=1`` in
this process and the run lock of :mod:`audit.runlock` across processes.

This is the only module that imports apscheduler.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_SCHEDULER_STARTED,
    JobEvent,
    SchedulerEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from audit.config import Config, ScheduleConfig
from audit.errors import AlreadyRunningError, ConfigError
from audit.models import NoProgress, Progress
from audit.output.model import AuditReport, new_run_id
from audit.store import Store
from audit.store import runs as history

log = logging.getLogger("audit.schedule")

JOB_ID = "nightly-audit"
TRIGGER = "schedule"
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering, 0 = Sunday

RunAudit = Callable[[Progress], AuditReport]
Notify = Callable[[str, dict[str, Any], float], None]


_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def cron_trigger(cron: str, timezone: str) -> CronTrigger:
    """A CronTrigger from a 5-field crontab line (or @daily etc.) with crontab's meaning."""
    fields = _MACROS.get(cron.strip().lower(), cron).split()
    if len(fields) != 5:
        raise ConfigError(
            f"[schedule] cron {cron!r}: needs 5 fields (minute hour day month weekday), "
            f"got {len(fields)}"
        )
    minute, hour, day, month, weekday = fields
    if day != "*" and weekday != "*":
        raise ConfigError(
            f"[schedule] cron {cron!r}: set day-of-month or weekday, not both (crontab runs when "
            f"either matches, APScheduler only when both do)"
        )
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"[schedule] timezone {timezone!r}: unknown time zone") from None
    try:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=crontab_weekdays(weekday),
            timezone=zone,
        )
    except ValueError as exc:
        raise ConfigError(f"[schedule] cron {cron!r}: {exc}") from None


def crontab_weekdays(field: str) -> str:
    """Translate numeric weekdays (crontab: 0 or 7 = Sunday) into names APScheduler reads right.

    APScheduler 3.x counts 0 = Monday, so "0 3 * * 0" would run on Mondays. Numbers, ranges and
    steps are expanded to the days they mean in crontab and written as names; name items pass
    through unchanged.
    """
    if field == "*":
        return field
    names: list[str] = []
    for item in field.lower().split(","):
        if any(c.isalpha() for c in item):
            names.append(item)
            continue
        names += [_WEEKDAYS[d] for d in _expand_weekdays(item, field)]
    return ",".join(dict.fromkeys(names))


def _expand_weekdays(item: str, field: str) -> list[int]:
    span, _, step_text = item.partition("/")
    try:
        step = int(step_text) if step_text else 1
        if span == "*":
            low, high = 0, 6
        elif "-" in span:
            low, high = (int(x) for x in span.split("-", 1))
        else:
            low = high = int(span)
            if step_text:
                high = 6
    except ValueError:
        raise ConfigError(f"[schedule] weekday field {field!r}: cannot read {item!r}") from None
    if not (0 <= low <= 7 and 0 <= high <= 7 and low <= high and step >= 1):
        raise ConfigError(
            f"[schedule] weekday field {field!r}: {item!r} is out of range (0-7, 0 and 7 = Sunday)"
        )
    return sorted({d % 7 for d in range(low, high + 1, step)})


def missed_fire_time(
    trigger: CronTrigger, last_success: datetime | None, now: datetime
) -> datetime | None:
    """The first fire time after the last successful run, if it has already passed.

    No successful run at all means nothing was missed yet (a fresh install waits for its first
    fire time). Several missed fire times still give one catch-up run.
    """
    if last_success is None:
        return None
    due = trigger.get_next_fire_time(None, last_success)
    return due if due is not None and due <= now else None


class NightlyAudit:
    """The scheduled job and the scheduler around it. ``run`` and ``notify`` are injectable."""

    def __init__(
        self,
        config: Config,
        *,
        config_file: str | None = None,
        run: RunAudit | None = None,
        notify: Notify | None = None,
    ) -> None:
        self.config = config
        self.settings: ScheduleConfig = config.schedule
        self.trigger = cron_trigger(self.settings.cron, self.settings.timezone)
        self._run = run or self._run_audit
        self._config_file = config_file
        self._notify = notify or post_webhook
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self.scheduler: BlockingScheduler | None = None

    # ---- one run ------------------------------------------------------------------------------

    def run_once(self) -> str:
        """One scheduled audit: never raises (a scheduler must outlive a bad night).

        Returns the outcome: ``succeeded``, ``errors`` (ran, found errors), ``failed``, ``skipped``
        (another audit held the lock) or ``stopped`` (SIGTERM during the run).
        """
        self._idle.clear()
        try:
            return self._guarded_run()
        finally:
            self._idle.set()

    def _guarded_run(self) -> str:
        log.info("scheduled audit starting")
        try:
            report = self._run(_StopAwareProgress(self._stopping))
        except AlreadyRunningError as exc:
            log.warning("scheduled audit skipped: %s", exc.message)
            self._record_skip(exc.message)
            return "skipped"
        except ShutdownRequested:
            log.warning("scheduled audit stopped by a shutdown signal; the last report stays")
            return "stopped"
        except Exception as exc:  # any failure: logged and notified, the scheduler keeps going
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            log.error("scheduled audit failed: %s", message)
            self._send("audit.failed", {"status": "failed", "message": message})
            return "failed"
        totals = report.totals
        log.info(
            "scheduled audit %s finished: %s, %d errors, %d warnings, %d stage(s) failed",
            report.run_id,
            report.status,
            totals.errors,
            totals.warnings,
            totals.stages_failed,
        )
        summary = {
            "run_id": report.run_id,
            "status": report.status,
            "errors": totals.errors,
            "warnings": totals.warnings,
            "stages_failed": totals.stages_failed,
            "report": str(self.config.path(self.config.reports_dir) / report.run_id),
        }
        if totals.stages_failed:
            self._send("audit.stage_failed", summary)
            return "failed"
        if totals.errors:
            if self.settings.notify_on_errors:
                self._send("audit.errors", summary)
            return "errors"
        return "succeeded"

    def _run_audit(self, progress: Progress) -> AuditReport:
        from audit.runner import run_audit

        return run_audit(
            self.config, progress=progress, trigger=TRIGGER, config_file=self._config_file
        )

    def _record_skip(self, why: str) -> None:
        """A fire time that could not run is still a line in the run history."""
        now = datetime.now(UTC)
        try:
            with Store(self.config.path(self.config.state)) as store:
                run_id = new_run_id(now)
                history.start_run(store, run_id, now, trigger=TRIGGER)
                history.finish_run(
                    store, run_id, finished=now, status="failed", message=f"skipped: {why}"
                )
        except Exception as exc:  # the history is best effort here; the skip is logged anyway
            log.warning("could not record the skipped run: %s", exc)
        self._send("audit.skipped", {"status": "skipped", "message": why})

    def _send(self, event: str, details: dict[str, Any]) -> None:
        url = self.settings.webhook
        if not url:
            return
        body = {"event": event, "host": socket.gethostname(), "time": _now_iso(), **details}
        try:
            self._notify(url, body, self.settings.webhook_timeout_seconds)
        except Exception as exc:  # a dead webhook must never take the scheduler down
            log.warning("webhook %s failed: %s", url, exc)

    # ---- the scheduler ------------------------------------------------------------------------

    def catch_up_due(self) -> datetime | None:
        """The missed fire time to catch up on start, or None (from the run history)."""
        if not self.settings.catch_up:
            return None
        with Store(self.config.path(self.config.state)) as store:
            last = history.last_run(store, status="succeeded")
        return missed_fire_time(self.trigger, last.started if last else None, datetime.now(UTC))

    def serve(self, *, handle_signals: bool = True) -> int:
        """Run until SIGTERM/SIGINT (or :meth:`stop`); returns the exit code (0 on a clean stop)."""
        logging.getLogger("apscheduler").setLevel(logging.CRITICAL)  # we log its events ourselves
        scheduler = BlockingScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": max(1, int(self.settings.misfire_grace_hours * 3600)),
            },
            timezone=self.trigger.timezone,
        )
        self.scheduler = scheduler
        missed = self.catch_up_due()
        start_now = {"next_run_time": datetime.now(UTC)} if missed else {}
        scheduler.add_job(self.run_once, self.trigger, id=JOB_ID, name=JOB_ID, **start_now)
        if missed:
            log.info("a run due at %s was missed: catching up once now", missed.isoformat())
        scheduler.add_listener(self._on_started, EVENT_SCHEDULER_STARTED)
        scheduler.add_listener(self._on_skipped, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
        scheduler.start()
        if not self._idle.is_set():
            log.info("waiting for the running audit to stop")
        self._idle.wait()
        log.info("scheduler stopped")
        return 0

    def stop(self) -> None:
        """Stop scheduling; a running audit stops at its next progress step. Thread-safe."""
        self._stopping.set()
        if self.scheduler is not None and self.scheduler.running:
            # From a helper thread: shutdown takes locks the interrupted main thread may hold.
            threading.Thread(target=self._shutdown, daemon=True).start()

    def _shutdown(self) -> None:
        try:
            if self.scheduler is not None:
                self.scheduler.shutdown(wait=False)
        except SchedulerNotRunningError:
            pass

    def _on_started(self, event: SchedulerEvent) -> None:
        if self._stopping.is_set():  # a signal came before the scheduler was running
            threading.Thread(target=self._shutdown, daemon=True).start()
            return
        job = self.scheduler.get_job(JOB_ID) if self.scheduler else None
        when = job.next_run_time.isoformat() if job and job.next_run_time else "never"
        log.info(
            "scheduler started (cron %r, %s); next run at %s",
            self.settings.cron,
            self.settings.timezone,
            when,
        )

    def _on_skipped(self, event: JobEvent) -> None:
        why = (
            "the previous run is still going"
            if event.code == EVENT_JOB_MAX_INSTANCES
            else "it is later than misfire_grace_hours"
        )
        log.warning("run due at %s skipped: %s", event.scheduled_run_time, why)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping.is_set():
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(128 + signum)  # the runner is kill-safe: the last report stays published
        log.info("%s received: stopping", signal.Signals(signum).name)
        self.stop()


class ShutdownRequested(BaseException):
    """Raised inside a running audit at a progress step once a stop was asked for.

    A BaseException so stage code that records ``Exception`` as a failed stage and carries on
    lets it through; the runner records the run as failed and publishes nothing.
    """

    def __init__(self) -> None:
        super().__init__("stopped by a shutdown signal before the run finished")


class _StopAwareProgress(NoProgress):
    def __init__(self, stopping: threading.Event) -> None:
        self._stopping = stopping

    def start(self, label: str, total: int | None) -> None:
        self._check()

    def advance(self, n: int = 1) -> None:
        self._check()

    def _check(self) -> None:
        if self._stopping.is_set():
            raise ShutdownRequested


def post_webhook(url: str, body: dict[str, Any], timeout: float) -> None:
    """POST ``body`` as JSON; a non-2xx answer is an error for the caller to log."""
    import requests

    response = requests.post(url, json=body, timeout=timeout)
    response.raise_for_status()


def _now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()
