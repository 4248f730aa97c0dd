"""Catalogue coverage: after a whole, passing test run, every catalogue code was made by some test.

Importing this module (tests/conftest.py does) points ``LLAVA_AUDIT_CODE_LOG`` at a fresh folder
before anything imports the package; :func:`audit.findings.make` then appends each code it makes
to ``<pid>.codes`` there, in every process: xdist workers, the structure and image pools, CLI
subprocesses. The controller reads the folder at the end, so the check holds under ``-n``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

ENV = "LLAVA_AUDIT_CODE_LOG"
_OWNED = ENV not in os.environ  # set by us (then removed at the end), not by the caller or xdist
if _OWNED:
    os.environ[ENV] = tempfile.mkdtemp(prefix="llava-audit-codes-")


def codes_made(folder: Path) -> set[str]:
    """Every code some process of this run made."""
    return {line for log in folder.glob("*.codes") for line in log.read_text().split()}


def _whole_suite(config: pytest.Config) -> bool:
    """Only a run of all of testpaths, unfiltered, can be asked to produce every code."""
    filtered = (
        config.getoption("keyword", "")
        or config.getoption("markexpr", "")
        or config.getoption("deselect", None)
        or config.getoption("lf", False)
    )
    return config.args_source is pytest.Config.ArgsSource.TESTPATHS and not filtered


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller checks
        return
    folder = Path(os.environ[ENV])
    try:
        if exitstatus == pytest.ExitCode.OK and _whole_suite(session.config):
            from audit.findings import CATALOGUE

            missing = sorted(set(CATALOGUE) - codes_made(folder))
            if missing:
                reporter = session.config.pluginmanager.get_plugin("terminalreporter")
                line = f"catalogue codes no test made: {', '.join(missing)}"
                if reporter is not None:
                    reporter.write_line(f"\n{line}", red=True)  # after the progress dots
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
    finally:
        if _OWNED:
            shutil.rmtree(folder, ignore_errors=True)
