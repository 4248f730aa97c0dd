"""`init`, `run`, `serve` and `demo`: the audit as a service (DESIGN.md stages 6-7)."""

from __future__ import annotations

import argparse
import contextlib
from importlib import resources
from pathlib import Path

from rich.console import Console

from audit import config as config_mod
from audit.atomic import write_output
from audit.cli._common import add_debug, add_engine, with_engine
from audit.errors import AuditError, UsageError
from audit.loaders import regular_file
from audit.output import model as rpt
from audit.output.server import ReportServer
from audit.runlog import debug_to_stderr

ORDER = 60


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init",
        help="write a commented starter audit.toml",
        description="Write a starter audit.toml with every section, its defaults and what each "
        "key means, then edit its [[datasets]] entries. An existing file is kept unless --force.",
    )
    p.add_argument(
        "path", nargs="?", default="audit.toml", metavar="FILE", help="where to write (audit.toml)"
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(handler=_init)

    p = sub.add_parser(
        "run",
        help="audit every configured dataset and publish the report",
        description="Audit every [[datasets]] entry of audit.toml through every stage (structure, "
        "images, source URLs, licences, the takedown blocklist, expectations) and publish one "
        "report to reports/<run-id>/. Exit 0 passed, 1 errors found, 2 config error, 3 a stage "
        "or the run could not run.",
    )
    p.add_argument(
        "--config", default="audit.toml", metavar="audit.toml", help="config file (audit.toml)"
    )
    add_debug(p)
    add_engine(p)
    p.set_defaults(handler=_run)

    p = sub.add_parser(
        "serve",
        help="serve the published reports on localhost",
        description="Serve the reports folder on http://127.0.0.1:PORT/ (this machine only) until "
        "Ctrl-C. Exit 2 for a port outside 0-65535, 3 when the port cannot be opened.",
    )
    p.add_argument("--dir", default="reports", metavar="DIR", help="reports folder (reports)")
    p.add_argument(
        "--port", default="8000", metavar="PORT", help="port on 127.0.0.1 (8000; 0 picks one)"
    )
    p.set_defaults(handler=_serve)

    p = sub.add_parser(
        "demo",
        help="build a small dataset with known defects and run the full audit on it",
        description="Build three small datasets in the LLaVA layouts with defects planted on "
        "purpose, a local image host with dead links, run the full audit on them and print "
        "where the report is.",
    )
    p.add_argument("--dir", default="demo", metavar="DIR", help="folder to build it in (demo)")
    add_debug(p)
    p.set_defaults(handler=_demo)


def starter_config() -> str:
    """The commented template `init` writes (kept in ``audit/data/audit.example.toml``)."""
    return resources.files("audit").joinpath("data/audit.example.toml").read_text("utf-8")


def _init(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.exists():
        # --force replaces a file, never a FIFO, a device or a folder (renaming over /dev/zero)
        regular_file(path, "init target")
        if not args.force:
            raise UsageError(f"{path}: already exists (use --force to overwrite)")
    write_output(path, starter_config().encode("utf-8"), "starter config")
    Console(highlight=False).print(
        f"wrote {path}: edit the [[datasets]] entries, then `llava-audit run --config {path}`",
        markup=False,
        soft_wrap=True,  # never break the paths a user copies
    )
    return 0


def _exit_code(report: rpt.AuditReport) -> int:
    """3 when a stage could not run on some dataset, else 1 when errors were found, else 0.

    A stage that could not run (an empty or undecodable input) also gets the one error line on
    stderr every failure to run has, after the report: CI logs show why without the report.
    """
    failed = [
        f"{ds.name}/{name}: {run.note or 'failed'}"
        for ds in report.datasets
        for name, run in ds.stages.items()
        if run.status == "failed"
    ]
    if failed:
        raise AuditError(f"{len(failed)} stage(s) could not run: " + "; ".join(failed))
    return 1 if report.totals.errors else 0


def _run(args: argparse.Namespace) -> int:
    from audit.output.render.progress import RichProgress
    from audit.output.render.report_console import render_report
    from audit.runner import run_audit

    config = with_engine(config_mod.load(args.config), args)
    console = Console(highlight=False)
    with debug_to_stderr(args.debug), RichProgress() as progress:
        report = run_audit(config, progress=progress, config_file=str(args.config))
    published = config.path(config.reports_dir) / report.run_id
    render_report(report, console, published=published)
    return _exit_code(report)


def report_server(root: Path, port: int) -> ReportServer:
    """The report viewer for ``root`` bound to 127.0.0.1 only (reports are not for the LAN)."""
    if not root.is_dir():
        raise UsageError(f"{root}: no reports folder (run `llava-audit run` or `demo` first)")
    try:
        return ReportServer(root, port)
    except OSError as exc:
        raise AuditError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None


def parse_port(text: str) -> int:
    """``--port``: 0 (pick a free one) to 65535; anything else is a usage error, not a crash."""
    port = int(text) if text.isascii() and text.isdigit() else -1
    if not 0 <= port <= 65535:
        raise UsageError(f"serve: --port must be a number from 0 to 65535, not {text!r}")
    return port


def _serve(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    server = report_server(root, parse_port(args.port))
    with server:
        Console(highlight=False).print(
            f"serving {root} at http://127.0.0.1:{server.port}/ (Ctrl-C to stop)", markup=False
        )
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from audit.demo import run_demo
    from audit.output.render.progress import RichProgress
    from audit.output.render.report_console import render_report

    console = Console(highlight=False)
    with debug_to_stderr(args.debug), RichProgress() as progress:
        report, published = run_demo(Path(args.dir), progress=progress, console=console)
    render_report(report, console, published=published)
    code = _exit_code(report)  # a stage that could not run is exit 3, as for `run`
    console.print(
        f"The demo data has defects planted on purpose. Open {published / rpt.PAGE_FILE} in a "
        f"browser, or `llava-audit serve --dir {published.parent}`.",
        markup=False,
    )
    if code == 1:  # the errors are the planted ones: the demo worked
        console.print(
            f"exit 0: the {report.totals.errors:,} errors are the planted defects; `llava-audit "
            f"run --config {published.parent.parent / 'audit.toml'}` exits 1 on them.",
            markup=False,
        )
    return 0
