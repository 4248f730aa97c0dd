"""PySpark's worker daemon, saving coverage data after every task (tests only).

Spark's Python workers are forked from ``pyspark.daemon`` and, when the session stops, killed by
the SIGHUP the daemon sends them, so coverage (started in them by the ``subprocess`` patch) never
saves what the executor side of the engine ran. tests/conftest.py points
``spark.python.daemon.module`` here while coverage measures the suite: the same daemon, and each
finished task's data saved, so the floor in pyproject.toml counts executor code honestly.
"""

from __future__ import annotations

import socket

import coverage
from pyspark import daemon

_task = daemon.worker


def worker(sock: socket.socket, authenticated: bool) -> int:
    """Run one task as pyspark does, then save the coverage data measured so far."""
    try:
        return _task(sock, authenticated)
    finally:
        measuring = coverage.Coverage.current()
        if measuring is not None:
            measuring.save()


daemon.worker = worker

if __name__ == "__main__":
    daemon.manager()
