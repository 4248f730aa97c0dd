"""`llava-audit export`: the records safe to train on, the re-fetch list and the licences."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from audit import config as config_mod

if TYPE_CHECKING:
    from audit.export.exporter import Manifest

ORDER = 65


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write the records safe to train on (per dataset, in the input's layout), "
        "dropped.jsonl, refetch.parquet, LICENSES.md and manifest.json",
        description="Keep a record when no structure, image, licence or takedown error names it, "
        "its image is present and decodable, and its licence verdict allows training for "
        "--purpose. Reuses the last published run when inputs and settings are unchanged, "
        "else runs the audit first. Exit 0 exported, 2 usage or config error, 3 could not run.",
    )
    p.add_argument(
        "--config", default="audit.toml", metavar="audit.toml", help="config file (audit.toml)"
    )
    p.add_argument("--out", metavar="DIR", help="output folder (required unless --dry-run)")
    p.add_argument(
        "--purpose",
        choices=("research", "commercial"),
        help="what the subset is trained for (default: [use] purpose)",
    )
    p.add_argument(
        "--include-conditional",
        action="store_true",
        help="also keep records whose licence verdict is conditional",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the counts per reason; write nothing"
    )
    p.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from audit.errors import UsageError
    from audit.export.exporter import check_out_dir, export
    from audit.output.render.progress import RichProgress

    if args.out is None and not args.dry_run:
        raise UsageError("export: --out DIR is required (or --dry-run to count only)")
    config = config_mod.load(args.config)
    out = None if args.dry_run else Path(args.out)
    if out is not None:
        check_out_dir(config, out)
    console = Console(highlight=False)
    with RichProgress() as progress:
        manifest = export(
            config,
            out,
            purpose=args.purpose or config.use.purpose,
            include_conditional=args.include_conditional,
            config_file=str(args.config),
            progress=progress,
            note=lambda line: console.print(Text(line)),
        )
    _render(manifest, console, out)
    return 0


def _render(manifest: Manifest, console: Console, out: Path | None) -> None:
    table = Table(title=f"export for {manifest.config.purpose} training (run {manifest.run_id})")
    for column in ("dataset", "kept", "dropped", "re-fetchable", "gone for good"):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    for ds in manifest.datasets:
        table.add_row(
            Text(ds.name), f"{ds.kept:,}", f"{ds.dropped:,}", f"{ds.refetch:,}", f"{ds.gone:,}"
        )
    console.print(table)
    reasons = Table(title="dropped records per reason")
    reasons.add_column("reason")
    reasons.add_column("records", justify="right")
    for reason, n in sorted(manifest.reasons.items(), key=lambda kv: (-kv[1], kv[0])):
        reasons.add_row(Text(reason), f"{n:,}")
    console.print(reasons)
    if out is not None:
        console.print(Text(f"written: {out}/ (manifest.json, one folder per dataset)"))
