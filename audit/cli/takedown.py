"""`llava-audit takedown ...`: the takedown response workflow (DESIGN.md use case 3).

Every subcommand is `takedown STEP [ID] [options]` and one call into :mod:`audit.takedown`,
:mod:`audit.takedown_steps`, :mod:`audit.takedown_gdpr` or :mod:`audit.takedown_export`; the ground
specific steps are registered by :mod:`audit.cli._takedown_steps`. The ledger is its own file
(``[takedown] ledger``). Bad requests (unknown dataset or request, malformed identifiers, a date in
the future) exit 2; a ledger that fails its integrity check exits 3.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import msgspec
from rich.table import Table
from rich.text import Text

from audit.cli._takedown_data import IMAGE_MODES, apply_step, match_step, verify_step
from audit.cli._takedown_steps import console, date_arg, opened, register_steps
from audit.store.ledger import GROUNDS, STEPS, Ledger
from audit.store.ledgerfile import opened_ledger

ORDER = 50
_IDENTIFIERS = (
    ("--record-id", "record_id", "record id (repeatable)"),
    ("--image", "image", "image path as in the records, or a path ending in it (repeatable)"),
    (
        "--url",
        "url",
        "source URL of the image (repeatable); http/https, host case, default port and "
        "percent-encoding do not matter, and any Flickr URL or page of a photo names that photo",
    ),
    ("--sha256", "sha256", "SHA-256 of the image bytes, 64 hex digits (repeatable)"),
    ("--md5", "md5", "MD5 of the image bytes, 32 hex digits (repeatable)"),
    ("--phash", "phash", "perceptual hash of the picture, 16 hex digits (repeatable)"),
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "takedown",
        help="record and answer takedown requests: new, match, apply, verify, checklist, the "
        "GDPR/DMCA/illegal-content steps, export",
        description="The takedown workflow: record a request in the hash-chained ledger "
        "([takedown] ledger, default takedown.sqlite beside audit.toml), find every affected "
        "record in every configured dataset, write cleaned copies beside the originals, record "
        "each step the ground requires, render the response checklist, re-audit, and keep the "
        "items out of every later audit. Every step is `takedown STEP ID [options]`. Exit 0 "
        "done, 1 verify found blocklisted items (or an export does not verify), 2 bad request "
        "or config, 3 the ledger failed its integrity check.",
    )
    steps = p.add_subparsers(dest="step", metavar="STEP", required=True)

    def step(
        name: str,
        help_text: str,
        handler: Callable[..., int],
        example: str,
        with_id: bool = True,
    ) -> Any:
        q = steps.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=f"example:\n  llava-audit takedown {name} {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        q.add_argument(
            "--config", default="audit.toml", metavar="audit.toml", help="config file (audit.toml)"
        )
        if with_id:
            q.add_argument("request_id", metavar="ID", help="request id, e.g. TD-0001")
        q.set_defaults(handler=handler)
        return q

    new = step(
        "new",
        "record a new request (intake, the first step)",
        _new,
        "--ground gdpr --contact jane@example.org --url https://example.org/me.jpg "
        "--received 2026-03-02",
        with_id=False,
    )
    new.add_argument("--ground", required=True, choices=GROUNDS, help="legal ground")
    new.add_argument("--contact", required=True, help="the requester's contact")
    for flag, kind, text in _IDENTIFIERS:
        new.add_argument(flag, dest=kind, action="append", default=[], help=text)
    new.add_argument(
        "--image-file",
        dest="image_file",
        action="append",
        default=[],
        metavar="FILE",
        help="an image the requester sent: its SHA-256, MD5 and perceptual hash become "
        "identifiers, so re-encoded or resized copies are found too (the file is not kept)",
    )
    new.add_argument("--received", type=date_arg, help="date received (default: today, UTC)")
    new.add_argument(
        "--deadline", type=date_arg, help="answer by (default: received + 1 month for gdpr)"
    )
    new.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="NAME",
        help="dataset named in the request (repeatable)",
    )
    new.add_argument("--notes", default="", help="the requester's explanation, verification")
    lst = step("list", "list requests with their state and deadline", _list, "--json", False)
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show = step("show", "show a request and every event recorded for it", _show, "TD-0001")
    show.add_argument("--json", action="store_true", help="print JSON instead of tables")
    step("match", "find every affected record in every configured dataset", match_step, "TD-0001")
    apply = step(
        "apply",
        "write cleaned copies and a removal manifest; blocklist the keys; with --images also "
        "take the image bytes out",
        apply_step,
        "TD-0001 --images all",
    )
    apply.add_argument(
        "--images",
        choices=IMAGE_MODES,
        default="none",
        help="image bytes to take out: zip (rewrite each images zip without the members, the old "
        "one kept as <zip>.ID.orig), folder (move the files to takedowns/ID/quarantine/), all, "
        "or none (default: only the records; verify fails while the bytes remain)",
    )
    chk = step(
        "checklist",
        "render the response checklist",
        _checklist,
        "TD-0001 --format html --out c.html",
    )
    chk.add_argument("--format", choices=("md", "html"), default="md", help="output format")
    chk.add_argument("--out", metavar="FILE", help="write to FILE (default: standard output)")
    ver = step(
        "verify",
        "re-audit: the ledger's chain is whole, cleaned copies and configured datasets hold no "
        "blocked item, and no configured image folder or zip holds the image bytes",
        verify_step,
        "TD-0001 --purge",
    )
    ver.add_argument(
        "--purge",
        action="store_true",
        help="once verified, delete the quarantine and the old zips that apply --images kept",
    )
    reject = step(
        "reject",
        "record that the request is not acted on, and why",
        _reject,
        "TD-0001 --reason 'names no record we hold'",
    )
    reject.add_argument("--reason", required=True, help="why (e.g. not verifiable)")
    notify = step(
        "notify",
        "record that the requester was told what was done",
        _notify,
        "TD-0001 --date 2026-03-20 --note 'mailed the reply'",
    )
    notify.add_argument("--date", type=date_arg, help="when (default: today)")
    notify.add_argument("--note", default="", help="what was said")
    export = step(
        "export",
        "write the whole ledger with its hashes as JSON (no personal data), verifiable later",
        _export,
        "ledger-2026-03.json",
        with_id=False,
    )
    export.add_argument("out", metavar="OUT.json", help="where to write the export")
    vexp = step(
        "verify-export",
        "check an export's hash chain (exit 0 whole, 1 tampered)",
        _verify_export,
        "ledger-2026-03.json",
        with_id=False,
    )
    vexp.add_argument("file", metavar="FILE", help="a file written by `takedown export`")
    blk = step(
        "export-blocklist",
        "write the blocklist as publishable hashes (SHA-256 of URLs, image hashes)",
        _export_blocklist,
        "blocklist.json",
        with_id=False,
    )
    blk.add_argument("out", metavar="OUT", help="where to write the JSON")
    register_steps(step)


def _new(args: argparse.Namespace) -> int:
    from audit.takedown import new_request

    pairs = [(kind, value) for _, kind, _ in _IDENTIFIERS for value in getattr(args, kind)]
    with opened(args) as (config, store):
        request = new_request(
            config,
            store,
            ground=args.ground,
            requester_contact=args.contact,
            identifiers=pairs,
            received=args.received,
            deadline=args.deadline,
            datasets=args.dataset,
            notes=args.notes,
            image_files=args.image_file,
        )
    deadline = f", answer by {request.deadline}" if request.deadline else ""
    console().print(
        f"{request.request_id} recorded: {request.ground}, {len(request.keys)} identifier(s), "
        f"received {request.received}{deadline}. Next: llava-audit takedown match "
        f"{request.request_id}"
    )
    return 0


def _state_line(ledger: Ledger, request_id: str) -> str:
    state = ledger.state(request_id)
    marks = []
    for step in STEPS:
        event = state[step]
        marks.append(f"{step}{'' if event is None else (' ✓' if event.ok else ' ✗')}")
    return ", ".join(m for m in marks if m.endswith(("✓", "✗"))) or "received"


def _list(args: argparse.Namespace) -> int:
    with opened(args) as (config, store), opened_ledger(config, store) as ledger:
        requests = ledger.requests()
        rows = [(r, _state_line(ledger, r.request_id)) for r in requests]
    if args.json:
        payload = [{**msgspec.to_builtins(r), "state": s} for r, s in rows]
        sys.stdout.write(msgspec.json.encode(payload).decode() + "\n")
        return 0
    table = Table(title=f"{len(rows)} takedown request(s)")
    for column in ("id", "ground", "requester", "received", "deadline", "done"):
        table.add_column(column)
    for r, s in rows:
        table.add_row(
            r.request_id, r.ground, Text(r.requester_contact), str(r.received),
            str(r.deadline or "-"), s,
        )  # fmt: skip
    console().print(table)
    return 0


def _show(args: argparse.Namespace) -> int:
    with opened(args) as (config, store), opened_ledger(config, store) as ledger:
        request = ledger.get(args.request_id)
        events = ledger.events(args.request_id)
    if args.json:
        payload = {**msgspec.to_builtins(request), "events": msgspec.to_builtins(events)}
        sys.stdout.write(msgspec.json.encode(payload).decode() + "\n")
        return 0
    out = console()
    out.print(f"[bold]{request.request_id}[/] {request.ground} from ", end="")
    out.print(request.requester_contact, markup=False)
    out.print(f"received {request.received}, deadline {request.deadline or 'none'}")
    out.print("identifiers: " + ", ".join(str(k) for k in request.keys), markup=False)
    if request.notes:
        out.print("notes: " + request.notes, markup=False)
    table = Table(title="events")
    for column in ("#", "step", "when", "ok", "summary"):
        table.add_column(column)
    for e in events:
        table.add_row(str(e.seq), e.step, e.happened_at, "yes" if e.ok else "NO", Text(e.summary))
    out.print(table)
    return 0


def _checklist(args: argparse.Namespace) -> int:
    from audit.atomic import write_output
    from audit.takedown_steps import checklist

    with opened(args) as (config, store):
        text = checklist(config, store, args.request_id, args.format)
    if args.out:
        write_output(args.out, text.encode("utf-8"), "checklist")
    else:
        sys.stdout.write(text)
    return 0


def _reject(args: argparse.Namespace) -> int:
    from audit.takedown_steps import reject

    with opened(args) as (config, store):
        reject(config, store, args.request_id, reason=args.reason)
    console().print(
        f"{args.request_id}: rejected. Tell the requester: llava-audit takedown notify "
        f"{args.request_id}"
    )
    return 0


def _notify(args: argparse.Namespace) -> int:
    from audit.takedown_steps import notify

    with opened(args) as (config, store):
        event = notify(config, store, args.request_id, when=args.date, note=args.note)
    console().print(f"{args.request_id}: requester notified ({event.happened_at[:10]})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from audit.takedown_export import export

    with opened(args) as (config, store):
        done = export(config, store, args.out)
    console().print(
        f"{done.events} event(s) of {done.ledger} written to {args.out} (head "
        f"{done.head[:16]}...); check it with llava-audit takedown verify-export {args.out}",
        markup=False,
    )
    return 0


def _verify_export(args: argparse.Namespace) -> int:
    from audit.takedown_export import verify_export

    problem = verify_export(args.file)
    if problem:
        console().print(f"{args.file}: does not verify: {problem}", markup=False)
        return 1
    console().print(f"{args.file}: the hash chain is whole", markup=False)
    return 0


def _export_blocklist(args: argparse.Namespace) -> int:
    from audit.takedown_export import export_blocklist

    with opened(args) as (config, store):
        count = export_blocklist(config, store, args.out)
    console().print(f"{count} hashed key(s) written to {args.out}", markup=False)
    return 0
