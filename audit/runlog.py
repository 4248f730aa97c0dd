"""The run's log (``reports/<run-id>/run.log``) and ``--debug``: what the audit logged, kept.

Every module logs under the ``audit`` logger; :func:`run_log` copies what is logged during a run
(stage start and end with timings, warnings, the traceback of a stage that crashed) into a file
published with the report, so a "failed" stage in the page can be explained the morning after.
:func:`debug_to_stderr` shows warnings and tracebacks on stderr as they happen (``--debug``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The run log's name inside the run folder.
LOG_FILE = "run.log"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def run_log(path: Path) -> Iterator[None]:
    """Everything the audit logs at INFO and above while the block runs, appended to ``path``."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    with _attached(handler, logging.INFO):
        yield


@contextmanager
def debug_to_stderr(enabled: bool) -> Iterator[None]:
    """With ``enabled``, the audit's warnings and stage tracebacks on stderr too."""
    if not enabled:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("llava-audit: %(levelname)s %(name)s: %(message)s"))
    with _attached(handler, logging.WARNING):
        yield


@contextmanager
def _attached(handler: logging.Handler, level: int) -> Iterator[None]:
    """``handler`` on the ``audit`` logger at ``level``, the logger lowered to pass it, then undone."""
    logger = logging.getLogger("audit")
    before = logger.level
    handler.setLevel(level)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)
        handler.close()
