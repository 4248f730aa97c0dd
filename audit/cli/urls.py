"""`urls`: probe the source URLs of metadata files or a CC-3M TSV (DESIGN.md stage 2, remote)."""

from __future__ import annotations

import argparse
from pathlib import Path

import msgspec
from rich.console import Console
from rich.markup import escape

from audit import engines, findings, preflight
from audit.cli._common import add_engine, optional_config, with_engine, write_findings
from audit.errors import UsageError
from audit.hints import dns_hint
from audit.results import UrlsResult

ORDER = 30


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "urls",
        help="probe source URLs (metadata files, CC-3M TSV): dead, blocked, placeholder, opt-out",
        description="Probe the `url` values of metadata files or a headerless CC-3M TSV "
        "(caption<TAB>url). Incremental: results are cached in the state store and re-probed "
        "after urls.ttl_days; a killed run resumes. Private and loopback addresses are refused "
        "unless allowed.",
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="metadata JSON/JSONL or TSV files")
    p.add_argument(
        "--config",
        metavar="audit.toml",
        help="URL limits, state path, and (without FILE) inputs",
    )
    p.add_argument(
        "--state", metavar="FILE", help="state store (default: from the config, .llava-audit/...)"
    )
    p.add_argument("--column", metavar="NAME", help="the field holding the URL (default url)")
    p.add_argument(
        "--allow-private",
        action="store_true",
        help="also probe private, loopback and link-local addresses (tests, intranet mirrors)",
    )
    p.add_argument("--findings", metavar="OUT.jsonl", help="write findings as JSON Lines")
    add_engine(p)
    p.set_defaults(handler=_urls)


def _urls(args: argparse.Namespace) -> int:
    from audit.output.render.progress import RichProgress
    from audit.probes.urls import UrlSource, audit_urls, sources_for

    config = with_engine(optional_config(args.config), args)
    settings = config.urls
    if args.allow_private:
        settings = msgspec.structs.replace(settings, allow_private=True)
    if args.files:
        sources = [UrlSource(Path(f).stem, f, args.column or "url") for f in args.files]
    else:
        if not args.config:
            raise UsageError("give FILE arguments or --config with datasets")
        sources = [s for ds in config.datasets for s in sources_for(config, ds)]
        if args.column:
            sources = [s._replace(column=args.column) for s in sources]
        if not sources:
            raise UsageError(f"{args.config}: no dataset has url_tsv or metadata")
    preflight.check(
        [preflight.file_input(config, s.path, "URL list", "dataset_mb") for s in sources]
        + [
            preflight.file_input(
                config, s.coco_annotations, "COCO annotation file", "annotations_mb"
            )
            for s in sources
            if s.coco_annotations
        ]
    )
    state = args.state or config.path(config.state)
    if engines.is_spark(config.engine):
        from audit.engines.spark.findingtable import read_back
        from audit.engines.spark.urls import audit_urls as on_spark

        tables = Path(state).parent / "spark-findings" / "urls-cli"  # replaced by the next run
        result = on_spark(sources, settings, state, config.engine, findings_dir=tables)
        totals = result.finding_totals  # every finding from the table, not the examples
        write_findings(args.findings, read_back(totals) if totals else result.findings)
    else:
        with RichProgress() as progress:
            result = audit_urls(sources, settings, state, progress=progress)
        write_findings(args.findings, result.findings)
    _render(result, Console(highlight=False))
    errors = findings.count_by_severity(result.findings)[findings.Severity.ERROR]
    return 1 if errors else 0


def _render(result: UrlsResult, console: Console) -> None:
    """One short block per file: counts, unavailable rate beside LLaVA's ~15%, statuses,
    domains."""
    for s in result.files or [result.totals]:
        fig = s.figures
        rate = fig.unavailable_rate
        shown = "n/a" if rate is None else f"[bold]{rate:.1%}[/]"
        console.print(
            f"[bold]{escape(s.file or 'urls')}[/]: {s.urls:,} URLs "
            f"({s.probed:,} probed, {s.cached:,} cached), unavailable {shown} "
            f"({fig.missing:,} missing, {fig.broken:,} broken; "
            "LLaVA documents ~15% for CC-3M; ~30% by 2024)"
        )
        counts = ", ".join(f"{k} {v:,}" for k, v in s.status_counts.items())
        console.print(f"  statuses: {counts or 'none'}")
        if s.worst_domains:
            shown = ", ".join(f"{d.domain} {d.unavailable}/{d.urls}" for d in s.worst_domains[:5])
            console.print(f"  worst domains: {escape(shown)}")
        if s.probed_per_second:
            console.print(f"  {s.probed_per_second:,.0f} URLs/s")
        hint = dns_hint(s.status_counts.get("dns", 0), s.referenced)
        if hint:
            console.print(f"  {hint}", markup=False, style="yellow")
    for p in result.placeholders:
        console.print(
            f"stand-in image: {p.label} answers {p.urls:,} URLs on {p.hosts:,} hosts "
            f"(url.placeholder), e.g. {', '.join(p.examples[:3])}",
            markup=False,
        )
