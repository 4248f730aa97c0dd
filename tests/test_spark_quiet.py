"""A Spark command writes to stderr only what the user should read: no JVM or Spark start-up
lines (the incubator-module warning, Spark's "Setting default log level" notice), while what
the JVM's Python workers write there still gets through."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# each test starts a JVM of its own in a fresh process: the start-up lines come only once
pytestmark = [pytest.mark.spark, pytest.mark.timeout(600)]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("pyspark")
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_SUBMIT_ARGS"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=540
    )


def test_a_spark_check_of_a_tiny_file_prints_nothing_on_stderr(tmp_path: Path) -> None:
    conversation = [{"from": "human", "value": "<image>\nhi"}, {"from": "gpt", "value": "ok"}]
    record = {"id": "1", "image": "a.jpg", "conversations": conversation}
    (tmp_path / "chat.json").write_text(json.dumps([record]))
    done = _run(
        ["-m", "audit", "check", "chat.json", "--engine", "spark", "--master", "local[1]"],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "1 records" in done.stdout


WORKER = """
import sys
from audit.config import EngineConfig
from audit.engines.spark.session import session

def speak(batches):
    sys.stderr.write("a worker's own line\\n")
    sys.stderr.flush()
    yield from batches

spark = session(EngineConfig(name="spark", master="local[1]"))
spark.range(1, numPartitions=1).mapInArrow(speak, "id long").collect()
spark.stop()
"""


def test_what_the_workers_write_on_stderr_still_gets_through(tmp_path: Path) -> None:
    done = _run(["-c", WORKER], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "a worker's own line\n"
