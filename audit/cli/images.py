"""`images`: which of the records' images exist under the image roots, and which would break training."""

from __future__ import annotations

import argparse
from pathlib import Path

import msgspec
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from audit import config as config_mod
from audit import engines, preflight
from audit.cli._common import (
    add_engine,
    check_workers,
    optional_config,
    with_engine,
    write_findings,
)
from audit.errors import UsageError
from audit.findings import Finding, Severity
from audit.hints import missing_images_hint
from audit.results import ImagesResult

ORDER = 20
_EXAMPLES = 3  # records shown per finding code


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "images",
        help="probe the records' local images (folders or zips): missing, empty, corrupt, truncated",
        description="Resolve each record's `image` under the roots (folders or zip files, first "
        "match wins) and check it at the chosen level; results are cached in the state store so "
        "a re-run only checks what changed. Exit 1 when a record's image would break training.",
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="conversation files (JSON array)")
    p.add_argument(
        "--root",
        action="append",
        default=[],
        metavar="DIR_OR_ZIP",
        help="image folder or zip (repeatable; searched in order)",
    )
    p.add_argument(
        "--level",
        choices=("exists", "header", "decode"),
        help="exists: file present and non-empty; header: opens as an image (default); "
        "decode: whole stream decoded, the only check that catches truncated files",
    )
    p.add_argument("--kind", choices=config_mod.KINDS, help="file kind (detected when omitted)")
    p.add_argument("--findings", metavar="OUT.jsonl", help="write findings as JSON Lines")
    p.add_argument("--state", metavar="FILE", help="state store (default: the config's `state`)")
    p.add_argument("--no-cache", action="store_true", help="probe everything, record nothing")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (default 2)")
    p.add_argument("--config", metavar="audit.toml", help="take datasets and settings from it")
    p.add_argument(
        "--dataset", action="append", default=[], metavar="NAME", help="configured dataset to probe"
    )
    add_engine(p)
    p.set_defaults(handler=_images)


def _images(args: argparse.Namespace) -> int:
    from audit.output.render.progress import RichProgress
    from audit.probes.images import gc_paused, probe_dataset, probe_images
    from audit.store import Store

    config = with_engine(optional_config(args.config), args)
    if args.files and not args.root:
        raise UsageError("images: give the image folder or zip with --root")
    if not args.files and not args.config:
        raise UsageError("images: give conversation FILEs and --root, or --config")
    check_workers("images", args.workers)
    chosen = [] if args.files else _datasets(config, args.dataset)
    preflight.check(
        [preflight.file_input(config, f, "conversation file", "dataset_mb") for f in args.files]
        + [i for ds in chosen for i in preflight.dataset_inputs(config, ds, ("chat",))],
        roots=args.root + [config.path(r) for ds in chosen for r in ds.images],
    )
    settings = config.images
    level = args.level or settings.level
    workers = args.workers or settings.workers
    state = Path(args.state) if args.state else config.path(config.state)
    if engines.is_spark(config.engine):
        return _finish(args, _on_spark(args, config, chosen, level, state))
    store = None if args.no_cache else Store(state)
    results: list[ImagesResult] = []
    try:
        with RichProgress() as progress:
            if args.files:
                from audit.loaders.records import image_refs

                for file in args.files:
                    with gc_paused():  # refs are built and freed inside: nothing left to walk
                        result = probe_images(
                            image_refs(Path(file), args.kind),
                            args.root,
                            level=level,
                            store=store,
                            dataset=Path(file).stem,
                            file=file,
                            workers=workers,
                            progress=progress,
                            max_pixels=settings.max_pixels,
                        )
                    results.append(result)
            else:
                for ds in chosen:
                    overrides = msgspec.structs.replace(settings, level=level, workers=workers)
                    cfg = msgspec.structs.replace(config, images=overrides)
                    results.append(
                        probe_dataset(ds, cfg, store=store, progress=progress, report_paths=True)
                    )
    finally:
        if store is not None:
            store.close()
    return _finish(args, results)


def _finish(args: argparse.Namespace, results: list[ImagesResult]) -> int:
    found = [f for r in results for f in r.findings]
    tables = [r.finding_totals for r in results if r.finding_totals is not None]
    if tables and args.findings:  # Spark: every finding from the tables, not the examples
        from audit.engines.spark.findingtable import read_back

        write_findings(args.findings, (f for t in tables for f in read_back(t)))
    else:
        write_findings(args.findings, found)
    _render(results, found, Console(highlight=False))
    return 1 if any(f.severity == Severity.ERROR for f in found) else 0


def _on_spark(
    args: argparse.Namespace,
    config: config_mod.Config,
    chosen: list[config_mod.DatasetConfig],
    level: str,
    state: Path,
) -> list[ImagesResult]:
    """The same probes on Spark; each file's findings table in ``spark-findings/images-cli/N``
    beside the state store (replaced by the next command)."""
    from audit.engines.spark import images as on_spark
    from audit.loaders.records import image_refs

    tables = state.parent / "spark-findings" / "images-cli"
    settings = msgspec.structs.replace(config.images, level=level)
    if args.files:
        return [
            on_spark.probe_images(
                image_refs(Path(file), args.kind),
                args.root,
                state,
                config.engine,
                level=level,
                dataset=Path(file).stem,
                file=file,
                max_pixels=settings.max_pixels,
                use_cache=not args.no_cache,
                findings_dir=tables / str(n),
            )
            for n, file in enumerate(args.files)
        ]
    cfg = msgspec.structs.replace(config, images=settings, state=str(state))
    return [
        on_spark.probe_dataset(  # executors read the chat file's references
            ds,
            cfg,
            report_paths=True,
            use_cache=not args.no_cache,
            findings_dir=tables / str(n),
        )
        for n, ds in enumerate(chosen)
        if ds.chat
    ]


def _datasets(config: config_mod.Config, names: list[str]) -> list[config_mod.DatasetConfig]:
    chosen = [config.dataset(n) for n in names] if names else config.datasets
    usable = [ds for ds in chosen if ds.chat and ds.images]
    if not usable:
        raise UsageError("images: no configured dataset has both `chat` and `images`")
    return usable


def _render(results: list[ImagesResult], found: list[Finding], console: Console) -> None:
    from audit.output.render.console import render_findings
    from audit.probes.imagestats import NONE_FOUND_HINT

    levels = sorted({r.level for r in results})
    table = Table(
        title=f"Local images (level {', '.join(levels)})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    columns = ("dataset", "records", "ok", "missing", "broken", "unavailable %", "probed")
    for column in (*columns, "cached"):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    for r in results:
        fig = r.figures
        rate = fig.unavailable_rate
        table.add_row(
            Text(r.dataset),
            f"{r.referenced:,}",
            f"{r.status.get('ok', 0):,}",
            f"{fig.missing:,}",
            f"{fig.broken:,}",
            "-" if rate is None else f"{rate:.2%}",
            f"{r.probed:,}",
            f"{r.cached:,}",
        )
    console.print(table)
    for result in results:
        name = result.dataset
        missing = result.status.get("missing", 0)
        hint = missing_images_hint(missing, result.referenced, result.roots)
        if hint:
            console.print(f"{name}: {hint}", markup=False, style="yellow")
        if result.none_found:
            console.print(NONE_FOUND_HINT, markup=False)
        shape = _shape(result)
        if shape:
            console.print(f"{name}: {shape}", markup=False)
        worst = result.worst_folders
        if len(worst) > 1:
            parts = [
                f"{folder} ({c.missing:,} missing, {c.broken:,} broken)"
                for folder, c in worst.items()
            ]
            console.print(f"{name}, worst folders: " + ", ".join(parts[:5]), markup=False)
    render_findings(console, found, title="Image findings", examples=_EXAMPLES, show_info=False)


def _shape(result: ImagesResult) -> str:
    """Formats and image sizes in one line (known from header and decode levels)."""
    formats = ", ".join(f"{fmt} {n:,}" for fmt, n in result.formats.items())
    dims = result.dimensions
    if not formats or dims is None:
        return ""
    w, h = dims.width, dims.height
    return (
        f"formats {formats}; size median {w.median:g}x{h.median:g} "
        f"(width {w.min:,}-{w.max:,}, height {h.min:,}-{h.max:,})"
    )
