"""The ledger file's tables and how its rows chain: ``hash = sha256(prev_hash + canonical row)``.

Pure (no I/O beyond the DDL text), so an export can be verified with the same code that checks the
file, and anyone can re-implement it from :func:`row_hash`'s docstring.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

GENESIS = "0" * 64

DDL = """
CREATE TABLE IF NOT EXISTS ledger_event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    step TEXT NOT NULL,
    happened_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    ok INTEGER NOT NULL,
    summary TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS ledger_event_request ON ledger_event(request_id, seq);
CREATE TABLE IF NOT EXISTS ledger_personal (
    request_id TEXT PRIMARY KEY,
    contact TEXT NOT NULL,
    notes TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS ledger_event_no_update BEFORE UPDATE ON ledger_event
BEGIN SELECT RAISE(ABORT, 'the takedown ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_event_no_delete BEFORE DELETE ON ledger_event
BEGIN SELECT RAISE(ABORT, 'the takedown ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_event_chained BEFORE INSERT ON ledger_event
WHEN NEW.prev_hash IS NOT COALESCE(
    (SELECT hash FROM ledger_event ORDER BY seq DESC LIMIT 1),
    '0000000000000000000000000000000000000000000000000000000000000000')
BEGIN SELECT RAISE(ABORT, 'the takedown ledger chain must continue from its last event'); END;
CREATE TRIGGER IF NOT EXISTS ledger_personal_no_update BEFORE UPDATE ON ledger_personal
BEGIN SELECT RAISE(ABORT, 'the takedown ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_personal_no_delete BEFORE DELETE ON ledger_personal
WHEN NOT EXISTS (SELECT 1 FROM ledger_event
                 WHERE request_id = OLD.request_id AND step = 'redacted')
BEGIN SELECT RAISE(ABORT, 'personal data is removed only by a redacted event'); END;
"""


#: The columns of one event row, in chain order (as stored, as exported).
COLUMNS = ("seq", "request_id", "step", "happened_at", "recorded_at", "ok", "summary", "detail")


def canonical_detail(detail: dict[str, Any]) -> str:
    """A detail's one spelling: sorted keys, no spaces, ASCII (what the chain hashes)."""
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def row_hash(prev_hash: str, row: Sequence[Any]) -> str:
    """``sha256(prev_hash + canonical row)``: the row is the JSON array of :data:`COLUMNS` (ok as 0
    or 1, detail as its canonical text), ASCII, no spaces; hex digest."""
    canonical = json.dumps(list(row), separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256((prev_hash + canonical).encode("ascii")).hexdigest()


def chain_problem(rows: Iterable[Sequence[Any]]) -> str | None:
    """The first break in a chain of ``(*COLUMNS, prev_hash, hash)`` rows, or None when whole."""
    prev, expected_seq = GENESIS, 1
    for *row, prev_hash, digest in rows:
        seq, rid, step = row[0], row[1], row[2]
        where = f"event {seq} ({rid} {step})"
        if seq != expected_seq:
            return f"event {expected_seq} is missing (the next is {seq}): a row was deleted"
        if prev_hash != prev:
            return f"{where} does not continue the chain: a row before it was removed or replaced"
        if row_hash(prev, row) != digest:
            return f"{where} does not match its hash: the row was edited"
        prev, expected_seq = digest, expected_seq + 1
    return None


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
