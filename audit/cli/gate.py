"""`llava-audit gate`: the pre-training gate for CI (DESIGN.md use case 2)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from audit import config as config_mod
from audit import preflight
from audit.cli._common import add_debug, add_engine, with_engine
from audit.errors import AuditError, ConfigError
from audit.loaders import Input
from audit.output.model import REPORT_FILE, findings_path

if TYPE_CHECKING:
    from collections.abc import Mapping

    from audit.gate import FindingKey, GateResult, RuleOutcome, Tally
    from audit.output.baseline import Baseline
    from audit.output.model import AuditReport

ORDER = 70
_SHOWN_EXAMPLES = 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gate",
        help="run the audit (or read a report) and pass or fail it against the [gate] thresholds",
        description="Exit 0 passed, 1 gate failed, 2 usage or config error, 3 the audit could "
        "not run (or a stage could not run, so the gate cannot vouch for the data).",
    )
    p.add_argument(
        "--config", default="audit.toml", metavar="audit.toml", help="config file (audit.toml)"
    )
    p.add_argument(
        "--report",
        metavar="RUN",
        help="gate this published run (folder or its report.json) instead of running the audit",
    )
    p.add_argument(
        "--baseline",
        metavar="RUN",
        help="earlier run folder, report.json or findings JSONL: only new findings count "
        "(default: [gate] baseline)",
    )
    p.add_argument("--junit", metavar="OUT.xml", help="write JUnit XML (a test case per rule)")
    p.add_argument("--json", metavar="OUT.json", help="write the gate result as JSON")
    add_debug(p)
    add_engine(p)
    p.set_defaults(handler=_gate)


def _gate(args: argparse.Namespace) -> int:
    from audit.gate import check_config, evaluate, not_run
    from audit.output.baseline import load_baseline

    config = _config(args)
    check_config(config.gate)
    preflight.check(
        _run_files(config, args.report, "report") + _run_files(config, args.baseline, "baseline")
    )
    baseline_path = args.baseline or (
        str(config.path(config.gate.baseline)) if config.gate.baseline else None
    )
    baseline = load_baseline(baseline_path) if baseline_path else None  # before a long audit
    new, allowed = None, None
    try:
        report = _report(args, config)
        if baseline is not None and report.finding_tables():  # matched where the findings are
            new = _new_on_spark(args, config, report, baseline)
        elif baseline is not None:  # a Spark run's tables are read as key counts only
            allowed = baseline.keys()
    except AuditError as exc:  # CI still gets its JUnit and JSON files, saying why
        _publish(args, not_run(exc.message))
        raise
    matched: Mapping[FindingKey, int] | None = {} if new is not None else allowed
    result = evaluate(report, config.gate, baseline=matched, baseline_name=baseline_path, new=new)
    if not args.report:  # the run this gate audited: the run index shows the verdict
        from audit.runner import record_gate

        record_gate(config, report.run_id, passed=result.passed)
    _publish(args, result)
    cannot_vouch = [r for r in result.rules if not r.passed and r.rule in ("run", "stages")]
    if cannot_vouch:  # exit 3 with the one error line every failure to run has
        raise AuditError("; ".join(f"{r.dataset or 'run'}: {r.reason}" for r in cannot_vouch))
    return 0 if result.passed else 1


def _new_on_spark(
    args: argparse.Namespace,
    config: config_mod.Config,
    report: AuditReport,
    baseline: Baseline,
) -> dict[str, Tally]:
    """The new findings of a run audited on Spark, by a join on Spark (its tables hold them)."""
    from audit.engines.spark.baselines import new_tallies
    from audit.runner import relative_name

    if args.report:
        folder = Path(args.report)
        run_dir = folder.parent if folder.is_file() else folder
    else:
        run_dir = config.path(config.reports_dir) / report.run_id
    return new_tallies(
        report,
        run_dir,
        baseline,
        config.engine,
        file_name=lambda file: relative_name(file, config.base_dir),
    )


def _publish(args: argparse.Namespace, result: GateResult) -> None:
    from audit.atomic import write_output
    from audit.output.render.junit import to_json, to_junit_xml

    if args.junit:
        write_output(args.junit, to_junit_xml(result), "JUnit report")
    if args.json:
        write_output(args.json, to_json(result), "gate result")
    _summary(result, Console(highlight=False))


def _config(args: argparse.Namespace) -> config_mod.Config:
    """Gating a saved report needs only the thresholds: defaults when there is no config file."""
    if args.report and args.config == "audit.toml" and not Path(args.config).exists():
        return with_engine(config_mod.Config(), args)
    return with_engine(config_mod.load(args.config), args)


def _run_files(config: config_mod.Config, run: str | None, what: str) -> list[Input]:
    """The files a published run (folder, report.json or findings JSONL) is read from.

    Only those that exist: a missing one is the reader's config error, as before.
    """
    if not run:
        return []
    p = Path(run)
    if p.is_dir():
        files = [p / REPORT_FILE, findings_path(p)]
    elif p.name.endswith((".jsonl", ".jsonl.gz")):
        files = [p]
    else:
        files = [p, findings_path(p.parent)]
    return [
        preflight.file_input(config, f, f"{what} file", "dataset_mb")
        for f in files
        if f.is_symlink() or f.exists()
    ]


def _report(args: argparse.Namespace, config: config_mod.Config) -> AuditReport:
    from audit.output.model import read_report

    if args.report:
        folder = Path(args.report)
        folder = folder.parent if folder.is_file() else folder
        try:
            return read_report(folder)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{args.report}: cannot read the report: {exc}") from None
    from audit.output.render.progress import RichProgress
    from audit.runlog import debug_to_stderr
    from audit.runner import run_audit

    if not config.datasets:
        raise ConfigError(
            f"{args.config}: no [[datasets]] configured: the gate has nothing to check"
        )

    try:
        with debug_to_stderr(args.debug), RichProgress() as progress:
            return run_audit(config, progress=progress, trigger="gate", config_file=args.config)
    except AuditError:
        raise
    except Exception as exc:  # the runner recorded the run as failed; one line, not a traceback
        raise AuditError(f"the audit could not run: {type(exc).__name__}: {exc}") from None


def _summary(result: GateResult, console: Console) -> None:
    """One screen: failing rules with their reasons and examples, passing datasets folded."""
    failures = result.failures
    verdict = (
        Text("GATE PASSED", style="bold green")
        if result.passed
        else Text("GATE FAILED", style="bold red")
    )
    verdict.append(f"  run {result.run_id or '(none)'}", style="dim")
    if result.baseline:
        verdict.append(f"  (new findings only, baseline {result.baseline})", style="dim")
    console.print(verdict)
    table = Table(show_header=True, header_style="bold", expand=False)
    for column in ("dataset", "rule", "result"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason", overflow="fold")
    by_dataset: dict[str | None, list[RuleOutcome]] = {}
    for rule in result.rules:
        by_dataset.setdefault(rule.dataset, []).append(rule)
    for dataset, rules in by_dataset.items():
        name = Text(dataset or "(run)")
        failed = [r for r in rules if not r.passed]
        if not failed and dataset is not None:
            table.add_row(
                name,
                Text("all"),
                Text("pass", style="green"),
                Text(f"{len(rules)} rules: " + ", ".join(r.rule for r in rules)),
            )
        for rule in failed:
            table.add_row(name, Text(rule.rule), Text("FAIL", style="bold red"), Text(rule.reason))
    console.print(table)
    for rule in failures:
        for example in rule.examples[:_SHOWN_EXAMPLES]:
            console.print(
                Text(f"  {rule.dataset} / {rule.rule}: {example}"),
                overflow="ellipsis",
                no_wrap=True,
            )
    console.print(
        f"{len(result.rules) - len(failures)} of {len(result.rules)} rules passed", style="dim"
    )
