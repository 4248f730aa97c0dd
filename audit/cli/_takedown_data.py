"""The takedown steps that read the datasets: `match`, `apply` and `verify` (console output).

Not a command itself (no ``register``): :mod:`audit.cli.takedown` registers them. ``verify``
names every place the image bytes still are and the command that takes them out.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from audit.cli._takedown_steps import console, opened

if TYPE_CHECKING:
    from audit.takedown import Applied

#: ``apply --images`` (audit.takedown_images.IMAGE_MODES, not imported: --help stays fast).
IMAGE_MODES = ("none", "zip", "folder", "all")
_SHOWN = 50  # matches listed on the console; the manifest and checklist have all of them


def match_step(args: argparse.Namespace) -> int:
    from audit.output.render.progress import RichProgress
    from audit.takedown import match

    with opened(args, reads_datasets=True) as (config, store), RichProgress() as progress:
        located = match(config, store, args.request_id, progress=progress)
    mine = [m for m in located.matches if m.request_id == args.request_id]
    table = Table(title=f"{len(mine)} affected record(s) for {args.request_id}")
    for column in ("dataset", "file", "index", "record id", "matched key"):
        table.add_column(column)
    for m in mine[:_SHOWN]:
        table.add_row(
            *(Text(v) for v in (m.dataset, m.file, str(m.index), m.record_id or "", str(m.key)))
        )
    out = console()
    out.print(table)
    if len(mine) > _SHOWN:
        out.print(f"... and {len(mine) - _SHOWN} more (see the checklist)")
    images = located.images
    files = [f for f in located.files if f.role != "lookup"]
    lookups = [f for f in located.files if f.role == "lookup"]
    via = f" (and {len(lookups)} lookup file(s): COCO annotations, CC-3M TSV)" if lookups else ""
    out.print(
        f"searched {sum(f.records for f in files):,} records in {len(files)} file(s){via}; "
        f"images hashed {images.hashed:,}, unavailable {images.unavailable:,}; keys "
        f"followed: {len(located.keys)}"
    )
    if mine:
        out.print(f"Next: llava-audit takedown apply {args.request_id}")
    else:
        out.print(
            "No record matched: check the identifiers with the requester, then answer "
            f"(llava-audit takedown reject {args.request_id} --reason ... , or notify)"
        )
    return 0


def apply_step(args: argparse.Namespace) -> int:
    from audit.output.render.progress import RichProgress
    from audit.takedown import apply

    with opened(args, reads_datasets=True) as (config, store), RichProgress() as progress:
        applied = apply(config, store, args.request_id, progress=progress, images=args.images)
    out = console()
    if applied.already_applied:
        out.print(f"{args.request_id}: no record left to remove (the cleaned copies are in place)")
    sets: dict[tuple[str, str], int] = {}
    for f in applied.files:
        if f.set is not None and f.cleaned_set is not None:
            sets[(f.set, f.cleaned_set)] = sets.get((f.set, f.cleaned_set), 0) + 1
            if not f.removed:
                continue  # every shard is copied; the console names those that lost records
        out.print(
            f"{f.original}: {len(f.removed)} removed, {f.records_after:,} kept -> {f.cleaned}",
            markup=False,
        )
    for (shards, cleaned), count in sets.items():
        out.print(f"{shards}: cleaned shard set of {count} shard(s) -> {cleaned}", markup=False)
    also = (
        f" (and {applied.also_removed} of earlier takedowns, kept out of the cleaned copies)"
        if applied.also_removed
        else ""
    )
    if not applied.already_applied:
        out.print(
            f"{applied.removed} record(s) of {args.request_id} removed{also}; manifest "
            f"{applied.manifest}",
            markup=False,
        )
        out.print(
            f"{len(applied.blocklist)} key(s) blocklisted: every later audit fails if they come "
            "back."
        )
    _print_images(applied, args.request_id)
    next_step = "" if applied.already_applied else "put the cleaned copies in place, then "
    out.print(f"Next: {next_step}llava-audit takedown verify {args.request_id}")
    return 0


def _print_images(applied: Applied, rid: str) -> None:
    out = console()
    done = applied.images
    for z in done.zips if done else []:
        out.print(
            f"{z.zip}: {len(z.members)} member(s) removed; the old zip is kept as "
            f"{z.kept_as} until `takedown verify {rid} --purge`",
            markup=False,
        )
    for q in done.quarantined if done else []:
        out.print(f"moved {q.from_} -> {q.to}", markup=False)
    if applied.images_left:
        out.print(
            f"{len(applied.images_left)} image(s) still hold the picture (verify fails until "
            f"they are gone): {', '.join(applied.images_left[:5])}; llava-audit takedown apply "
            f"{rid} --images all takes them out",
            markup=False,
        )


def verify_step(args: argparse.Namespace) -> int:
    from audit.output.render.progress import RichProgress
    from audit.takedown import verify
    from audit.takedown_images import removal_hint

    with opened(args, reads_datasets=True) as (config, store), RichProgress() as progress:
        result = verify(config, store, args.request_id, progress=progress, purge_held=args.purge)
    out = console()
    for row in result.cleaned:
        state = (
            "moved into place or deleted"
            if not row.exists
            else ("clean" if not row.leftovers else f"{row.leftovers} blocked record(s)")
        )
        out.print(f"cleaned copy {row.cleaned}: {state}", markup=False)
    for m in result.present[:_SHOWN]:
        out.print(f"still present: {m.file} #{m.index} ({m.record_id}) {m.key}", markup=False)
    for place in result.images:
        out.print(f"image still present: {place}", markup=False)
    if result.images:
        out.print(f"Remove them: {removal_hint(args.request_id, result.images)}", markup=False)
    for gone in result.purged:
        out.print(f"purged: {gone}", markup=False)
    if result.ok and result.held:
        out.print(
            f"kept for undoing: {'; '.join(result.held)}; delete with llava-audit takedown "
            f"verify {args.request_id} --purge",
            markup=False,
        )
    elif args.purge and not result.ok:
        out.print("nothing purged: the takedown is not verified", markup=False)
    verdict = "[green]verified[/]" if result.ok else "[red]not clean[/]"
    out.print(f"{args.request_id}: {verdict}")
    return 0 if result.ok else 1
