"""Argument handling the command modules share, so every command treats them the same way.

Not a command itself (no ``register``): the CLI shell's discovery passes it over.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.text import Text

from audit import config as config_mod
from audit import findings as fnd
from audit.atomic import write_output
from audit.engines import ENGINES, choose
from audit.errors import UsageError
from audit.results import StageResult


def optional_config(path: str | None) -> config_mod.Config:
    """``--config`` when given, else the defaults (commands that also work on bare FILE args)."""
    return config_mod.load(path) if path else config_mod.Config()


def add_engine(parser: argparse.ArgumentParser) -> None:
    """``--engine`` and ``--master``: over ``[engine]`` in audit.toml (check, images, urls,
    license, run, gate)."""
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        help="where the per-record work runs: local process pools (default) or Spark "
        "(needs the spark extra: pip install 'llava-audit[spark]')",
    )
    parser.add_argument(
        "--master",
        metavar="URL",
        help="the Spark master (local[2], spark://host:7077, yarn); default: [engine] master, "
        "else what spark-submit gives, else local[<cores>]",
    )


def with_engine(config: config_mod.Config, args: argparse.Namespace) -> config_mod.Config:
    """``config`` with the command line's ``--engine``/``--master`` applied."""
    return choose(config, args.engine, args.master)


def add_debug(parser: argparse.ArgumentParser) -> None:
    """``--debug`` for the commands that run the audit (run, gate, demo)."""
    parser.add_argument(
        "--debug",
        action="store_true",
        help="print warnings and the traceback of a stage that crashed to stderr (they are "
        "always kept in reports/<run-id>/run.log)",
    )


def check_workers(command: str, workers: int | None) -> None:
    """``--workers`` is optional, but when given it must allow at least one worker."""
    if workers is not None and workers < 1:
        raise UsageError(f"{command}: --workers must be at least 1")


def write_findings(path: str | None, found: Iterable[fnd.Finding]) -> None:
    """``--findings OUT.jsonl``: every finding as JSON Lines (the DESIGN.md findings contract)."""
    if path:
        write_output(path, fnd.to_jsonl(found), "findings")


def add_findings_dir(parser: argparse.ArgumentParser) -> None:
    """``--findings-dir``: where ``--engine spark`` keeps a command's findings table."""
    parser.add_argument(
        "--findings-dir",
        metavar="DIR",
        help="--engine spark: keep the findings as Parquet (by dataset and code) in DIR, a folder "
        "the driver and every executor share (default: a temporary folder, removed at the end)",
    )


@contextmanager
def findings_folder(args: argparse.Namespace, stage: str) -> Iterator[str]:
    """``--findings-dir``, or a temporary folder kept while the command runs, for the tables of
    a command run on Spark (``stage`` names the table inside a temporary folder)."""
    if args.findings_dir is not None:
        yield args.findings_dir
        return
    with tempfile.TemporaryDirectory(prefix="llava-audit-findings-") as folder:
        yield str(Path(folder) / stage)


def write_all_findings(path: str | None, results: Iterable[StageResult]) -> None:
    """``--findings``: every finding of ``results``; for a stage run on Spark, read back from its
    Parquet table (the result holds only examples)."""
    if path:
        write_output(path, fnd.to_jsonl(f for r in results for f in _every(r)), "findings")


def _every(result: StageResult) -> Iterable[fnd.Finding]:
    totals = result.finding_totals
    if totals is None:
        return result.findings
    from audit.engines.spark.findingtable import read_back

    return read_back(totals) if totals.total else []


def error_line(message: str) -> Text:
    """``llava-audit: MESSAGE`` for stderr, the message as plain text (never read as markup, so
    ``[schedule]`` or ``[[datasets]]`` in it stays)."""
    return Text.assemble(("llava-audit:", "bold red"), " ", message)
