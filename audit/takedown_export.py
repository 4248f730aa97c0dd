"""Copies of the ledger that outlive it: a verifiable JSON export and a publishable blocklist.

The export holds every event with its ``prev_hash`` and ``hash``, so anyone can check it without
llava-audit: ``hash = sha256(prev_hash + row)`` where ``row`` is the JSON array ``[seq,
request_id, step, happened_at, recorded_at, ok, summary, detail]`` (ok 0 or 1, detail the event's
canonical JSON text as exported), written with ``,`` and ``:`` separators and ASCII escapes, and
the first ``prev_hash`` is 64 zeros. Personal data is not in it (only its SHA-256).

The blocklist export is what can be published (as Re-LAION does): hashes only, never a URL, a
path or who asked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import msgspec

from audit.atomic import write_atomic
from audit.config import Config
from audit.errors import InputError
from audit.loaders import read_input
from audit.store import Store
from audit.store.ledger import now
from audit.store.ledgerchain import COLUMNS, chain_problem
from audit.store.ledgerfile import opened_ledger

EXPORT_FORMAT = "llava-audit takedown ledger export"
BLOCKLIST_FORMAT = "llava-audit takedown blocklist"
EXPORT_MAX_BYTES = 1024 * 2**20
#: Which blocklist keys are published, and as what: content keys only, hashed where they are not
#: hashes already. Record ids and image paths are internal to one copy of a dataset.
_PUBLISHED = {"url": "url_sha256", "sha256": "image_sha256", "md5": "image_md5", "phash": "phash"}


class ExportSummary(msgspec.Struct, frozen=True):
    """What ``takedown export`` wrote: the number of events, the chain's head, the ledger."""

    events: int
    head: str
    ledger: str


def export(config: Config, store: Store, out: str | Path) -> ExportSummary:
    """Write the ledger's events with their hashes as JSON; returns the export's summary."""
    with opened_ledger(config, store) as ledger:
        rows = ledger.rows()
        events, head = ledger.head()
        source = str(ledger.path)
    body = {
        "format": EXPORT_FORMAT,
        "version": 1,
        "ledger": source,
        "exported_at": now(),
        "events": events,
        "head": head,
        "rows": [dict(zip((*COLUMNS, "prev_hash", "hash"), row, strict=True)) for row in rows],
    }
    write_atomic(out, msgspec.json.format(msgspec.json.encode(body), indent=1) + b"\n")
    return ExportSummary(events=events, head=head, ledger=source)


def verify_export(path: str | Path) -> str | None:
    """None when the export's chain is whole and ends at its head, else what is wrong."""
    p = Path(path)
    raw = read_input(p, "ledger export", EXPORT_MAX_BYTES)
    try:
        body = json.loads(raw)
        if body.get("format") != EXPORT_FORMAT:
            return "not a llava-audit ledger export"
        rows = [tuple(r[c] for c in (*COLUMNS, "prev_hash", "hash")) for r in body["rows"]]
        head, events = body["head"], body["events"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InputError(str(p), "not a llava-audit ledger export (unreadable JSON)") from None
    problem = chain_problem(rows)
    if problem:
        return problem
    if len(rows) != events or (rows[-1][-1] if rows else "0" * 64) != head:
        return f"it ends before its recorded head (event {events}): rows were removed"
    return None


def export_blocklist(config: Config, store: Store, out: str | Path) -> int:
    """Write the live blocklist as hashed keys (JSON); returns how many keys were written."""
    with opened_ledger(config, store) as ledger:
        entries = ledger.blocklist()
    keys = sorted(
        {
            (_PUBLISHED[k.kind], _publishable(k.kind, k.value))
            for k, _ in entries
            if k.kind in _PUBLISHED
        }
    )
    body = {
        "format": BLOCKLIST_FORMAT,
        "version": 1,
        "generated_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "url_hash": "sha256 of the canonical URL: https for http and https, host lower-case "
        "without a trailing dot or default port, RFC 3986 percent-encoding, no fragment; every "
        "Flickr URL of a photo as https://www.flickr.com/photo.gne?id=<photo id>",
        "phash": "imagehash pHash (64 bits, 16 hex digits); a copy matches within a few bits",
        "keys": [{"type": t, "value": v} for t, v in keys],
    }
    write_atomic(out, msgspec.json.format(msgspec.json.encode(body), indent=1) + b"\n")
    return len(keys)


def _publishable(kind: str, value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest() if kind == "url" else value
