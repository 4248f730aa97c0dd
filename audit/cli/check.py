"""`check`: the structural audit of LLaVA conversation and metadata files, no config needed."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import msgspec
from rich.console import Console

from audit.cli._common import (
    add_engine,
    check_workers,
    error_line,
    optional_config,
    with_engine,
    write_findings,
)
from audit.errors import InputError, UsageError
from audit.findings import Severity
from audit.loaders import refuse
from audit.loaders.records import KINDS
from audit.results import StructureResult

ORDER = 10


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="structural audit of conversation and metadata files (what would crash or be "
        "silently dropped by LLaVA's trainer)",
        description="Check LLaVA JSON files record by record against the rules of the LLaVA "
        "trainer and releases. A chat file and its metadata file given together are also "
        "cross-checked. Exit 0: no errors; 1: errors found; 3: a file could not be audited.",
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="FILE",
        help="JSON (or JSON Lines) files, or shard sets: a folder or glob of .jsonl, .jsonl.gz "
        "or .parquet shards",
    )
    p.add_argument(
        "--kind",
        choices=KINDS,
        help="dataset kind (detected from most records and the file name when omitted)",
    )
    p.add_argument(
        "--dataset", metavar="NAME", help="dataset name written into findings (default: file name)"
    )
    p.add_argument("--findings", metavar="OUT.jsonl", help="write every finding as JSON Lines")
    p.add_argument(
        "--findings-dir",
        metavar="DIR",
        help="--engine spark: keep the findings as Parquet (by dataset and code) in DIR, a folder "
        "the driver and every executor share (default: a temporary folder, removed at the end)",
    )
    p.add_argument("--json", action="store_true", help="print a machine-readable summary instead")
    p.add_argument(
        "--workers", type=int, metavar="N", help="worker processes (default: one per core)"
    )
    p.add_argument(
        "--config", metavar="audit.toml", help="take the [limits] file size caps from it"
    )
    add_engine(p)
    p.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from audit.output.render.console import render_findings
    from audit.output.render.progress import RichProgress
    from audit.structure import check_files

    check_workers("check", args.workers)
    config = with_engine(optional_config(args.config), args)
    if args.findings_dir is not None and config.engine.name != "spark":
        raise UsageError("--findings-dir applies to the spark engine only (add --engine spark)")
    max_bytes = config.limits.bytes("dataset_mb")
    paths = [Path(p) for p in args.paths]
    refuse(_not_json(paths, max_bytes))
    kinds = _kinds(paths, args.kind)
    console = Console(highlight=False)
    if not args.json:
        _print_kinds(console, kinds, args.kind)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    spark = config.engine.name == "spark"
    with _findings_folder(args.findings_dir, spark) as findings_dir, RichProgress(err) as progress:
        result = check_files(
            paths,
            kind=args.kind,
            dataset=args.dataset,
            progress=progress,
            workers=args.workers,
            max_bytes=max_bytes,
            engine=config.engine,
            findings_dir=findings_dir,
        )
        _write_findings(args.findings, result)
    unreadable = result.unreadable
    counts = result.finding_counts()
    errors = sum(n for (_, severity), n in counts.items() if severity is Severity.ERROR)
    exit_code = 3 if unreadable else (1 if errors else 0)
    audited = sum(f.records for f in result.files.values())
    if args.json:
        summary = {
            "exit_code": exit_code,
            "records": audited,
            **_summary(counts),
            "unreadable": unreadable,
            "files": _with_kinds(msgspec.to_builtins(result.files), kinds),
        }
        sys.stdout.write(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    else:
        render_findings(console, result.findings, title="Structure findings", counts=counts)
        console.print(f"{audited:,} records in {len(args.paths)} file(s) checked", markup=False)
    for message in unreadable:
        err.print(error_line(message))
    return exit_code


@contextmanager
def _findings_folder(given: str | None, spark: bool) -> Iterator[str | None]:
    """Where the spark engine writes the findings table: ``--findings-dir``, or a temporary
    folder kept only while the command runs (the local engine needs none)."""
    if given is not None or not spark:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="llava-audit-findings-") as folder:
        yield str(Path(folder) / "structure")


def _write_findings(path: str | None, result: StructureResult) -> None:
    """``--findings``: the findings, or on Spark all of them read back from the table."""
    if path is None or result.finding_totals is None:
        write_findings(path, result.findings)
        return
    from audit.engines.spark.findingtable import read_back

    write_findings(path, read_back(result.finding_totals))


def _summary(counts: Mapping[tuple[str, Severity], int]) -> dict[str, dict[str, int]]:
    """Counts per severity and per code (``--json``), from every finding on either engine."""
    by_code: Counter[str] = Counter()
    for (code, _), n in counts.items():
        by_code[code] += n
    return {
        "by_severity": {
            s.value: sum(n for (_, sev), n in counts.items() if sev is s) for s in Severity
        },
        "by_code": dict(sorted(by_code.items())),
    }


def _not_json(paths: list[Path], max_bytes: int) -> list[InputError]:
    """What each path is when it cannot be a LLaVA JSON file (missing, a folder, an image, a zip)
    or a set of shards (a folder or glob of JSON Lines or Parquet), so those are said first, in
    one line, before any work."""
    from audit.loaders.shards import expand, is_shard_set
    from audit.loaders.sniff import json_file

    problems = []
    for path in paths:
        try:
            if is_shard_set(path):
                expand(path, max_bytes)
            else:
                json_file(path, "file", max_bytes, "dataset_mb")
        except InputError as exc:
            problems.append(exc)
    return problems


def _kinds(paths: list[Path], forced: str | None) -> dict[str, tuple[str, str | None]]:
    """Each file's kind as the audit will use it, and why it is a guess when it is one."""
    from audit.structure import plan

    tasks = plan(paths, forced, None)[0]
    planned = {task.path if task.shard is None else task.shard.source: task.kind for task in tasks}
    kinds: dict[str, tuple[str, str | None]] = {}
    for path in map(str, paths):
        kind = planned.get(path, "generic")
        kinds[path] = (kind, None if kind == forced else _kind_note(path))
    return kinds


def _kind_note(path: str) -> str | None:
    """Why a file's (or a shard set's: its first shard's) detected kind is only a guess."""
    from audit.loaders.kindguess import guess_kind
    from audit.loaders.shardread import shard_kind
    from audit.loaders.shards import expand, is_shard_set

    if is_shard_set(path):
        return shard_kind(expand(path)[0], "").note
    return guess_kind(Path(path)).note


def _print_kinds(
    console: Console, kinds: dict[str, tuple[str, str | None]], forced: str | None
) -> None:
    """The first line: every file's kind; then a line for each kind that is only a guess."""
    parts = [
        f"{kind} ({Path(path).name}, {'from --kind' if kind == forced else 'detected'})"
        for path, (kind, _) in kinds.items()
    ]
    label = "Kind" if len(parts) == 1 else "Kinds"
    console.print(f"{label}: {', '.join(parts)}", markup=False, soft_wrap=True)
    for path, (kind, note) in kinds.items():
        if note is not None:
            console.print(
                f"{Path(path).name}: {kind} is a guess: {note}; pass --kind to choose",
                markup=False,
                soft_wrap=True,
                style="yellow",
            )


def _with_kinds(
    files: dict[str, dict[str, object]], kinds: dict[str, tuple[str, str | None]]
) -> dict[str, dict[str, object]]:
    """``check --json``'s per-file statistics with each file's kind (and why it is a guess)."""
    for path, (kind, note) in kinds.items():
        entry = files.setdefault(path, {})
        entry["kind"] = kind
        if note is not None:
            entry["kind_note"] = note
    return files
