"""`license`: provenance and per-use licence verdicts of conversation or metadata files (stage 3)."""

from __future__ import annotations

import argparse
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from rich.console import Console
from rich.table import Table
from rich.text import Text

from audit import config as config_mod
from audit import preflight
from audit.cli._common import (
    add_engine,
    add_findings_dir,
    findings_folder,
    optional_config,
    with_engine,
    write_all_findings,
)
from audit.errors import UsageError
from audit.licensing import ACTIONS, LEGACY_USES, PURPOSES, USES, Verdict, usable_count, use_key
from audit.loaders import Input
from audit.results import LicenseResult, VerdictCounts

if TYPE_CHECKING:
    from audit.engines.spark.licence_batches import SparkLicensing

ORDER = 40
_VERDICTS = tuple(v.value for v in Verdict)  # most restrictive first
_STYLE = {"forbidden": "red", "unknown": "yellow", "conditional": "yellow", "allowed": "green"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "license",
        help="licence verdicts per record, purpose and action (train, redistribute)",
        description="Identify each record's sources (image path, URL host, COCO licence ids) and "
        "judge it against the licence policy for a declared purpose (research, commercial) and "
        "action (train, redistribute annotations, redistribute images): allowed, allowed with "
        "obligations, conditional, unknown or forbidden (the most restrictive part decides). "
        "Exit 1 when a record is forbidden for a declared use.",
    )
    p.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="conversation or metadata JSON files, or the CC-3M TSV (none: every dataset of "
        "--config)",
    )
    p.add_argument(
        "--purpose", choices=PURPOSES, help="declared purpose (default: [use] purpose, research)"
    )
    p.add_argument(
        "--action",
        choices=ACTIONS,
        action="append",
        help="declared action, repeatable (default: [use] action, train)",
    )
    p.add_argument(
        "--use",
        choices=tuple(LEGACY_USES),
        help="older form: research = --purpose research --action train, commercial = --purpose "
        "commercial --action train, redistribute-* = --action redistribute-* (purpose from "
        "--purpose or [use], research by default)",
    )
    p.add_argument(
        "--image-origin",
        choices=("source", "llava-images-zip"),
        default="source",
        help="where the image bytes came from; LLaVA's images.zip is research reproduction only",
    )
    p.add_argument("--coco-annotations", metavar="FILE", help="COCO annotation file (licence ids)")
    p.add_argument("--metadata", metavar="FILE", help="metadata file giving chat records' URLs")
    p.add_argument(
        "--vg-image-data",
        metavar="FILE",
        help="Visual Genome image_data.json: VG/GQA images from COCO get their COCO licence",
    )
    p.add_argument("--kind", choices=config_mod.KINDS, help="dataset kind (detected if omitted)")
    p.add_argument(
        "--source", metavar="NAME", help="policy source for records the tool cannot identify"
    )
    p.add_argument("--findings", metavar="OUT.jsonl", help="write findings as JSON Lines")
    p.add_argument(
        "--attribution",
        metavar="OUT",
        help="write each part's credit (licence, author, title, Flickr page, modified) as "
        ".md (grouped by licence) or JSON Lines",
    )
    p.add_argument(
        "--verdicts",
        metavar="OUT.jsonl",
        help="write one line per record and declared use: verdict, licences, obligations and "
        "the chain of evidence",
    )
    p.add_argument(
        "--root",
        action="append",
        default=[],
        metavar="DIR_OR_ZIP",
        help="image folder or zip: COCO images whose size differs from the annotation file's "
        "are derivatives (license.derivative)",
    )
    p.add_argument(
        "--config", metavar="audit.toml", help="[license] settings and policy, [use], state path"
    )
    p.add_argument("--policy", metavar="FILE", help="policy TOML merged over the packaged one")
    add_engine(p)
    add_findings_dir(p)
    p.set_defaults(handler=_license)


def _license(args: argparse.Namespace) -> int:
    from audit.licensing import license_files
    from audit.output.render.progress import RichProgress
    from audit.store import Store

    config = with_engine(optional_config(args.config), args)
    settings = config.license
    if settings.policy:
        settings = msgspec.structs.replace(settings, policy=str(config.path(settings.policy)))
    if args.policy:
        settings = msgspec.structs.replace(settings, policy=args.policy)
    uses = declared_uses(args, config.use)
    vg_image_data = args.vg_image_data or (
        config.path(settings.vg_image_data) if settings.vg_image_data else None
    )
    if not args.files:
        return _configured_datasets(args, msgspec.structs.replace(config, license=settings))
    preflight.check(
        _inputs(
            config,
            [(f, "conversation file", "dataset_mb") for f in args.files]
            + [
                (args.metadata, "metadata file", "dataset_mb"),
                (args.coco_annotations, "COCO annotation file", "annotations_mb"),
                (vg_image_data, "Visual Genome image data", "annotations_mb"),
                (settings.policy, "licence policy", "policy_mb"),
            ],
        ),
        roots=args.root,
    )
    state = config.path(config.state)
    store = Store(state) if args.config and state.exists() else None
    spark = _spark(config)
    try:
        with (
            findings_folder(args, "license") as tables,
            RichProgress() as progress,
            _verdict_file(args.verdicts) as sink,
        ):
            result = license_files(
                args.files,
                use=uses,
                image_origin=args.image_origin,
                coco_annotations=args.coco_annotations,
                kind=args.kind,
                settings=settings,
                store=store,
                progress=progress,
                metadata=args.metadata,
                source=args.source,
                attribution_out=args.attribution,
                vg_image_data=vg_image_data,
                verdict_sink=sink,
                image_roots=args.root,
                assess_file=spark,
            )
            if spark is not None:
                result = spark.publish(result, tables)
            write_all_findings(args.findings, [result])
    finally:
        if store is not None:
            store.close()
    render(result, Console(highlight=False))
    return 1 if any(result.forbidden.values()) else 0


def _spark(config: config_mod.Config) -> SparkLicensing | None:
    """The Spark engine's licence assessor, when ``--engine spark`` (or ``[engine]``) asks."""
    from audit import engines

    if not engines.is_spark(config.engine):
        return None
    from audit.engines.spark.licence_batches import SparkLicensing

    return SparkLicensing(config.engine)


def declared_uses(args: argparse.Namespace, use: config_mod.UseConfig) -> list[str]:
    """``purpose/action`` keys from --purpose/--action (or the older --use), else from [use]."""
    purpose = args.purpose or use.purpose
    actions = list(args.action or ())
    if args.use:
        if actions:
            raise UsageError("--use is the older form of --purpose/--action: give one or the other")
        if args.use in ("research", "commercial"):
            if args.purpose and args.purpose != args.use:
                raise UsageError(f"--use {args.use} contradicts --purpose {args.purpose}")
            purpose, actions = args.use, ["train"]
        else:
            actions = [args.use]
    return [use_key(purpose, a) for a in (actions or use.actions())]


def _verdict_file(path: str | None) -> AbstractContextManager[Any]:
    """The --verdicts writer (the rows' sink), or a no-op context giving None."""
    from audit.licensing import VerdictWriter

    return VerdictWriter(path) if path else nullcontext()


def _inputs(
    config: config_mod.Config, named: list[tuple[str | Path | None, str, str]]
) -> list[Input]:
    """The given ``(path, what, [limits] key)`` as inputs for the pre-flight check."""
    return [preflight.file_input(config, p, what, cap) for p, what, cap in named if p]


_FILE_ONLY = (
    "coco_annotations",
    "metadata",
    "kind",
    "source",
    "attribution",
    "vg_image_data",
    "verdicts",
    "root",
)


def _configured_datasets(args: argparse.Namespace, config: config_mod.Config) -> int:
    """Without FILE: every dataset of the config, each with its own files and provenance."""
    from audit.licensing import license_dataset
    from audit.output.render.progress import RichProgress
    from audit.store import Store

    if not args.config:
        raise UsageError("give FILE arguments, or --config to audit every configured dataset")
    misplaced = [f"--{a.replace('_', '-')}" for a in _FILE_ONLY if getattr(args, a)]
    if misplaced:
        raise UsageError(f"{', '.join(misplaced)} apply to FILE arguments; datasets use audit.toml")
    if not config.datasets:
        raise UsageError(f"{args.config}: no [[datasets]] configured")
    lic = config.license
    vg_image_data = config.path(lic.vg_image_data) if lic.vg_image_data else None
    keys = ("chat", "metadata", "coco_annotations")
    preflight.check(
        [i for ds in config.datasets for i in preflight.dataset_inputs(config, ds, keys)]
        + _inputs(
            config,
            [
                (lic.policy, "licence policy", "policy_mb"),
                (vg_image_data, "Visual Genome image data", "annotations_mb"),
            ],
        )
    )
    state = config.path(config.state)
    store = Store(state) if state.exists() else None
    results: list[tuple[str, LicenseResult]] = []
    uses = declared_uses(args, config.use)
    try:
        with findings_folder(args, "license") as tables, RichProgress() as progress:
            for n, ds in enumerate(config.datasets):
                spark = _spark(config)
                result = license_dataset(
                    ds, config, progress=progress, store=store, uses=uses, assess_file=spark
                )
                if spark is not None and result.skipped is None:  # a table per dataset
                    result = spark.publish(result, Path(tables) / str(n))
                results.append((ds.name, result))
            write_all_findings(args.findings, (r for _, r in results))
    finally:
        if store is not None:
            store.close()
    console = Console(highlight=False)
    forbidden = 0
    for name, result in results:
        console.rule(Text(f"dataset {name}"))
        if result.skipped is not None:
            console.print(f"skipped: {result.skipped}", markup=False)
            continue
        render(result, console)
        forbidden += sum(result.forbidden.values())
    return 1 if forbidden else 0


def render(result: LicenseResult, console: Console) -> None:
    """Verdicts per purpose and action, then per source and per licence for the first declared use."""
    use = result.use
    per_use = Table(title=f"Licence verdicts ({result.records:,} records)", title_justify="left")
    per_use.add_column("purpose / action", no_wrap=True)
    for verdict in _VERDICTS:
        per_use.add_column(verdict.replace("_", " "), justify="right")
    per_use.add_column("usable", justify="right")
    for u in USES:
        label = u.replace("/", " / ")
        per_use.add_row(
            f"[bold]{label} *[/]" if u in result.uses else label,
            *(_cell(result.verdicts[u].get(v, 0), v) for v in _VERDICTS),
            f"{result.usable[u]:,}",
        )
    console.print(per_use)
    console.print(f"* declared: {', '.join(u.replace('/', ' / ') for u in result.uses)}")
    title = use.replace("/", " / ")
    console.print(_breakdown(f"Per source, for {title}", "source", result.by_source, use))
    console.print(_breakdown(f"Per licence, for {title}", "licence", result.by_license, use))
    for line in result.usable_lines:
        console.print(line, markup=False)
    if result.inferred:
        console.print(f"{result.inferred:,} records have an inferred source (URL host or prompt)")
    for u in result.uses:
        if result.forbidden.get(u, 0):
            label = u.replace("/", " / ")
            console.print(f"[bold red]{result.forbidden[u]:,} records are forbidden for {label}[/]")


def _breakdown(title: str, label: str, table_stats: dict[str, VerdictCounts], use: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(label, no_wrap=True)
    table.add_column("records", justify="right")
    for verdict in _VERDICTS[:3]:
        table.add_column(verdict, justify="right")
    table.add_column("usable", justify="right")
    rows = sorted(table_stats.items(), key=lambda kv: -sum(kv[1][use].values()))
    for key, per_use in rows:
        counts = per_use[use]
        table.add_row(
            Text(key),
            f"{sum(counts.values()):,}",
            *(_cell(counts.get(v, 0), v) for v in _VERDICTS[:3]),
            f"{usable_count(counts):,}",
        )
    return table


def _cell(n: int, verdict: str) -> str:
    style = _STYLE.get(verdict)
    return f"[{style}]{n:,}[/]" if n and style else f"{n:,}"
