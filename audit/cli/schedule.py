"""`llava-audit schedule`: the nightly audit in the foreground (systemd, a container, or cron)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from audit import config as config_mod

ORDER = 80
_EXIT = {"succeeded": 0, "errors": 1, "failed": 3, "skipped": 3, "stopped": 3}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "schedule",
        help="run the audit on the [schedule] cron in the foreground (stop with SIGTERM)",
        description="Runs `run` on the cron expression and time zone of [schedule], catching up "
        "once on start if a run was missed while it was down, never two audits at once (also "
        "across processes), each run in the run history, failures POSTed to the webhook.",
    )
    p.add_argument(
        "--config", default="audit.toml", metavar="audit.toml", help="config file (audit.toml)"
    )
    p.add_argument(
        "--once",
        action="store_true",
        help="run one scheduled audit now and exit (for cron or a systemd timer); exit 0 "
        "passed, 1 errors found, 3 failed or another audit was running",
    )
    p.set_defaults(handler=_schedule)


def _schedule(args: argparse.Namespace) -> int:
    from audit.schedule import NightlyAudit

    config = config_mod.load(args.config)
    nightly = NightlyAudit(config, config_file=args.config)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        stream=sys.stderr,
    )
    if not args.once:
        return nightly.serve()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: nightly.stop())
    return _EXIT[nightly.run_once()]
